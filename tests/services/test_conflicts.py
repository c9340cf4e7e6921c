"""services.conflicts: host claims and Istio's merge rules between services on one gateway port."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.conflicts import Claim, find_conflicts

TLS_PROTOCOLS = {"HTTPS", "TLS"}


def claim(
    service_id: str = "1",
    *,
    team: str = "payments",
    name: str = "checkout",
    hosts: tuple[str, ...] = ("checkout.example.com",),
    protocol: str = "HTTPS",
    port: int = 443,
    clusters: frozenset[str] = frozenset({"prod-eu-1"}),
    traffic_type: str = "ingress",
) -> Claim:
    return Claim(
        service_id=service_id,
        team=team,
        name=name,
        namespace=f"{team}-ns",
        traffic_type=traffic_type,
        clusters=clusters,
        port=port,
        protocol=protocol,
        hosts=hosts,
        tls=protocol in TLS_PROTOCOLS,
    )


CANDIDATE = claim()


def other(**changes) -> Claim:
    base = claim("2", team="shop", name="cart", hosts=("cart.example.com",))
    return replace(base, **changes)


@pytest.mark.parametrize(
    "others",
    [
        [],
        [replace(CANDIDATE, hosts=("checkout.example.com",))],  # itself (same service id) never conflicts
        [other()],  # TLS servers with distinct hosts share a port
        [other(hosts=("checkout.example.com",), clusters=frozenset({"prod-us-1"}))],
        [other(hosts=("checkout.example.com",), traffic_type="egress")],
        [other(hosts=("checkout.example.com",), port=8443)],
        [other(hosts=("*.sub.example.com",))],
    ],
)
def test_no_conflict(others):
    assert find_conflicts(CANDIDATE, others) == []


def test_same_host_case_insensitive_any_team():
    for team in ("shop", "payments"):
        messages = find_conflicts(CANDIDATE, [other(team=team, hosts=("Checkout.Example.COM.",))])
        assert len(messages) == 1
        # Another team is named, never its service; the caller's own service is named so it knows which.
        assert ("team shop" if team == "shop" else "your service payments/cart") in messages[0]
        assert team == "payments" or "cart" not in messages[0]
        assert "443" in messages[0]
        assert "checkout.example.com" in messages[0]


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        (("*.example.com",), ("cart.example.com",)),  # my wildcard covers their host
        (("checkout.example.com",), ("*.example.com",)),  # their wildcard covers my host
        (("*",), ("cart.example.com",)),
        (("*.example.com",), ("*.shop.example.com",)),
    ],
)
def test_wildcard_across_teams(mine, theirs):
    messages = find_conflicts(replace(CANDIDATE, hosts=mine), [other(hosts=theirs)])
    assert len(messages) == 1
    assert "team shop" in messages[0] and "cart" not in messages[0]
    assert "wildcard" in messages[0]
    assert all(host not in messages[0] for host in theirs if host not in mine)


def test_wildcard_within_one_team_is_allowed():
    assert find_conflicts(replace(CANDIDATE, hosts=("*.example.com",)), [other(team="payments")]) == []


def test_candidate_identity_is_not_leaked():
    message = find_conflicts(CANDIDATE, [other(hosts=CANDIDATE.hosts)])[0]
    assert "shop-ns" not in message
    assert "prod-eu-1" in message


@pytest.mark.parametrize(
    ("mine", "theirs", "clash"),
    [
        ("HTTP", "HTTP", False),
        ("HTTP", "HTTP2", False),
        ("GRPC", "HTTP", False),
        ("HTTP", "TCP", True),
        ("TCP", "TCP", True),
        ("MONGO", "MONGO", True),
        ("TCP", "HTTP", True),
        ("HTTP", "HTTPS", True),
        ("TLS", "HTTP", True),
        ("TCP", "TLS", True),
        ("HTTPS", "TLS", False),
        ("TLS", "TLS", False),
    ],
)
def test_protocol_merge_rules(mine, theirs, clash):
    candidate = replace(claim(protocol=mine, port=8080), hosts=("a.example.com",))
    theirs_claim = replace(claim("2", team="shop", name="cart", protocol=theirs, port=8080), hosts=("b.example.com",))
    messages = find_conflicts(candidate, [theirs_claim])
    assert bool(messages) is clash
    if clash:
        assert "8080" in messages[0]
        assert "team shop" in messages[0] and "cart" not in messages[0] and "b.example.com" not in messages[0]
        assert "another port" in messages[0]


def test_one_message_per_reason_and_only_clashing_services():
    others = [
        other(hosts=("checkout.example.com",), protocol="TCP", tls=False, name="db"),
        other(service_id="3", name="fine", hosts=("fine.example.com",)),
    ]
    messages = find_conflicts(CANDIDATE, others)
    assert len(messages) == 2
    assert all("team shop" in m and "db" not in m for m in messages)
