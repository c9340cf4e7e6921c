"""merge_clashes indexes servers by (port, bind) and TLS host; it must give the pairwise check's exact verdicts.

The reference below is the original quadratic loop (every earlier server on the same port and bind), kept
here as the oracle the indexed version is compared with on generated gateways full of collisions.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.listeners import read_listeners
from services.validation import istio
from services.validation.istio import Issue

PROTOCOLS = ["HTTP", "HTTP2", "GRPC", "HTTPS", "TLS", "TCP", "MONGO", "http", "bogus"]
HOSTS = ["a.example.com", "b.example.com", "*.example.com", "*", "ns/a.example.com"]


def reference_merge_clashes(servers: list, *, gateway_name: str, namespace: str) -> list[Issue]:
    issues: list[Issue] = []
    route_names: dict[str, int] = {}
    seen: list[Any] = []
    for current in read_listeners(servers):
        where = f"spec.servers[{current.index}]"
        for earlier in seen:
            if (earlier.number, earlier.bind) != (current.number, current.bind):
                continue
            reason = istio.merge_reason(earlier, current)
            if reason:
                issues.append(Issue(where, f"{reason}; istiod will skip this server at runtime", "warning"))
        if current.terminating:
            route = f"https.{current.number}.{current.port_name}.{gateway_name}.{namespace}"
            route += f".{current.bind}" if current.bind else ""
            if route in route_names:
                issues.append(
                    Issue(
                        where,
                        f"HTTPS route name {route!r} duplicates spec.servers[{route_names[route]}]; "
                        "istiod will skip this server at runtime. Give it a distinct port name",
                        "warning",
                    )
                )
            route_names.setdefault(route, current.index)
        seen.append(current)
    return issues


@st.composite
def servers(draw) -> dict[str, Any]:
    server: dict[str, Any] = {
        "port": {
            "number": draw(st.sampled_from([80, 443, 8443])),
            "name": draw(st.sampled_from(["p1", "p2", "p3"])),
            "protocol": draw(st.sampled_from(PROTOCOLS)),
        },
        "hosts": draw(st.lists(st.sampled_from(HOSTS), min_size=1, max_size=3)),
    }
    if draw(st.booleans()):
        server["bind"] = draw(st.sampled_from(["", "10.0.0.1"]))
    if draw(st.booleans()):
        server["tls"] = {"mode": draw(st.sampled_from(["SIMPLE", "PASSTHROUGH", "MUTUAL"]))}
    if draw(st.integers(0, 20)) == 0:
        return {"port": "not a port"}  # malformed entries are skipped by both
    return server


@settings(max_examples=500, deadline=None)
@given(st.lists(servers(), max_size=12))
def test_indexed_merge_clashes_gives_the_pairwise_verdicts(gateway_servers):
    expected = reference_merge_clashes(gateway_servers, gateway_name="gw", namespace="istio-system")
    assert istio.merge_clashes(gateway_servers, gateway_name="gw", namespace="istio-system") == expected


def test_thousands_of_distinct_tls_hosts_on_one_port_have_no_clash():
    many = [
        {"port": {"number": 443, "name": f"https-{i}", "protocol": "HTTPS"}, "hosts": [f"s{i}.example.com"]}
        for i in range(5000)
    ]
    many.append({"port": {"number": 443, "name": "https-dup", "protocol": "HTTPS"}, "hosts": ["s7.example.com"]})
    issues = istio.merge_clashes(many, gateway_name="gw", namespace="istio-system")
    assert [issue.path for issue in issues] == ["spec.servers[5000]"]
    assert "spec.servers[7]" in issues[0].message
