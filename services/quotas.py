"""Pure: a team's quotas and a Gateway's byte budget, checked when a request is made.

The numbers come from the database (`services.actions` reads them under the team's row lock); this module only
compares and words the refusals, with the numbers, for the requesting team.
"""

from __future__ import annotations

from dataclasses import dataclass


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
