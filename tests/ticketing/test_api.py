"""/api/v1/ticketing-sources/: platform only, secrets write-only and shown once, every write audited."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from tests.factories import api_client, make_user
from tests.ticketing.helpers import post_generic
from ticketing.models import TicketingSource

pytestmark = pytest.mark.django_db
URL = "/api/v1/ticketing-sources/"


@pytest.fixture
def platform(team):
    return api_client(make_user("pat", platform=True))


def create(client, **fields):
    return client.post(URL, {"name": "ops-generic", "kind": "generic", "team": "payments", **fields}, format="json")


def audit_dump() -> str:
    return json.dumps(list(AuditEvent.objects.values("data", "changes")))


def test_team_members_may_not_see_or_manage_sources(team):
    client = api_client(make_user("alice"))

    assert client.get(URL).status_code == 403
    assert create(client).status_code == 403


def test_create_without_secret_generates_one_and_shows_it_only_then(platform):
    response = create(platform)

    assert response.status_code == 201, response.json()
    secret = response.json()["secret"]
    assert secret.startswith("whsec_")
    assert TicketingSource.objects.get().secret == secret
    detail = platform.get(f"{URL}ops-generic/").json()
    assert "secret" not in detail
    assert detail["webhook_url"].endswith("/api/v1/webhooks/ticketing/ops-generic/")
    assert "secret" not in platform.get(URL).json()["results"][0]
    event = AuditEvent.objects.get(action="ticketing_source.created")
    assert (event.object_type, event.object_repr, event.team) == ("ticketing_source", "ops-generic", "payments")
    assert secret not in audit_dump()


def test_created_secret_authenticates_deliveries(platform, pending):
    secret = create(platform).json()["secret"]

    response = post_generic("ops-generic", {"event": "ticket.approved", "ticket": "OPS-123"}, secret=secret)

    assert response.json()["outcome"] == "approved"


def test_given_secret_is_kept_and_validated_per_kind(platform):
    assert create(platform, name="jira-prod", kind="jira", secret="jira-secret-0123456789").status_code == 201
    assert TicketingSource.objects.get(name="jira-prod").secret == "jira-secret-0123456789"

    response = create(platform, secret="not-a-whsec")
    assert response.status_code == 400
    assert "whsec_" in response.json()["secret"][0]


def test_jira_source_gets_default_status_mapping(platform):
    body = create(platform, name="jira-prod", kind="jira").json()

    assert (body["approved_statuses"], body["rejected_statuses"]) == (["Approved"], ["Declined"])


def test_a_status_cannot_mean_both(platform):
    response = create(platform, kind="jira", approved_statuses=["Done"], rejected_statuses=["done"])

    assert response.status_code == 400
    assert "done" in response.json()["rejected_statuses"][0]


def test_unknown_team_and_kind_are_named(platform):
    response = create(platform, team="nope", kind="github")

    assert response.status_code == 400
    assert set(response.json()) == {"team", "kind"}


def test_update_is_audited_and_refuses_secret_and_kind_changes(platform):
    create(platform)

    patched = platform.patch(f"{URL}ops-generic/", {"enabled": False}, format="json")
    assert patched.status_code == 200
    assert patched.json()["enabled"] is False
    event = AuditEvent.objects.get(action="ticketing_source.updated")
    assert event.changes == {"enabled": [True, False]}

    refused = platform.patch(f"{URL}ops-generic/", {"secret": "whsec_" + "QkJC" * 8, "kind": "jira"}, format="json")
    assert refused.status_code == 400
    assert "rotate-secret" in refused.json()["secret"][0]
    assert "kind" in refused.json()


def test_rotate_secret_returns_the_new_secret_once_and_keeps_the_old_one_for_the_window(platform):
    old = create(platform).json()["secret"]

    response = platform.post(f"{URL}ops-generic/rotate-secret/", {}, format="json")

    assert response.status_code == 200, response.json()
    new = response.json()["secret"]
    assert new.startswith("whsec_") and new != old
    source = TicketingSource.objects.get()
    assert (source.secret, source.previous_secret) == (new, old)
    assert source.valid_secrets(now=timezone.now()) == [new, old]
    assert source.valid_secrets(now=timezone.now() + timedelta(seconds=86401)) == [new]
    event = AuditEvent.objects.get(action="ticketing_source.secret_rotated")
    assert event.data["overlap_seconds"] == 86400
    assert old not in audit_dump() and new not in audit_dump()


def test_rotate_secret_with_given_secret_and_bad_overlap(platform):
    create(platform, name="snow", kind="servicenow")

    refused = platform.post(f"{URL}snow/rotate-secret/", {"overlap_seconds": -1, "secret": "short"}, format="json")
    assert refused.status_code == 400
    assert set(refused.json()) == {"overlap_seconds", "secret"}

    given = platform.post(f"{URL}snow/rotate-secret/", {"secret": "a-new-bearer-token-123456"}, format="json")
    assert given.json()["secret"] == "a-new-bearer-token-123456"


def test_delete_is_audited(platform):
    create(platform)

    assert platform.delete(f"{URL}ops-generic/").status_code == 204
    assert not TicketingSource.objects.exists()
    assert AuditEvent.objects.filter(action="ticketing_source.deleted").count() == 1
