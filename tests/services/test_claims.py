"""Only what runs, or is approved to run, holds a claim on a cluster's listener (services.actions.claims_on_port)."""

from __future__ import annotations

import pytest

from services.choices import State
from services.models import GatewayService, GatewayServiceStatus, Team
from services.rendering import block_bytes
from tests.factories import api_client, http_service, make_cluster, make_team, make_user

URL = "/api/v1/gateway-services/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def teams():
    make_cluster("dev")
    make_cluster("prod", requires_approval=True)
    alice, bob = make_user("alice"), make_user("bob")
    make_team("demo", members=[alice], domains=["example.com"])
    make_team("search", members=[bob], domains=["example.com"])
    return api_client(alice), api_client(bob), api_client(make_user("root", platform=True))


def plain(name, namespace, **overrides):
    return http_service(name=name, namespace=namespace, hosts=["shared.example.com"], port=443, **overrides)


def tls(name, namespace, **overrides):
    return plain(name, namespace, protocol="TLS", mode="PASSTHROUGH", **overrides)


def test_a_block_the_planner_left_out_holds_no_claim_on_that_cluster_only(teams):
    alice, bob, _ = teams
    app = alice.post(URL, plain("app", "demo", clusters=["dev"]), format="json").json()
    GatewayServiceStatus.objects.filter(service_id=app["id"]).update(state=State.REJECTED, revision=1)

    assert bob.post(URL, tls("shop", "search", clusters=["dev"]), format="json").status_code == 201

    GatewayServiceStatus.objects.filter(service_id=app["id"]).update(state=State.APPLIED)
    refused = bob.post(URL, tls("find", "search", clusters=["dev"]), format="json")
    assert refused.status_code == 400 and "team demo" in str(refused.json())
    assert "app" not in str(refused.json()).replace("approval", "")


def test_a_pending_removal_from_a_gated_cluster_keeps_its_claim_there(teams):
    alice, bob, root = teams
    app = alice.post(URL, plain("app", "demo", clusters=["dev", "prod"]), format="json").json()
    assert root.post(f"{URL}{app['id']}/approve/", {}, format="json").status_code == 200

    assert alice.delete(f"{URL}{app['id']}/").status_code == 202
    assert alice.get(f"{URL}{app['id']}/").json()["approval"] == "pending"

    assert bob.post(URL, tls("shop", "search", clusters=["prod"]), format="json").status_code == 400
    assert bob.post(URL, tls("shop", "search", clusters=["dev"]), format="json").status_code == 201


def test_rejecting_a_pending_removal_keeps_the_service(teams):
    alice, _, root = teams
    app = alice.post(URL, plain("app", "demo", clusters=["prod"]), format="json").json()
    assert root.post(f"{URL}{app['id']}/approve/", {}, format="json").status_code == 200
    assert alice.delete(f"{URL}{app['id']}/").status_code == 202

    assert root.post(f"{URL}{app['id']}/reject/", {}, format="json").status_code == 200

    service = GatewayService.objects.get(pk=app["id"])
    assert service.deleting_at is None and service.approved_revision.number == 1


def test_an_approval_that_would_take_the_gateway_past_its_byte_budget_is_refused(teams, settings):
    alice, bob, root = teams
    Team.objects.update(gateway_budget_share=1.0)
    one = block_bytes({**plain("app", "demo"), "protocol": "HTTP", "mode": None, "tls_options": {}})
    settings.GATEWAY_BYTE_BUDGET = one * 3 // 2  # one block fits, two do not
    first = alice.post(
        URL, http_service(name="app", namespace="demo", hosts=["a.example.com"], clusters=["prod"]), format="json"
    )
    second = bob.post(
        URL, http_service(name="app", namespace="search", hosts=["b.example.com"], clusters=["prod"]), format="json"
    )
    assert (first.status_code, second.status_code) == (201, 201)  # pending revisions are not in the Gateway's total

    assert root.post(f"{URL}{first.json()['id']}/approve/", {}, format="json").status_code == 200
    refused = root.post(f"{URL}{second.json()['id']}/approve/", {}, format="json")

    assert refused.status_code == 400 and "bytes" in str(refused.json()), refused.content
    assert bob.get(f"{URL}{second.json()['id']}/").json()["approval"] == "pending"
