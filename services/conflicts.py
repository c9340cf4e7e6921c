"""Pure detection of clashes between gateway services that would land on the same Istio listener.

Two services clash only when they share a cluster, a traffic type (so the same Gateway) and a port number.
Then host claims and Istio's merge rules (istio-gateway-rules.md §7) decide; see `find_conflicts`.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.listeners import normal_host, protocols_clash
from services.validation.hosts import hosts_overlap


@dataclass(frozen=True)
class Claim:
    """What one service revision claims on the gateways it lands on."""

    service_id: str
    team: str
    name: str
    namespace: str
    traffic_type: str
    clusters: frozenset[str]
    port: int
    protocol: str
    hosts: tuple[str, ...]
    tls: bool


def _label(claim: Claim, candidate: Claim) -> str:
    # Another team is named, nothing more: its services, namespaces, hosts and revisions are not the caller's
    # business. The caller's own service is named, so that it knows which one to change.
    if claim.team == candidate.team:
        return f"your service {claim.team}/{claim.name}"
    return f"team {claim.team}"


def _is_wildcard(host: str) -> bool:
    return host == "*" or host.startswith("*.")


def _host_conflicts(candidate: Claim, other: Claim, where: str) -> list[str]:
    messages = []
    for host in candidate.hosts:
        for theirs in other.hosts:
            if normal_host(host) == normal_host(theirs):
                messages.append(
                    f"host '{host}' on port {candidate.port} is already claimed by {_label(other, candidate)}{where}; "
                    "choose another host or port, or ask that team to release it"
                )
            elif other.team != candidate.team and (_is_wildcard(host) or _is_wildcard(theirs)):
                if hosts_overlap(host, theirs):
                    messages.append(
                        f"host '{host}' on port {candidate.port} overlaps a host of {_label(other, candidate)}{where}; "
                        "a wildcard may not cover another team's host: list narrower hosts or use another port"
                    )
    return messages


def _protocol_conflict(candidate: Claim, other: Claim, where: str) -> str | None:
    """Istio's §7 on protocols (`services.listeners`); same-host TLS clashes are reported by the host rule."""
    reason = protocols_clash(other.protocol, candidate.protocol)
    if reason is None:
        return None
    if reason == "plain_and_tls":
        return (
            f"port {candidate.port} cannot carry both plain-text and TLS servers: {_label(other, candidate)} serves "
            f"{other.protocol} there{where}; use another port"
        )
    return (
        f"{candidate.protocol} cannot share port {candidate.port} with {other.protocol} of {_label(other, candidate)}"
        f"{where}; only HTTP, HTTP2 and GRPC servers merge on one port: use another port"
    )


def find_conflicts(candidate: Claim, others: list[Claim]) -> list[str]:
    """Every clash between `candidate` and the other services' claims, as messages for the candidate's owner."""
    messages: list[str] = []
    for other in others:
        if other.service_id == candidate.service_id:
            continue
        shared = candidate.clusters & other.clusters
        if not shared or other.traffic_type != candidate.traffic_type or other.port != candidate.port:
            continue
        where = f" ({candidate.traffic_type} gateway on {', '.join(sorted(shared))})"
        messages += _host_conflicts(candidate, other, where)
        protocol_message = _protocol_conflict(candidate, other, where)
        if protocol_message:
            messages.append(protocol_message)
    return messages
