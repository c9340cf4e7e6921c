"""Pure: a team's quotas and a Gateway's byte budget, checked when a request is made.

The numbers come from the database (`services.actions` reads them under the locks of the Gateways' tallies, and a
create's service count under the lock of the team's count); this module only compares and words the refusals, with
the numbers, for the requesting team.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.rendering import block_bytes
from services.targeting import landing


@dataclass(frozen=True)
class GatewayUsage:
    """What already stands on one Gateway (one cluster, one traffic type), the requested service left out."""

    cluster: str
    traffic_type: str
    team_hosts: int  # hosts the requesting team's other services list there
    team_bytes: int  # bytes of their blocks
    total_bytes: int  # bytes of every managed block that runs or is approved to run there


@dataclass(frozen=True)
class Limits:
    max_hosts_per_gateway: int
    gateway_budget_share: float
    gateway_byte_budget: int

    @property
    def team_bytes(self) -> int:
        return int(self.gateway_byte_budget * self.gateway_budget_share)


@dataclass(frozen=True)
class Footprint:
    """What one live service stands for on one Gateway."""

    team_hosts: int  # in its team's hosts there: the larger of its current revision and the one that runs there
    team_bytes: int  # in its team's bytes there: likewise
    total_bytes: int  # in the Gateway's total: the revision that runs there (approved on a gated cluster)


NO_FOOTPRINT = Footprint(0, 0, 0)


def footprint(current: dict[str, Any] | None, approved: dict[str, Any] | None, cluster: Any) -> Footprint:
    """A live service with these revisions' specs on `cluster`'s Gateway (anything with `name`, `labels`, `enabled`,
    `requires_approval`). The Gateway's total counts what runs or is approved to run there; the team's own use also
    counts its revision awaiting approval."""
    runs = approved if cluster.requires_approval else current
    mine = [spec for spec in _distinct(current, runs) if landing(spec, [cluster])]
    if not mine:
        return NO_FOOTPRINT
    costs = {id(spec): block_bytes(spec) for spec in mine}
    return Footprint(
        team_hosts=max(len(spec["hosts"]) for spec in mine),
        team_bytes=max(costs.values()),
        total_bytes=costs.get(id(runs), 0),
    )


def _distinct(*specs: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list({id(spec): spec for spec in specs if spec is not None}.values())


def service_count_errors(*, team: str, owned: int, max_services: int) -> dict[str, list[str]]:
    """A create that would take the team past `max_services`."""
    if owned < max_services:
        return {}
    return {
        "non_field_errors": [
            f"team {team} owns {owned} gateway services and its quota is {max_services} (max_services); "
            "delete one, or ask the platform team to raise the quota"
        ]
    }


def batch_errors(*, team: str, declared: int, owned: int, max_services: int) -> dict[str, list[str]]:
    """A batch (an apply, an import) that declares more services than the team may hold, or holds now, could not
    succeed: it is refused before any of its documents is checked, so that no batch holds a port's lock for
    documents the quota refuses anyway."""
    limit = max(max_services, owned)
    if declared <= limit:
        return {}
    return {
        "non_field_errors": [
            f"these documents declare {declared} gateway services and team {team} may hold at most {limit} "
            f"(max_services {max_services}); split them into smaller sets, or ask the platform team to raise the "
            "quota"
        ]
    }


def gateway_errors(
    *, team: str, hosts: int, block_bytes: int, usages: list[GatewayUsage], limits: Limits
) -> dict[str, list[str]]:
    """A block of `hosts` hosts and `block_bytes` bytes added to each Gateway of `usages`: over any limit?"""
    messages: list[str] = []
    for usage in usages:
        where = f"the {usage.traffic_type} Gateway of cluster {usage.cluster}"
        if usage.team_hosts + hosts > limits.max_hosts_per_gateway:
            messages.append(
                f"team {team} would list {usage.team_hosts + hosts} hosts on {where} ({hosts} here); its quota is "
                f"{limits.max_hosts_per_gateway} hosts per Gateway (max_hosts_per_gateway)"
            )
        if usage.team_bytes + block_bytes > limits.team_bytes:
            messages.append(
                f"team {team}'s server blocks would take {usage.team_bytes + block_bytes} bytes of {where} "
                f"({block_bytes} bytes here); its share is {limits.team_bytes} bytes "
                f"({limits.gateway_budget_share:g} of the {limits.gateway_byte_budget}-byte budget, "
                "gateway_budget_share): list fewer or shorter hosts, or ask the platform team to raise the share"
            )
        if usage.total_bytes + block_bytes > limits.gateway_byte_budget:
            messages.append(
                f"{where} would hold {usage.total_bytes + block_bytes} bytes of server blocks ({block_bytes} bytes "
                f"here); its budget is {limits.gateway_byte_budget} bytes: ask the platform team"
            )
    return {"hosts": messages} if messages else {}
