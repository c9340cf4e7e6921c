"""The database pre-filter for conflicts never hides a clash the pure rules would report (it is a superset)."""

from __future__ import annotations

import itertools

import pytest

from services import conflicts
from services.actions import CheckStatement, conflict_candidates
from services.models import GatewayService, GatewayServiceRevision
from tests.factories import make_team, service_spec

pytestmark = pytest.mark.django_db

HOSTS = [
    ["a.payments.example.com"],
    ["A.Payments.example.com."],
    ["*.payments.example.com"],
    ["*.example.com"],
    ["b.a.payments.example.com"],
    ["payments.example.com"],
    ["*"],
    ["other.example.org"],
]
PROTOCOLS = [("HTTP", None), ("GRPC", None), ("TCP", None), ("HTTPS", "SIMPLE"), ("TLS", "PASSTHROUGH")]


def store(team, index: int, hosts: list[str], protocol: str, mode: str | None) -> GatewayService:
    spec = service_spec(f"svc{index}", hosts=hosts, protocol=protocol, mode=mode, port=443, clusters=["c1"])
    service = GatewayService.objects.create(
        name=spec["name"],
        team=team,
        namespace="payments",
        traffic_type="ingress",
        port=443,
        protocol=protocol,
        mode=mode or "",
        hosts_index="|" + "|".join(h.lower() for h in hosts) + "|",
    )
    revision = GatewayServiceRevision.objects.create(service=service, number=1, spec=spec)
    service.current_revision = service.approved_revision = revision
    service.save()
    return service


def candidates(spec: dict) -> set[str]:
    """The services the pre-filter keeps, as the checks read them: one statement written once per shape of spec
    (`CheckStatement`) and sent with this spec's values, which finds what the look-ups find as querysets."""
    branches = conflict_candidates(spec, GatewayService.objects.order_by().values_list("pk", flat=True))
    found = {str(pk) for pk in branches[0].union(*branches[1:], all=True)}
    kept, _ = CheckStatement(spec, exclude_service_id=None, names=False).send()
    assert {str(row.pk) for row in kept} == found
    return found


def claim(service_id: str, team: str, spec: dict) -> conflicts.Claim:
    return conflicts.Claim(
        service_id=service_id,
        team=team,
        name=spec["name"],
        namespace=spec["namespace"],
        traffic_type="ingress",
        clusters=frozenset({"c1"}),
        port=spec["port"],
        protocol=spec["protocol"],
        hosts=tuple(spec["hosts"]),
        tls=bool(spec["mode"]),
    )


def test_prefilter_keeps_every_service_that_clashes():
    ours, theirs = make_team("payments"), make_team("shop")
    stored = [
        store(team, i, hosts, protocol, mode)
        for i, (team, hosts, (protocol, mode)) in enumerate(itertools.product((ours, theirs), HOSTS, PROTOCOLS))
    ]
    all_claims = {str(s.pk): claim(str(s.pk), s.team.slug, s.current_revision.spec) for s in stored}
    checked = 0
    for hosts, (protocol, mode) in itertools.product(HOSTS, PROTOCOLS):
        spec = service_spec("new", hosts=hosts, protocol=protocol, mode=mode, port=443, clusters=["c1"])
        candidate = claim("", "payments", spec)
        clashing = {sid for sid, other in all_claims.items() if conflicts.find_conflicts(candidate, [other])}
        kept = candidates(spec)
        assert clashing <= kept, (hosts, protocol, clashing - kept)
        checked += len(clashing)
    assert checked > 0


def test_prefilter_narrows_a_busy_plain_http_port():
    team = make_team("payments")
    for i in range(30):
        store(team, i, [f"host{i}.payments.example.com"], "HTTP", None)
    spec = service_spec("new", hosts=["host7.payments.example.com"], port=443, clusters=["c1"])

    kept = candidates(spec)

    assert [s.name for s in GatewayService.objects.filter(pk__in=kept)] == ["svc7"]
