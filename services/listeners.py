"""What an Istio listener is and when two servers can share one (istio-gateway-rules.md §7).

The one home of the runtime merge rules and of host normalization. Istio validation (`services.validation.istio`),
conflict detection between services (`services.conflicts`) and the gateway planner (`clusters.reconcile`) all ask
this module; each only words the verdict for its reader. Pure: plain data in, plain data out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

ISTIO_PROTOCOLS = (
    "TCP",
    "UDP",
    "GRPC",
    "GRPC-WEB",
    "HTTP",
    "HTTP_PROXY",
    "HTTP2",
    "HTTPS",
    "TLS",
    "MONGO",
    "REDIS",
    "MYSQL",
)
# Istio's protocol.IsHTTP(): plain-text protocols that carry HTTP routes and may share a port.
HTTP_FAMILY = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY"})
TLS_BEARING = frozenset({"HTTPS", "TLS"})
_PASSTHROUGH_MODES = (None, "PASSTHROUGH", "AUTO_PASSTHROUGH")

Kind = Literal["tls", "http", "tcp"]
ClashReason = Literal["shared_tls_host", "plain_and_tls", "plain_protocols"]


def parse_protocol(value: Any) -> str | None:
    """Istio parses protocols case-insensitively; None when the value is not one Istio knows."""
    if not isinstance(value, str):
        return None
    upper = value.upper()
    return upper if upper in ISTIO_PROTOCOLS else None


def protocol_kind(protocol: str) -> Kind:
    """How a listener treats a protocol: TLS-bearing, plain-text HTTP family, or any other plain text."""
    if protocol in TLS_BEARING:
        return "tls"
    if protocol in HTTP_FAMILY:
        return "http"
    return "tcp"


def normal_host(host: str) -> str:
    """The name a host matches: no `namespace/` prefix, lower case, no trailing dot.

    The prefix only scopes which VirtualServices may bind; SNI and Host matching see the name alone, and DNS
    names are case-insensitive with `a.example.com.` the same name as `a.example.com`.
    """
    return host.rpartition("/")[2].lower().rstrip(".")


@dataclass(frozen=True)
class Listener:
    """One server block as istiod merges it: (port number, bind) is the listener, hosts are normalized."""

    index: int
    number: int
    bind: str
    protocol: str
    port_name: str
    hosts: tuple[str, ...]
    terminating: bool

    @property
    def kind(self) -> Kind:
        return protocol_kind(self.protocol)


def is_mapping(value: Any) -> bool:
    """`isinstance(value, Mapping)`, answered at once for a dict: checking against the Mapping ABC costs several
    times more, and planning asks it of thousands of servers."""
    return isinstance(value, dict) or isinstance(value, Mapping)


def read_listener(server: Any, index: int = 0) -> Listener | None:
    """The listener of one server block, or None when istiod would refuse the block at admission anyway."""
    if not is_mapping(server):
        return None
    port = server.get("port")
    if not is_mapping(port):
        return None
    protocol = parse_protocol(port.get("protocol"))
    number = port.get("number")
    hosts = server.get("hosts")
    if protocol is None or not isinstance(number, int) or isinstance(number, bool) or not isinstance(hosts, list):
        return None
    tls = server.get("tls")
    tls = tls if is_mapping(tls) else {}
    return Listener(
        index=index,
        number=number,
        bind=str(server.get("bind") or ""),
        protocol=protocol,
        port_name=str(port.get("name", "")),
        hosts=tuple(dict.fromkeys(normal_host(str(host)) for host in hosts)),
        terminating=protocol == "HTTPS" and tls.get("mode") not in _PASSTHROUGH_MODES,
    )


def read_listeners(servers: Iterable[Any]) -> list[Listener]:
    """The listeners of a Gateway's servers, in order; malformed blocks are skipped (index = position)."""
    found = (read_listener(server, index) for index, server in enumerate(servers))
    return [listener for listener in found if listener is not None]


@dataclass(frozen=True)
class Clash:
    """Why istiod skips a server at runtime: the §7 rule broken, and the TLS host shared (when that is why)."""

    reason: ClashReason
    host: str = ""


def protocols_clash(earlier: str, current: str) -> ClashReason | None:
    """§7 on protocols alone: TLS with TLS merges (hosts decide), HTTP family with HTTP family; nothing else."""
    earlier_kind, current_kind = protocol_kind(earlier), protocol_kind(current)
    if earlier_kind == "tls" and current_kind == "tls":
        return None
    if (earlier_kind == "tls") != (current_kind == "tls"):
        return "plain_and_tls"
    if earlier_kind == "http" and current_kind == "http":
        return None
    return "plain_protocols"


def merge_clash(earlier: Listener, current: Listener) -> Clash | None:
    """§7: why `current` cannot be merged with `earlier` on the same (port, bind), or None when istiod merges them."""
    reason = protocols_clash(earlier.protocol, current.protocol)
    if reason:
        return Clash(reason)
    if current.kind == "tls":
        shared = sorted(set(earlier.hosts) & set(current.hosts))
        if shared:
            return Clash("shared_tls_host", shared[0])
    return None


@dataclass
class _PortGroup:
    """Earlier listeners on one (port, bind), split by what they can clash with."""

    tls: list[Listener] = dataclasses.field(default_factory=list)
    tls_by_host: dict[str, list[Listener]] = dataclasses.field(default_factory=dict)
    plain_http: list[Listener] = dataclasses.field(default_factory=list)
    plain_other: list[Listener] = dataclasses.field(default_factory=list)

    def candidates(self, current: Listener) -> list[Listener]:
        """The earlier listeners `merge_clash` may object to, in index order; every other pairing merges."""
        if current.kind == "tls":
            sharing = {id(e): e for host in current.hosts for e in self.tls_by_host.get(host, [])}
            found = [*self.plain_http, *self.plain_other, *sharing.values()]
        elif current.kind == "http":
            found = [*self.tls, *self.plain_other]
        else:
            found = [*self.tls, *self.plain_http, *self.plain_other]
        return sorted(found, key=lambda listener: listener.index)

    def add(self, listener: Listener) -> None:
        if listener.kind == "tls":
            self.tls.append(listener)
            for host in listener.hosts:
                self.tls_by_host.setdefault(host, []).append(listener)
        elif listener.kind == "http":
            self.plain_http.append(listener)
        else:
            self.plain_other.append(listener)


class ListenerIndex:
    """Listeners accepted so far, indexed by (port, bind) and TLS host.

    `clashes` gives exactly the verdicts of `merge_clash` against every earlier listener on the same (port, bind),
    but the work grows with the clashes found rather than with every pair (a gateway may hold thousands on 443).
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[int, str], _PortGroup] = {}

    def clashes(self, current: Listener) -> Iterator[tuple[Listener, Clash]]:
        """(earlier listener, clash) for every earlier listener `current` cannot merge with, in index order."""
        group = self._groups.get((current.number, current.bind))
        if group is None:
            return
        for earlier in group.candidates(current):
            clash = merge_clash(earlier, current)
            if clash:
                yield earlier, clash

    def add(self, listener: Listener) -> None:
        self._groups.setdefault((listener.number, listener.bind), _PortGroup()).add(listener)
