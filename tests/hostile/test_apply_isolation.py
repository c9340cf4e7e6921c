"""A team's declarative apply never reaches another team's services: not by name, not by apply set, not by prune."""

from __future__ import annotations

import pytest
import yaml

from services.models import GatewayService
from tests.factories import api_client, http_service, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
URL = "/api/v1/gateway-services/"


def document(name: str, namespace: str, host: str) -> dict:
    spec = http_service(hosts=[host])
    spec.pop("name"), spec.pop("namespace")
    return {
        "apiVersion": "gatewayportal.io/v1",
        "kind": "GatewayService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture
def victim():
    make_cluster("prod-eu-1")
    owner = make_user("owner")
    make_team("payments", members=[owner])
    client = api_client(owner)
    text = yaml.safe_dump(document("checkout", "payments", "checkout.payments.example.com"))
    assert (
        client.post(f"{URL}apply/?team=payments&apply_set=web", text, content_type="application/yaml").status_code
        == 200
    )
    return GatewayService.objects.get(name="checkout")


def test_the_same_apply_set_and_prune_from_another_team_leave_the_victim_alone(victim):
    mallory = make_user("mallory")
    make_team("attacker", members=[mallory])
    attacker = api_client(mallory)
    own = yaml.safe_dump(document("tool", "attacker", "tool.attacker.example.com"))

    pruned = attacker.post(f"{URL}apply/?team=attacker&apply_set=web&prune=true", own, content_type="application/yaml")

    assert pruned.status_code == 200, pruned.json()
    assert [r["action"] for r in pruned.json()["results"]] == ["created"]
    victim.refresh_from_db()
    assert victim.deleting_at is None and victim.current_revision.number == 1


def test_declaring_the_victims_service_is_refused_without_naming_it(victim):
    mallory = make_user("mallory")
    make_team("attacker", members=[mallory])
    attacker = api_client(mallory)
    theirs = yaml.safe_dump(document("checkout", "payments", "checkout.payments.example.com"))

    refused = attacker.post(f"{URL}apply/?team=attacker&apply_set=web", theirs, content_type="application/yaml")
    as_payments = attacker.post(f"{URL}apply/?team=payments&apply_set=web", theirs, content_type="application/yaml")

    assert refused.status_code == 400
    assert "namespace" in refused.json()["documents"]["0"]
    assert as_payments.status_code == 400 and "team" in as_payments.json()
    assert "owner" not in str(refused.json()) + str(as_payments.json())
    victim.refresh_from_db()
    assert victim.current_revision.number == 1
