"""Revisions: merged onto the latest one under the row lock, guarded by ETag/If-Match, linked to a ticket only by
the write that names it, each with its own approval reference."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.test import override_settings

from audit.models import AuditEvent
from services import actions
from services.models import GatewayService, GatewayServiceRevision
from services.references import approval_reference, references_in
from tests.factories import api_client, http_service, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
URL = "/api/v1/gateway-services/"


@pytest.fixture
def alice():
    return make_user("alice")


@pytest.fixture
def team(alice):
    return make_team("payments", members=[alice])


@pytest.fixture
def client(alice, team):
    make_cluster("prod-eu-1")
    make_cluster("gated", requires_approval=True, labels={"env": "gated"})
    return api_client(alice)


@pytest.fixture
def platform():
    return api_client(make_user("root", platform=True))


def create(client, **overrides) -> dict:
    response = client.post(URL, http_service(**overrides), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def detail(service: dict) -> str:
    return f"{URL}{service['id']}/"


# --- ETag and If-Match ---------------------------------------------------------------------------------------------


def test_answers_carry_the_revision_as_a_strong_etag(client):
    service = create(client)
    assert client.get(detail(service)).headers["ETag"] == '"1"'

    patched = client.patch(detail(service), {"port": 8080}, format="json")

    assert patched.headers["ETag"] == '"2"'
    assert client.get(detail(service)).headers["ETag"] == '"2"'


@pytest.mark.parametrize("if_match", ['"1"', '"7", "1"', "*"])
def test_if_match_naming_the_current_revision_or_star_lets_the_write_through(client, if_match):
    service = create(client)

    response = client.patch(detail(service), {"port": 8080}, format="json", HTTP_IF_MATCH=if_match)

    assert response.status_code == 200, response.content
    assert response.json()["revision"] == 2


@pytest.mark.parametrize("if_match", ['W/"1"', '"2"', "1", "", '"²"', '"' + "9" * 5000 + '"', "garbage"])
def test_a_weak_stale_or_unquoted_if_match_answers_412_and_changes_nothing(client, if_match):
    service = create(client)
    before = (GatewayServiceRevision.objects.count(), AuditEvent.objects.count())

    responses = [
        client.patch(detail(service), {"port": 8080}, format="json", HTTP_IF_MATCH=if_match),
        client.patch(f"{detail(service)}?dry_run=true", {"port": 8080}, format="json", HTTP_IF_MATCH=if_match),
        client.delete(detail(service), HTTP_IF_MATCH=if_match),
    ]

    assert [r.status_code for r in responses] == [412, 412, 412]
    assert "revision 1" in responses[0].json()["detail"][0]
    assert (GatewayServiceRevision.objects.count(), AuditEvent.objects.count()) == before
    assert GatewayService.objects.get(pk=service["id"]).deleting_at is None


def test_an_approval_with_a_stale_if_match_decides_nothing(client, platform):
    service = create(client, clusters=["gated"])
    client.patch(detail(service), {"port": 8080}, format="json")

    stale = platform.post(f"{detail(service)}approve/", {}, format="json", HTTP_IF_MATCH='"1"')
    fresh = platform.post(f"{detail(service)}approve/", {}, format="json", HTTP_IF_MATCH='"2"')

    assert stale.status_code == 412, stale.content
    assert fresh.status_code == 200 and fresh.headers["ETag"] == '"2"'
    decided = dict(GatewayServiceRevision.objects.values_list("number", "approval"))
    assert decided == {1: "pending", 2: "approved"}


def test_the_schema_documents_etag_and_if_match(client):
    import yaml

    response = client.get("/api/schema/?format=json")
    schema = (
        response.json() if response["Content-Type"].startswith("application/json") else yaml.safe_load(response.content)
    )
    patch = schema["paths"]["/api/v1/gateway-services/{id}/"]["patch"]

    assert "If-Match" in [p["name"] for p in patch["parameters"] if p["in"] == "header"]
    assert "412" in patch["responses"]
    assert "ETag" in patch["responses"]["200"]["headers"]


# --- the merge happens on the latest revision, under the lock ------------------------------------------------------


def test_a_patch_from_a_stale_read_is_merged_onto_the_latest_revision(client, alice):
    service = create(client)
    stale = GatewayService.objects.select_related("current_revision").get(pk=service["id"])
    client.patch(detail(service), {"https_redirect": True}, format="json")

    actions.gateway_service_update(
        service=stale, data={"port": 8080}, user=alice, partial=True
    )  # what a request that read revision 1 and then waited for the lock does

    latest = GatewayService.objects.get(pk=service["id"]).current_revision
    assert (latest.number, latest.spec["port"], latest.spec["https_redirect"]) == (3, 8080, True)
    event = AuditEvent.objects.filter(action="gateway_service.updated").latest("id")
    assert event.changes == {"port": [80, 8080]}


def test_a_put_back_to_an_earlier_spec_from_a_stale_read_is_a_new_revision(client, alice):
    service = create(client)
    stale = GatewayService.objects.select_related("current_revision").get(pk=service["id"])
    client.patch(detail(service), {"port": 8080}, format="json")

    from services.specs import parse

    actions.gateway_service_update(service=stale, data=parse(http_service()), user=alice)

    latest = GatewayService.objects.get(pk=service["id"]).current_revision
    assert (latest.number, latest.spec["port"]) == (3, 80)
    event = AuditEvent.objects.filter(action="gateway_service.updated").latest("id")
    assert event.changes == {"port": [8080, 80]}


# --- tickets -------------------------------------------------------------------------------------------------------


def test_a_patch_links_the_new_revision_only_to_the_ticket_it_names(client):
    service = create(client, clusters=["gated"], ticket="CHG-1")

    untouched = client.patch(detail(service), {"port": 80}, format="json")
    plain = client.patch(detail(service), {"port": 8080}, format="json")
    named = client.patch(detail(service), {"port": 8081, "ticket": "CHG-2"}, format="json")

    assert (untouched.json()["revision"], untouched.json()["ticket"]) == (1, "CHG-1")  # nothing changed
    assert (plain.json()["revision"], plain.json()["ticket"]) == (2, "")
    assert (named.json()["revision"], named.json()["ticket"]) == (3, "CHG-2")
    tickets = dict(GatewayServiceRevision.objects.values_list("number", "ticket"))
    assert tickets == {1: "CHG-1", 2: "", 3: "CHG-2"}


def test_a_second_pending_revision_under_one_ticket_is_refused_and_the_refusal_audited(client):
    service = create(client, clusters=["gated"], ticket="CHG-1")

    refused = client.put(detail(service), http_service(clusters=["gated"], port=8080, ticket="CHG-1"), format="json")

    assert refused.status_code == 400
    assert "CHG-1" in refused.json()["ticket"][0] and "Revision 1" in refused.json()["ticket"][0]
    assert GatewayServiceRevision.objects.count() == 1
    event = AuditEvent.objects.get(action="gateway_service.update_refused")
    assert (event.ticket, event.data["reason"], event.data["pending_revision"]) == ("CHG-1", "ticket_in_use", 1)


def test_the_same_ticket_may_name_a_new_revision_once_the_pending_one_is_decided(client, platform):
    service = create(client, clusters=["gated"], ticket="CHG-1")
    assert platform.post(f"{detail(service)}reject/", {}, format="json").status_code == 200

    again = client.patch(detail(service), {"port": 8080, "ticket": "CHG-1"}, format="json")

    assert again.status_code == 200, again.content
    assert again.json()["revision"] == 2


# --- approval references -------------------------------------------------------------------------------------------


def test_every_revision_stores_its_reference_shown_in_the_api_and_history(client):
    service = create(client, clusters=["gated"])
    second = client.patch(detail(service), {"port": 8080}, format="json").json()

    stored = list(GatewayServiceRevision.objects.order_by("number").values_list("approval_reference", flat=True))
    shown = [r["approval_reference"] for r in client.get(f"{detail(service)}history/").json()["revisions"]]
    assert stored == shown == [service["approval_reference"], second["approval_reference"]]
    assert all(references_in(f"approve {ref} please") == [ref] for ref in stored)


def test_a_reference_depends_on_service_number_spec_and_the_secret_key():
    spec = {"port": 80, "hosts": ["a.example.com"]}
    reference = approval_reference(service_id="s1", number=1, spec=spec)

    assert reference == approval_reference(service_id="s1", number=1, spec=dict(reversed(spec.items())))
    others = {
        approval_reference(service_id="s2", number=1, spec=spec),
        approval_reference(service_id="s1", number=2, spec=spec),
        approval_reference(service_id="s1", number=1, spec={**spec, "port": 81}),
    }
    with override_settings(SECRET_KEY="another-secret-key"):
        others.add(approval_reference(service_id="s1", number=1, spec=spec))
    assert reference not in others and len(others) == 4


def test_the_migration_gives_existing_revisions_their_reference(client):
    service = create(client)
    revision = GatewayServiceRevision.objects.get()
    GatewayServiceRevision.objects.filter(pk=revision.pk).update(approval_reference="")
    migration = importlib.import_module("services.migrations.0004_revision_approval_reference")

    migration.fill_references(apps, None)

    expected = approval_reference(service_id=revision.service_id, number=1, spec=revision.spec)
    assert GatewayServiceRevision.objects.get().approval_reference == expected == service["approval_reference"]


def test_an_answer_sent_back_as_it_is_changes_nothing(client):
    service = create(client, clusters=["gated"], ticket="CHG-1")
    body = client.get(detail(service)).json()

    response = client.put(detail(service), body, format="json", HTTP_IF_MATCH='"1"')

    assert response.status_code == 200, response.content
    assert (response.json()["revision"], response.json()["ticket"]) == (1, "CHG-1")


def test_the_admin_shows_each_revisions_reference(client):
    from django.test import Client

    service = create(client, clusters=["gated"])
    root = make_user("admin-root", platform=True)
    root.is_superuser = True
    root.save()
    browser = Client()
    browser.force_login(root)

    page = browser.get(f"/admin/services/gatewayservice/{service['id']}/change/").content.decode()

    assert service["approval_reference"] in page
