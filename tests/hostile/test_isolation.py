"""Tenant isolation, generically over the URL conf: a team member aiming at another team's objects.

Every route under /api/v1/ with a detail lookup (and any format-suffix variant) x every method it answers,
with the other team's object: 404 (existence never leaks), or 403 where API.md makes the operation platform-only.
Nothing may change. Lists, filters and reports never show the other team's objects either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core import serializers
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from clusters.models import Cluster
from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus, Team
from tests.hostile.world import World, build_world
from ticketing.models import TicketingSource

# What a team member gets for each resource's detail routes when aiming at another team's object (API.md).
# Keys are actions; "*" is every other action. A resource missing here fails the test: decide its contract.
CONTRACT: dict[str, dict[str, int]] = {
    "gateway-services": {"approve": 403, "reject": 403, "approval_diff": 403, "*": 404},
    "teams": {"retrieve": 404, "*": 403},  # writes: platform only
    "audit-events": {"*": 404},
    "ticketing-sources": {"*": 403},  # platform only
    # Clusters are shared, not a team's: teams read them (without credentials); everything else is platform only.
    # The live servers list is for teams too (without whose domains unmanaged hosts fall in).
    "clusters": {"retrieve": 200, "gateways_list": 200, "*": 403},
    # Authenticated by the source's signature, not by the caller's token: unsigned is a 401 for anyone.
    "webhooks": {"*": 401},
}
UNSAFE = ("post", "put", "patch", "delete")
STATE_MODELS = (Team, GatewayService, GatewayServiceRevision, GatewayServiceStatus, Cluster, TicketingSource)


@dataclass(frozen=True)
class Route:
    name: str
    resource: str
    kwargs: tuple[str, ...]
    methods: dict[str, str]  # HTTP method -> action name


def detail_routes() -> Iterator[Route]:
    for prefix, pattern in _walk(get_resolver().url_patterns):
        if not prefix.startswith("api/v1/") or not pattern.name:
            continue
        kwargs = tuple(pattern.pattern.regex.groupindex)
        if not set(kwargs) - {"format"}:
            continue
        route = str(pattern.pattern).lstrip("^")
        resource = route.split("/")[0].split(".")[0]
        yield Route(pattern.name, resource, kwargs, _methods(pattern))


def _walk(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern).lstrip("^"), pattern


def _methods(pattern: URLPattern) -> dict[str, str]:
    actions = getattr(pattern.callback, "actions", None)
    if actions:
        return dict(actions)
    view_class = pattern.callback.view_class
    return {m: m for m in view_class.http_method_names if m not in ("options", "head") and hasattr(view_class, m)}


def other_teams_object(world: World, route: Route) -> dict[str, Any]:
    values = {
        "gateway-services": {"pk": world.other_service},
        "teams": {"slug": world.other_team},
        "audit-events": {"pk": world.other_audit_event},
        "ticketing-sources": {"name": world.ticketing_source},
        "clusters": {"name": world.cluster, "traffic_type": "ingress"},
        "webhooks": {"source": world.ticketing_source},
    }[route.resource]
    return {name: "json" if name == "format" else values[name] for name in route.kwargs}


def snapshot() -> dict[str, str]:
    state = {model.__name__: serializers.serialize("json", model.objects.order_by("pk")) for model in STATE_MODELS}
    # Refused webhook deliveries are audited on purpose; every other event would be a change.
    state["AuditEvent"] = serializers.serialize("json", AuditEvent.objects.exclude(source="webhook").order_by("pk"))
    return state


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def member(world) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {world.member_token}")
    return client


def test_the_url_conf_has_detail_routes_for_every_resource_in_the_contract():
    resources = {route.resource for route in detail_routes()}

    assert resources == set(CONTRACT)


def test_another_teams_objects_answer_404_or_403_to_every_method_and_nothing_changes(world, member):
    before = snapshot()
    answers = []
    for route in detail_routes():
        url = reverse(route.name, kwargs=other_teams_object(world, route))
        for method, action in route.methods.items():
            expected = CONTRACT[route.resource].get(action, CONTRACT[route.resource]["*"])
            response = getattr(member, method)(url, _body(route.resource, action), format="json")
            answers.append((method.upper(), url, response.status_code, expected))

    wrong = [answer for answer in answers if answer[2] != answer[3]]
    assert wrong == [], "\n".join(f"{m} {u}: {got}, expected {exp}" for m, u, got, exp in wrong)
    assert len(answers) >= 25  # every detail route x method of the six resources
    assert snapshot() == before


def test_a_404_for_another_teams_object_is_the_same_as_for_no_object(world, member):
    hidden = member.get(f"/api/v1/gateway-services/{world.other_service}/")
    missing = member.get("/api/v1/gateway-services/00000000-0000-0000-0000-000000000000/")

    assert (hidden.status_code, hidden.json()) == (missing.status_code, missing.json())


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/gateway-services/?team=ledger",
        "/api/v1/gateway-services/?namespace=ledger",
        "/api/v1/teams/",
        "/api/v1/audit-events/?team=ledger",
        "/api/v1/audit-events/",
        "/api/v1/audit-events/?format=csv",
        "/api/v1/reports/changes/?group_by=team",
        "/api/v1/reports/certificates/",
    ],
)
def test_lists_filters_and_reports_never_show_another_teams_objects(world, member, path):
    response = member.get(path)

    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"ledger" not in body
    assert world.other_service.encode() not in body


def test_platform_engineers_see_every_team(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {world.platform_token}")

    assert client.get(f"/api/v1/gateway-services/{world.other_service}/").status_code == 200
    assert client.get("/api/v1/reports/certificates/").json()["count"] == 1


def _body(resource: str, action: str) -> dict[str, Any]:
    """A body that would be accepted if the object were visible, so a refusal cannot come from validation."""
    if action in ("approve", "reject"):
        return {"comment": "looks fine"}
    return {
        "gateway-services": {"hosts": ["pay.ledger.example.com"], "port": 8443},
        "teams": {"name": "Taken over"},
        "ticketing-sources": {"enabled": False},
        "clusters": {"labels": {"env": "hijacked"}},
    }.get(resource, {})
