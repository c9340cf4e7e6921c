"""Reads about clusters, including live views of their gateways (which never raise on cluster errors)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from clusters import adoption, kube
from clusters.desired import collect_desired, gateway_settings, read_facts
from clusters.models import Cluster, GatewayState
from clusters.reconcile import PortIndex, plan_gateway, server_name, split_servers
from services.models import GatewayService, Team
from services.rendering import port_name


def cluster_list() -> QuerySet[Cluster]:
    """Every team may see every cluster (without credentials: the serializers never return them)."""
    return Cluster.objects.all()


def live_servers(
    *, cluster: Cluster, traffic_type: str, teams: list[Any] | None, own_port_names: set[str] | None = None
) -> dict[str, Any]:
    """Each server of the live Gateway, managed or not; with `teams`, the team an unmanaged one's hosts fall in.

    `own_port_names` narrows the answer for a team member: the portal's servers of other teams are left out
    (their port names carry service names, their blocks hosts and Secret names), and of the rest only the
    member's own blocks are shown in full. None (platform engineers) shows everything."""
    namespace, name = cluster.gateway_ref(traffic_type)
    answer: dict[str, Any] = {
        "traffic_type": traffic_type,
        "gateway": f"{namespace}/{name}",
        "reachable": False,
        "message": "",
        "servers": [],
    }
    try:
        live, _, managed = _read_live(cluster, traffic_type)
    except kube.KubeError as exc:
        return {**answer, "message": exc.message}
    servers = []
    for server, entry in _server_entries(live, managed, teams):
        if own_port_names is None or entry["port_name"] in own_port_names:
            servers.append({**entry, "server": server})
        elif not entry["managed"]:
            servers.append(entry)
    answer["servers"] = servers
    answer["reachable"] = True
    return answer


def own_port_names(services: QuerySet[GatewayService]) -> set[str]:
    """The port names of these services' current blocks: what a team member may read in full on a live Gateway."""
    return {port_name(spec) for spec in services.values_list("current_revision__spec", flat=True) if spec}


def gateway_view(*, cluster: Cluster, traffic_type: str) -> dict[str, Any]:
    """The live Gateway, which servers the portal manages, and the drift between live and desired."""
    namespace, name = cluster.gateway_ref(traffic_type)
    recorded_state = GatewayState.objects.filter(cluster=cluster, traffic_type=traffic_type).first()
    state = recorded_state or GatewayState(cluster=cluster, traffic_type=traffic_type)
    view: dict[str, Any] = {
        "cluster": cluster.name,
        "traffic_type": traffic_type,
        "gateway": f"{namespace}/{name}",
        "reachable": False,
        "message": "",
        "live": None,
        "managed_servers": [],
        "unmanaged_servers": [],
        "desired_servers": [],
        "servers": [],
        "drift": {"added": [], "removed": [], "changed": []},
        "in_sync": False,
        "last_reconciled_at": state.last_reconciled_at,
        "last_result": state.last_result,
        "last_message": state.last_message,
    }
    try:
        client, live = _read_gateway(cluster, namespace, name)
        desired = collect_desired(cluster, traffic_type)
        settings_ = gateway_settings(cluster, traffic_type)
        facts = read_facts(client, desired.items, settings_, state, verify_all=False)
    except kube.KubeError as exc:
        view["message"] = exc.message
        return view
    unmanaged, managed = split_servers(live, state.managed_servers)
    plan = plan_gateway(live=live, desired=desired.items, settings=settings_, facts=facts, excluded=desired.preset)
    view.update(
        servers=[entry for _, entry in _server_entries(live, managed, list(Team.objects.all()))],
        reachable=True,
        live=live,
        managed_servers=sorted(managed),
        unmanaged_servers=[server_name(s) for s in unmanaged],
        desired_servers=plan.managed_names,
        drift=plan.servers_diff,
        in_sync=plan.gateway is None,
    )
    return view


def live_diff(*, cluster: Cluster, traffic_type: str, server: dict[str, Any], service_id: str | None) -> dict[str, Any]:
    """For dry runs: what writing `server` would change in this cluster's live Gateway, and what it clashes with."""
    answer: dict[str, Any] = {
        "cluster": cluster.name,
        "traffic_type": traffic_type,
        "reachable": False,
        "message": "",
        "added": [],
        "removed": [],
        "changed": [],
        "conflicts": [],
    }
    try:
        _, unmanaged, managed = _read_live(cluster, traffic_type)
    except kube.KubeError as exc:
        return {**answer, "message": exc.message}
    answer["reachable"] = True
    own_name = _current_port_name(service_id)
    index = PortIndex()
    for other in unmanaged:
        index.add(other, f"unmanaged server {server_name(other)!r}")
    for other_name, other in managed.items():
        if other_name not in (own_name, server_name(server)):
            index.add(other, f"managed server {other_name!r}")
    clash = index.clash(server)
    if clash:
        answer["conflicts"].append(clash)
    new_name = server_name(server)
    if own_name and own_name != new_name and own_name in managed:
        answer["removed"].append(managed[own_name])
    if new_name in managed:
        if managed[new_name] != server:
            answer["changed"].append({"before": managed[new_name], "after": server})
    elif not clash:
        answer["added"].append(server)
    return answer


def _server_entries(
    live: dict[str, Any], managed: dict[str, Any], teams: list[Any] | None
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(server, entry) for each server of the live Gateway, in order: its port name, whether the portal manages it,
    and with `teams` the team an unmanaged one's hosts fall in ("none" when no team's)."""
    entries = []
    for server in (live.get("spec") or {}).get("servers") or []:
        entry = {"port_name": server_name(server), "managed": server_name(server) in managed}
        if teams is not None and not entry["managed"]:
            entry["team"] = adoption.owning_team(adoption.bare_hosts(server), teams) or "none"
        entries.append((server, entry))
    return entries


def _current_port_name(service_id: str | None) -> str | None:
    if not service_id:
        return None
    service = GatewayService.objects.filter(pk=service_id).select_related("current_revision").first()
    if service is None or service.current_revision is None:
        return None
    return port_name(service.current_revision.spec)


def _read_live(cluster: Cluster, traffic_type: str) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    """The live Gateway, its unmanaged servers and its managed ones by port name, as the gateway's recorded state
    says (raises kube.KubeError)."""
    namespace, name = cluster.gateway_ref(traffic_type)
    _, live = _read_gateway(cluster, namespace, name)
    state = GatewayState.objects.filter(cluster=cluster, traffic_type=traffic_type).first()
    unmanaged, managed = split_servers(live, state.managed_servers if state else ())
    return live, unmanaged, managed


def _read_gateway(cluster: Cluster, namespace: str, name: str) -> tuple[kube.KubeClient, dict[str, Any]]:
    """A client for the cluster and its live Gateway (raises kube.KubeError)."""
    client = kube.client_for(cluster)
    client.remember_istio_api_version(cluster.istio_api_version)
    return client, client.get_gateway(namespace, name)
