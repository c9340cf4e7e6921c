"""Admin: sources created with a secret shown once, rotated by an action; deliveries read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client

from audit.models import AuditEvent
from ticketing.models import TicketingSource

pytestmark = pytest.mark.django_db
ADD = "/admin/ticketing/ticketingsource/add/"
LIST = "/admin/ticketing/ticketingsource/"


@pytest.fixture
def admin_client(db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def form(**fields):
    data = {
        "name": "jira-prod",
        "kind": "jira",
        "approved_statuses": '["Approved"]',
        "rejected_statuses": '["Declined"]',
    }
    return {**data, "enabled": "on", **fields}


def test_admin_create_generates_the_secret_and_shows_it_once(admin_client, team):
    response = admin_client.post(ADD, form(team=team.pk), follow=True)

    source = TicketingSource.objects.get()
    shown = [str(m) for m in get_messages(response.wsgi_request)] or [str(m) for m in response.context["messages"]]
    assert any(source.secret in m for m in shown)
    event = AuditEvent.objects.get(action="ticketing_source.created")
    assert (event.actor, event.source) == ("root", "admin")
    change_page = admin_client.get(f"{LIST}{source.pk}/change/").content.decode()
    assert source.secret not in change_page


def test_admin_change_is_audited_with_its_changes(admin_client, team):
    admin_client.post(ADD, form(team=team.pk))
    source = TicketingSource.objects.get()

    data = form(team=team.pk, approved_statuses='["Approved", "Done"]')
    del data["kind"]
    admin_client.post(f"{LIST}{source.pk}/change/", data)

    event = AuditEvent.objects.get(action="ticketing_source.updated")
    assert event.changes == {"approved_statuses": [["Approved"], ["Approved", "Done"]]}


def test_admin_refuses_an_unusable_secret(admin_client, team):
    response = admin_client.post(ADD, form(team=team.pk, new_secret="short"))

    assert response.status_code == 200
    assert not TicketingSource.objects.exists()
    assert "printable ASCII" in response.content.decode()


def test_admin_rotate_action_keeps_the_old_secret_valid(admin_client, team):
    admin_client.post(ADD, form(team=team.pk))
    source = TicketingSource.objects.get()
    old = source.secret

    admin_client.post(LIST, {"action": "rotate_secret", "_selected_action": [source.pk]})

    source.refresh_from_db()
    assert source.secret != old and source.previous_secret == old
    assert source.previous_secret_expires_at is not None


def test_deliveries_are_read_only_in_admin(admin_client):
    assert admin_client.get("/admin/ticketing/webhookdelivery/").status_code == 200
    assert admin_client.get("/admin/ticketing/webhookdelivery/add/").status_code == 403


def test_admin_sets_require_references_and_checks_the_reference_field(admin_client, team):
    refused = admin_client.post(ADD, form(team=team.pk, require_references="on", reference_field="fields.x"))
    assert refused.status_code == 200 and not TicketingSource.objects.exists()

    admin_client.post(ADD, form(team=team.pk, require_references="on", reference_field="customfield_10042"))

    source = TicketingSource.objects.get()
    assert (source.require_references, source.reference_field) == (True, "customfield_10042")
    event = AuditEvent.objects.get(action="ticketing_source.created")
    assert event.changes["require_references"] == [None, True]
