"""The Gateway tallies behind the quotas and the byte budget: what the live services stand for on each Gateway.

A request is checked against each target Gateway's use (services.quotas). Reading that from every service on the
Gateway grew with the Gateway (a second per create at 10,000 services), so each Gateway keeps a `GatewayTally` row:
each team's hosts and bytes there and the Gateway's total. Every write that changes what a service stands for
(create, update, approval, removal) locks the rows of the Gateways it touches with `lock`, before it changes the
service, and adds its difference with `record` in the same transaction. The row lock is the Gateway's budget lock:
concurrent writers cannot both squeeze past a limit, and a tally always matches the committed services.

A tally is counted from the services when it is missing (a new Gateway, an upgrade) or when the cluster facts it
was counted on (labels, enabled, requires_approval: which revision runs there and whether a selector lands there)
differ from the cluster's now; its `basis` records them, so a changed cluster needs nothing from the cluster
writes. A service written around the actions (a bulk load) is counted only when a tally is next recounted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet

from clusters.models import Cluster
from gatewayportal.compiled import CompiledModelRead
from services import quotas
from services.models import GatewayService, GatewayTally
from services.rendering import digest
from services.targeting import landing

# Bump when what a footprint counts changes (services.quotas.footprint, services.rendering.block_bytes): every
# tally is then recounted once.
RULES = 1

Specs = tuple[dict[str, Any] | None, dict[str, Any] | None]  # (current spec, approved spec) of a live service


def lock(clusters: Iterable[Cluster], traffic_type: str) -> dict[int, GatewayTally]:
    """The tallies of these clusters' Gateways, locked until the transaction ends, counted afresh where needed.

    Every writer takes them in cluster order, all at once, after any other lock it holds (the service's row, the
    port lock, the team's row): so two writers never wait on each other's tallies in a circle.
    """
    wanted = {cluster.pk: cluster for cluster in clusters}
    if not wanted:
        return {}
    ids = sorted(wanted)
    values = {f"cluster_{i}": pk for i, pk in enumerate(ids)}
    found = {tally.cluster_id: tally for tally in _locked(len(ids)).instances(traffic_type=traffic_type, **values)}
    tallies = {}
    for pk in ids:
        cluster = wanted[pk]
        tally = found.get(pk)
        if tally is None:
            tally, _ = GatewayTally.objects.select_for_update().get_or_create(
                cluster_id=pk, traffic_type=traffic_type, defaults={"basis": ""}
            )
        tally.cluster = cluster  # the facts this request reads, which `basis` compares
        if tally.basis != _basis(cluster):
            _recount(tally)
        tallies[pk] = tally
    return tallies


@functools.lru_cache(maxsize=16)
def _locked(clusters: int) -> CompiledModelRead:
    """`lock`'s read of the tallies of so many clusters, compiled once (gatewayportal.compiled)."""
    parameters = {f"cluster_{i}": int for i in range(clusters)}

    def build(traffic_type: str, **ids: int) -> QuerySet:
        return (
            GatewayTally.objects.select_for_update()
            .filter(cluster_id__in=list(ids.values()), traffic_type=traffic_type)
            .order_by("cluster_id")
        )

    return CompiledModelRead(GatewayTally, None, build, traffic_type=str, **parameters)


def touched(clusters: Iterable[Cluster], *specs: dict[str, Any] | None) -> list[Cluster]:
    """The clusters whose Gateways a change among these specs (before and after) can touch: where any lands."""
    present = [spec for spec in specs if spec is not None]
    return [cluster for cluster in clusters if any(landing(spec, [cluster]) for spec in present)]


def usages(
    tallies: dict[int, GatewayTally], *, team_id: int, clusters: list[Cluster], without: Specs | None
) -> list[quotas.GatewayUsage]:
    """What stands on each of these clusters' Gateways, leaving out a service that now has `without`."""
    found = []
    for cluster in clusters:
        tally = tallies[cluster.pk]
        hosts, size = tally.teams.get(str(team_id), (0, 0))
        total = tally.total_bytes
        if without is not None:
            mine = quotas.footprint(*without, cluster)
            hosts, size, total = hosts - mine.team_hosts, size - mine.team_bytes, total - mine.total_bytes
        found.append(quotas.GatewayUsage(cluster.name, tally.traffic_type, hosts, size, total))
    return found


def record(tallies: dict[int, GatewayTally], *, team_id: int, before: Specs | None, after: Specs | None) -> None:
    """A live service of the team went from `before` to `after` (None: not live): add the difference to every
    Gateway it touches. Those tallies must have been locked (`lock`) before the service changed."""
    changed = []
    for tally in tallies.values():
        old = quotas.footprint(*before, tally.cluster) if before else quotas.NO_FOOTPRINT
        new = quotas.footprint(*after, tally.cluster) if after else quotas.NO_FOOTPRINT
        if old == new:
            continue
        key = str(team_id)
        hosts, size = tally.teams.get(key, (0, 0))
        hosts, size = hosts + new.team_hosts - old.team_hosts, size + new.team_bytes - old.team_bytes
        if hosts or size:
            tally.teams[key] = [hosts, size]
        else:
            tally.teams.pop(key, None)
        tally.total_bytes += new.total_bytes - old.total_bytes
        changed.append(tally)
    if len(changed) == 1:
        changed[0].save(update_fields=["teams", "total_bytes"])
    elif changed:
        GatewayTally.objects.bulk_update(changed, ["teams", "total_bytes"])


def check_locked(tallies: dict[int, GatewayTally], clusters: Iterable[Cluster]) -> None:
    missing = sorted(c.name for c in clusters if c.pk not in tallies)
    if missing:
        raise RuntimeError(f"the Gateway tallies of {', '.join(missing)} were not locked before the change")


def _basis(cluster: Cluster) -> str:
    return digest(
        {
            "labels": cluster.labels,
            "enabled": cluster.enabled,
            "requires_approval": cluster.requires_approval,
            "rules": RULES,
        }
    )


def count(cluster: Cluster, traffic_type: str) -> tuple[dict[str, list[int]], int]:
    """A Gateway's tally counted from the live services: (team id -> [hosts, bytes], total bytes)."""
    teams: dict[str, list[int]] = {}
    total = 0
    for team_id, current, approved in _live(traffic_type).iterator(chunk_size=2000):
        mine = quotas.footprint(current, approved, cluster)
        if mine == quotas.NO_FOOTPRINT:
            continue
        entry = teams.setdefault(str(team_id), [0, 0])
        entry[0] += mine.team_hosts
        entry[1] += mine.team_bytes
        total += mine.total_bytes
    return teams, total


def _recount(tally: GatewayTally) -> None:
    tally.teams, tally.total_bytes = count(tally.cluster, tally.traffic_type)
    tally.basis = _basis(tally.cluster)
    tally.save(update_fields=["teams", "total_bytes", "basis"])


def _live(traffic_type: str) -> QuerySet:
    return GatewayService.objects.filter(traffic_type=traffic_type, deleting_at__isnull=True).values_list(
        "team_id", "current_revision__spec", "approved_revision__spec"
    )
