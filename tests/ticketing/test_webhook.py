"""The ticketing webhook end to end over HTTP: real signatures, real database, audited outcomes."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from audit.models import AuditEvent
from services.models import GatewayService, GatewayServiceRevision
from tests.factories import make_team
from tests.ticketing.helpers import (
    GENERIC_SECRET,
    JIRA_SECRET,
    SERVICENOW_TOKEN,
    jira_body,
    make_pending_revision,
    post_generic,
    post_jira,
    post_servicenow,
    servicenow_body,
    standard_headers,
    url,
)
from ticketing import actions
from ticketing.models import WebhookDelivery

pytestmark = pytest.mark.django_db
APPROVE = {"event": "ticket.approved", "ticket": "OPS-123", "actor": "carol@example.com", "comment": "CAB approved"}


def snapshot() -> tuple:
    """Everything a delivery may change: decisions, services, recorded deliveries."""
    return (
        sorted(GatewayServiceRevision.objects.values_list("pk", "approval", "decided_by")),
        GatewayService.objects.count(),
        WebhookDelivery.objects.count(),
    )


def last_refusal() -> AuditEvent:
    return AuditEvent.objects.filter(action="webhook.refused").latest("id")


def assert_no_secret_in_audit() -> None:
    dumped = json.dumps(list(AuditEvent.objects.values("data", "changes", "actor", "object_repr")))
    for secret in (GENERIC_SECRET, JIRA_SECRET, SERVICENOW_TOKEN, "v1,", "sha256="):
        assert secret not in dumped


# --- decisions by each kind ---------------------------------------------------------------------------


def test_generic_approval_approves_the_pending_revision_as_the_ticket_actor(generic_source, pending):
    response = post_generic("ops-generic", APPROVE)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["outcome"] == "approved"
    assert body["ticket"] == "OPS-123"
    assert body["services"] == [str(pending.service_id)]
    pending.refresh_from_db()
    assert (pending.approval, pending.decided_by, pending.decision_comment) == (
        "approved",
        "carol@example.com",
        "CAB approved",
    )
    assert GatewayService.objects.get().approved_revision_id == pending.pk
    decision = AuditEvent.objects.get(action="gateway_service.approved")
    assert (decision.actor, decision.source, decision.ticket) == ("carol@example.com", "webhook", "OPS-123")
    received = AuditEvent.objects.get(action="webhook.received")
    assert (received.actor, received.source, received.data["outcome"]) == ("carol@example.com", "webhook", "approved")
    assert_no_secret_in_audit()


def test_generic_rejection_rejects_and_keeps_the_revision_in_history(generic_source, pending):
    response = post_generic("ops-generic", {**APPROVE, "event": "ticket.rejected", "comment": "too risky"})

    assert response.json()["outcome"] == "rejected"
    pending.refresh_from_db()
    assert pending.approval == "rejected"
    assert GatewayService.objects.get().approved_revision_id is None


def test_decision_acts_only_on_the_sources_team(generic_source, pending, gated_cluster):
    other = make_pending_revision(make_team("shipping"), name="tracking")

    post_generic("ops-generic", APPROVE)

    other.refresh_from_db()
    assert other.approval == "pending"


def test_decision_without_pending_revision_is_ignored(generic_source, pending):
    response = post_generic("ops-generic", {**APPROVE, "ticket": "OPS-999"})

    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert "OPS-999" in response.json()["reason"]
    pending.refresh_from_db()
    assert pending.approval == "pending"


def test_jira_transition_to_approved_approves(jira_source, pending):
    response = post_jira("jira-prod", jira_body("jira_issue_updated_approved.json"))

    assert response.status_code == 200, response.json()
    assert response.json()["outcome"] == "approved"
    pending.refresh_from_db()
    assert (pending.approval, pending.decided_by) == ("approved", "Carol Approver")
    assert pending.decision_comment == "CAB approved for the Tuesday window."


def test_jira_transition_to_declined_rejects(jira_source, pending):
    response = post_jira("jira-prod", jira_body("jira_issue_updated_declined.json"))

    assert response.json()["outcome"] == "rejected"
    pending.refresh_from_db()
    assert pending.approval == "rejected"


def test_jira_update_without_status_change_is_ignored(jira_source, pending):
    response = post_jira("jira-prod", jira_body("jira_issue_updated_assignee.json"))

    assert response.json()["outcome"] == "ignored"
    pending.refresh_from_db()
    assert pending.approval == "pending"


def test_servicenow_approved_change_request_approves(servicenow_source, team, gated_cluster):
    revision = make_pending_revision(team, ticket="CHG0030042")

    response = post_servicenow("snow", servicenow_body("servicenow_change_approved.json"))

    assert response.status_code == 200, response.json()
    assert response.json()["outcome"] == "approved"
    revision.refresh_from_db()
    assert (revision.approval, revision.decided_by) == ("approved", "carol.approver")


def test_servicenow_rejected_change_request_rejects(servicenow_source, team, gated_cluster):
    revision = make_pending_revision(team, ticket="CHG0030043")

    response = post_servicenow("snow", servicenow_body("servicenow_change_rejected_table_api.json"))

    assert response.json()["outcome"] == "rejected"
    revision.refresh_from_db()
    assert revision.approval == "rejected"


# --- refusals: answered as specified, nothing changed, audited --------------------------------------------


def test_forged_generic_signature_is_401(generic_source, pending):
    before = snapshot()
    forged = "whsec_" + "A" * 43 + "="

    response = post_generic("ops-generic", APPROVE, secret=forged)

    assert response.status_code == 401
    assert snapshot() == before
    refusal = last_refusal()
    assert (refusal.data["reason"], refusal.data["status"], refusal.source) == ("bad_signature", 401, "webhook")
    assert_no_secret_in_audit()


def test_forged_jira_signature_is_401(jira_source, pending):
    before = snapshot()

    response = post_jira("jira-prod", jira_body("jira_issue_updated_approved.json"), secret="not-the-jira-secret-000")

    assert response.status_code == 401
    assert snapshot() == before
    assert last_refusal().data["reason"] == "bad_signature"


def test_wrong_servicenow_token_is_401(servicenow_source, team, gated_cluster):
    make_pending_revision(team, ticket="CHG0030042")
    before = snapshot()

    response = post_servicenow(
        "snow", servicenow_body("servicenow_change_approved.json"), token="guess-0123456789abcdef"
    )

    assert response.status_code == 401
    assert snapshot() == before
    assert last_refusal().data["reason"] == "bad_signature"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_signature_header_is_401(generic_source, pending, missing):
    before = snapshot()
    body = json.dumps(APPROVE).encode()
    headers = standard_headers(GENERIC_SECRET, "msg_1", body)
    del headers[missing]

    response = Client().post(url("ops-generic"), data=body, content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert missing in response.json()["detail"]
    assert snapshot() == before
    assert last_refusal().data["reason"] == "bad_signature"


def test_missing_jira_signature_is_401(jira_source, pending):
    before = snapshot()
    body = jira_body("jira_issue_updated_approved.json")

    response = Client().post(url("jira-prod"), data=body, content_type="application/json")

    assert response.status_code == 401
    assert snapshot() == before


@pytest.mark.parametrize("offset", [-301, 400])
def test_stale_timestamp_is_400(generic_source, pending, offset):
    before = snapshot()

    response = post_generic("ops-generic", APPROVE, timestamp=int(time.time()) + offset)

    assert response.status_code == 400
    assert "timestamp" in response.json()
    assert snapshot() == before
    assert last_refusal().data["reason"] == "stale_timestamp"


def test_stale_jira_event_time_is_400(jira_source, pending):
    before = snapshot()
    body = jira_body("jira_issue_updated_approved.json", timestamp=int((time.time() - 600) * 1000))

    response = post_jira("jira-prod", body)

    assert response.status_code == 400
    assert snapshot() == before


def test_replayed_webhook_id_is_a_duplicate_and_changes_nothing(generic_source, pending, team):
    assert post_generic("ops-generic", APPROVE, msg_id="msg_replay").json()["outcome"] == "approved"
    # A newer revision names the same ticket; a replay of the old approval must not approve it.
    newer = GatewayServiceRevision.objects.create(
        service=pending.service, number=2, spec=pending.spec, approval="pending", ticket="OPS-123"
    )
    before = snapshot()

    response = post_generic("ops-generic", APPROVE, msg_id="msg_replay")

    assert response.status_code == 200
    assert response.json()["outcome"] == "duplicate"
    assert snapshot() == before
    newer.refresh_from_db()
    assert newer.approval == "pending"
    assert AuditEvent.objects.filter(action="webhook.received", data__outcome="duplicate").count() == 1


def test_replayed_jira_body_is_a_duplicate(jira_source, pending):
    body = jira_body("jira_issue_updated_approved.json")
    assert post_jira("jira-prod", body).json()["outcome"] == "approved"
    before = snapshot()

    response = post_jira("jira-prod", body)

    assert response.json()["outcome"] == "duplicate"
    assert snapshot() == before


def test_unknown_source_is_404(generic_source, pending):
    before = snapshot()

    response = post_generic("no-such-source", APPROVE)

    assert response.status_code == 404
    assert snapshot() == before
    # Anyone can name any source: only the log records it, never the audit chain.
    assert not AuditEvent.objects.filter(action="webhook.refused").exists()


def test_delivery_signed_for_another_source_is_401(generic_source, pending, team):
    from ticketing.models import TicketingSource

    TicketingSource.objects.create(name="other-generic", kind="generic", team=team, secret="whsec_" + "QkJC" * 8)
    before = snapshot()

    response = post_generic("other-generic", APPROVE)

    assert response.status_code == 401
    assert snapshot() == before


def test_disabled_source_is_404_like_an_unknown_one(generic_source, pending):
    generic_source.enabled = False
    generic_source.save()
    before = snapshot()

    response = post_generic("ops-generic", APPROVE)

    assert response.status_code == 404
    assert snapshot() == before
    assert last_refusal().data["reason"] == "source_disabled"


def test_malformed_json_is_400(generic_source, pending):
    before = snapshot()
    body = b'{"event": "ticket.approved", "ticket": '
    headers = standard_headers(GENERIC_SECRET, "msg_bad", body)

    response = Client().post(url("ops-generic"), data=body, content_type="application/json", headers=headers)

    assert response.status_code == 400
    assert "non_field_errors" in response.json()
    assert snapshot() == before
    assert last_refusal().data["reason"] == "malformed_body"


def test_unknown_generic_event_is_400_naming_the_accepted_events(generic_source, pending):
    response = post_generic("ops-generic", {**APPROVE, "event": "ticket.aproved"})

    assert response.status_code == 400
    assert "ticket.approved" in response.json()["event"][0]


def test_oversized_body_is_413(generic_source, pending):
    before = snapshot()
    body = json.dumps({**APPROVE, "comment": "x" * (1024 * 1024)}).encode()
    headers = standard_headers(GENERIC_SECRET, "msg_big", body)

    response = Client().post(url("ops-generic"), data=body, content_type="application/json", headers=headers)

    assert response.status_code == 413
    assert snapshot() == before


def test_oversized_body_without_content_length_is_413_and_audited(generic_source, pending):
    before = snapshot()
    body = json.dumps({**APPROVE, "comment": "x" * (1024 * 1024)}).encode()

    answer = actions.webhook_receive(
        source_name="ops-generic",
        headers=standard_headers(GENERIC_SECRET, "msg_big", body),
        content_length=None,
        read_body=lambda: body,
    )

    assert answer.status == 413
    assert snapshot() == before
    assert last_refusal().data["reason"] == "body_too_large"


@override_settings(TICKETING_RATE_LIMIT="2/min")
def test_rate_limit_per_source_is_429(generic_source, jira_source, pending):
    assert post_generic("ops-generic", {**APPROVE, "ticket": "OPS-1"}, msg_id="m1").status_code == 200
    assert post_generic("ops-generic", {**APPROVE, "ticket": "OPS-2"}, msg_id="m2").status_code == 200
    before = snapshot()

    response = post_generic("ops-generic", APPROVE, msg_id="m3")

    assert response.status_code == 429
    assert snapshot() == before
    assert last_refusal().data["reason"] == "rate_limited"
    # Another source has its own budget.
    assert post_jira("jira-prod", jira_body("jira_issue_updated_approved.json")).status_code == 200


# --- secret rotation ----------------------------------------------------------------------------------


def test_rotated_out_secret_is_accepted_within_the_overlap_and_refused_after(generic_source, pending, team):
    new_secret = actions.ticketing_source_rotate_secret(source=generic_source, overlap_seconds=3600)
    make_pending_revision(team, ticket="OPS-2", name="second")

    old = post_generic("ops-generic", APPROVE, msg_id="m-old")
    new = post_generic("ops-generic", {**APPROVE, "ticket": "OPS-2"}, msg_id="m-new", secret=new_secret)

    assert (old.status_code, old.json()["outcome"]) == (200, "approved")
    assert (new.status_code, new.json()["outcome"]) == (200, "approved")

    generic_source.refresh_from_db()
    generic_source.previous_secret_expires_at = timezone.now() - timedelta(seconds=1)
    generic_source.save()
    after_window = post_generic("ops-generic", {**APPROVE, "ticket": "OPS-3"}, msg_id="m-late")
    assert after_window.status_code == 401


def test_rotation_without_overlap_refuses_the_old_secret_at_once(jira_source, pending):
    actions.ticketing_source_rotate_secret(source=jira_source, overlap_seconds=0)

    response = post_jira("jira-prod", jira_body("jira_issue_updated_approved.json"))

    assert response.status_code == 401


# --- filing requests ----------------------------------------------------------------------------------


def new_service(**overrides):
    service = {
        "name": "refunds",
        "namespace": "payments",
        "traffic_type": "ingress",
        "hosts": ["refunds.payments.example.com"],
        "port": 80,
        "protocol": "HTTP",
        "clusters": ["prod-eu-1"],
    }
    return {**service, **overrides}


def test_ticket_created_files_a_request_for_the_sources_team(generic_source, gated_cluster):
    payload = {
        "event": "ticket.created",
        "ticket": "OPS-200",
        "actor": "dan@example.com",
        "gateway_service": new_service(),
    }

    response = post_generic("ops-generic", payload)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["outcome"] == "created"
    service = GatewayService.objects.get(pk=body["services"][0])
    assert (service.team.slug, service.name) == ("payments", "refunds")
    revision = service.current_revision
    assert (revision.ticket, revision.approval) == ("OPS-200", "pending")
    created = AuditEvent.objects.get(action="gateway_service.created")
    assert (created.actor, created.source) == ("dan@example.com", "webhook")


def test_refused_ticket_created_answers_rejected_with_errors(generic_source, gated_cluster):
    payload = {
        "event": "ticket.created",
        "ticket": "OPS-201",
        "gateway_service": new_service(hosts=["refunds.not-ours.example.org"], port=0),
    }
    before = snapshot()

    response = post_generic("ops-generic", payload)

    assert response.status_code == 200
    body = response.json()
    assert body["outcome"] == "rejected"
    assert set(body["errors"]) == {"hosts", "port"}
    assert GatewayService.objects.count() == before[1]
    received = AuditEvent.objects.get(action="webhook.received")
    assert (received.data["outcome"], received.ticket) == ("rejected", "OPS-201")
    assert received.data["errors"] == body["errors"]


def test_jira_issue_created_with_label_files_the_request(jira_source, gated_cluster):
    response = post_jira("jira-prod", jira_body("jira_issue_created_request.json"))

    assert response.status_code == 200, response.json()
    assert response.json()["outcome"] == "created"
    service = GatewayService.objects.get(name="refunds")
    assert (service.current_revision.ticket, service.team.slug) == ("OPS-124", "payments")
