"""services.listeners: the one home of Istio's §7 merge rules and of host normalization.

Validation, conflict detection and the planner must agree on when two hosts are the same name and when two
servers can share a listener, whatever the case, trailing dot or `namespace/` prefix of their hosts.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusters.reconcile import PortIndex
from services.conflicts import Claim, find_conflicts
from services.listeners import merge_clash, normal_host, protocols_clash, read_listener
from services.validation.istio import merge_clashes


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("a.example.com", "a.example.com"),
        ("A.Example.COM", "a.example.com"),
        ("a.example.com.", "a.example.com"),
        ("payments/a.example.com", "a.example.com"),
        ("*/A.example.com.", "a.example.com"),
        ("./*.example.com", "*.example.com"),
        ("*", "*"),
    ],
)
def test_normal_host(host, normal):
    assert normal_host(host) == normal


def tls(name: str, host: str, protocol: str = "HTTPS") -> dict[str, Any]:
    return {
        "port": {"number": 443, "name": name, "protocol": protocol},
        "hosts": [host],
        "tls": {"mode": "SIMPLE", "credentialName": name},
    }


def claim(service_id: str, host: str, protocol: str = "HTTPS") -> Claim:
    return Claim(
        service_id=service_id,
        team="payments",
        name=f"svc-{service_id}",
        namespace="payments",
        traffic_type="ingress",
        clusters=frozenset({"prod"}),
        port=443,
        protocol=protocol,
        hosts=(host,),
        tls=protocol in ("HTTPS", "TLS"),
    )


SAME_NAME = [
    ("shop.example.com", "SHOP.example.com"),
    ("shop.example.com", "shop.example.com."),
    ("a/shop.example.com", "b/shop.example.com"),
    ("a/Shop.Example.com.", "shop.example.com"),
]


@pytest.mark.parametrize(("first", "second"), SAME_NAME)
def test_validation_conflicts_and_planner_agree_that_spellings_of_one_name_clash_on_tls(first, second):
    servers = [tls("a", first), tls("b", second)]

    assert [issue.path for issue in merge_clashes(servers, gateway_name="gw", namespace="ns")] == ["spec.servers[1]"]

    index = PortIndex()
    index.add(servers[0], "first")
    assert "already served by first" in (index.clash(servers[1]) or "")

    plain = [normal_host(first), second.rpartition("/")[2]]  # portal specs carry no prefix
    assert any("already claimed" in m for m in find_conflicts(claim("2", plain[1]), [claim("1", plain[0])]))


def test_distinct_names_share_a_tls_listener_everywhere():
    servers = [tls("a", "a/shop.example.com"), tls("b", "a/cart.example.com", "TLS")]
    assert merge_clashes(servers, gateway_name="gw", namespace="ns") == []
    index = PortIndex()
    index.add(servers[0], "first")
    assert index.clash(servers[1]) is None
    assert find_conflicts(claim("2", "cart.example.com", "TLS"), [claim("1", "shop.example.com")]) == []


@pytest.mark.parametrize(
    ("earlier", "current", "reason"),
    [
        ("HTTP", "HTTP2", None),
        ("GRPC", "http", None),
        ("HTTPS", "TLS", None),
        ("HTTP", "HTTPS", "plain_and_tls"),
        ("TLS", "TCP", "plain_and_tls"),
        ("HTTP", "TCP", "plain_protocols"),
        ("MONGO", "TCP", "plain_protocols"),
        ("TCP", "TCP", "plain_protocols"),
    ],
)
def test_protocols_clash(earlier, current, reason):
    assert protocols_clash(earlier.upper(), current.upper()) == reason
    first = read_listener({"port": {"number": 80, "protocol": earlier, "name": "a"}, "hosts": ["x.example.com"]}, 0)
    second = read_listener({"port": {"number": 80, "protocol": current, "name": "b"}, "hosts": ["y.example.com"]}, 1)
    clash = merge_clash(first, second)
    assert (clash.reason if clash else None) == reason


def test_a_server_istiod_refuses_forms_no_listener():
    assert (
        read_listener({"port": {"number": "80", "protocol": "HTTP", "name": "a"}, "hosts": ["x.example.com"]}) is None
    )
    assert read_listener({"port": {"number": 80, "protocol": "bogus", "name": "a"}, "hosts": ["x.example.com"]}) is None
    assert read_listener({"port": "80", "hosts": []}) is None


PROTOCOLS = ["HTTP", "HTTP2", "GRPC", "HTTPS", "TLS", "TCP", "MONGO", "http"]
HOSTS = ["a.example.com", "A.example.com.", "ns/a.example.com", "b.example.com", "*.example.com", "*"]


@st.composite
def gateway_servers(draw) -> list[dict[str, Any]]:
    servers = []
    for index in range(draw(st.integers(1, 6))):
        server: dict[str, Any] = {
            "port": {
                "number": draw(st.sampled_from([80, 443])),
                "name": f"p{index}",
                "protocol": draw(st.sampled_from(PROTOCOLS)),
            },
            "hosts": draw(st.lists(st.sampled_from(HOSTS), min_size=1, max_size=2)),
        }
        if draw(st.booleans()):
            server["bind"] = "10.0.0.1"
        servers.append(server)
    return servers


@settings(max_examples=300, deadline=None)
@given(gateway_servers())
def test_the_planner_refuses_exactly_the_servers_validation_warns_istiod_would_skip(servers):
    """PortIndex (planner) and merge_clashes (validation) are one rule: the planner accepts a server iff
    validation finds no §7 clash between it and the servers accepted before it."""
    index = PortIndex()
    accepted: list[dict[str, Any]] = []
    for server in servers:
        warned = merge_clashes([*accepted, server], gateway_name="gw", namespace="ns")
        clash = index.clash(server)
        assert (clash is None) == (warned == []), (accepted, server, clash, warned)
        if clash is None:
            index.add(server, server["port"]["name"])
            accepted.append(server)
