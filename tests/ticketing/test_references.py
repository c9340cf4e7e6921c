"""A source that requires references approves only the revisions whose approval reference its delivery carries."""

from __future__ import annotations

import json
import time

import pytest

from audit.models import AuditEvent
from services.references import references_in
from tests.factories import api_client, make_user
from tests.ticketing.helpers import (
    PAYLOADS,
    make_pending_revision,
    post_generic,
    post_jira,
    post_servicenow,
)
from ticketing import parsers
from ticketing.models import TicketingSource

pytestmark = pytest.mark.django_db
APPROVE = {"event": "ticket.approved", "ticket": "OPS-123", "actor": "carol@example.com", "comment": "CAB approved"}


@pytest.fixture
def two_pending(team, gated_cluster):
    """Two services whose pending revisions both name OPS-123: one reviewed, one slipped in later."""
    return make_pending_revision(team, name="reviewed"), make_pending_revision(team, name="slipped")


def approvals(*revisions) -> list[str]:
    for revision in revisions:
        revision.refresh_from_db()
    return [r.approval for r in revisions]


def jira_approval(description=None, **fields) -> bytes:
    payload = json.loads((PAYLOADS / "jira_issue_updated_approved.json").read_text())
    payload["timestamp"] = int(time.time() * 1000)
    if description is not None:
        payload["issue"]["fields"]["description"] = description
    payload["issue"]["fields"].update(fields)
    return json.dumps(payload).encode()


def servicenow_approval(ticket: str, description: str) -> bytes:
    record = json.loads((PAYLOADS / "servicenow_change_approved.json").read_text())
    return json.dumps({**record, "number": ticket, "description": description}).encode()


# --- generic -------------------------------------------------------------------------------------------------------


def test_generic_source_requiring_references_approves_only_the_listed_revisions(generic_source, two_pending):
    reviewed, slipped = two_pending
    generic_source.require_references = True
    generic_source.save()

    response = post_generic("ops-generic", {**APPROVE, "revisions": [reviewed.approval_reference, "gpr-0000"]})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["outcome"] == "approved"
    assert body["revisions"] == [{"service": str(reviewed.service_id), "revision": 1}]
    assert [r["service"] for r in body["refused"]] == [str(slipped.service_id)]
    assert body["unmatched_references"] == ["gpr-0000"]
    assert approvals(reviewed, slipped) == ["approved", "pending"]
    refusal = AuditEvent.objects.get(action="gateway_service.approval_refused")
    assert (refusal.object_id, refusal.ticket, refusal.source) == (str(slipped.service_id), "OPS-123", "webhook")
    assert (refusal.data["reason"], refusal.data["revision"], refusal.data["source"]) == (
        "reference_missing",
        1,
        "ops-generic",
    )


def test_a_delivery_without_references_approves_nothing_and_says_why(generic_source, two_pending):
    generic_source.require_references = True
    generic_source.save()

    body = post_generic("ops-generic", APPROVE).json()

    assert body["outcome"] == "ignored"
    assert "approval reference" in body["reason"]
    assert approvals(*two_pending) == ["pending", "pending"]
    assert AuditEvent.objects.filter(action="gateway_service.approval_refused").count() == 2


def test_without_the_setting_a_ticket_approves_every_revision_linked_to_it(generic_source, two_pending):
    assert post_generic("ops-generic", APPROVE).json()["outcome"] == "approved"

    assert approvals(*two_pending) == ["approved", "approved"]


def test_a_rejection_needs_no_reference(generic_source, two_pending):
    generic_source.require_references = True
    generic_source.save()

    body = post_generic("ops-generic", {**APPROVE, "event": "ticket.rejected"}).json()

    assert body["outcome"] == "rejected"
    assert approvals(*two_pending) == ["rejected", "rejected"]


def test_a_reference_of_a_revision_linked_to_another_ticket_approves_nothing(generic_source, team, gated_cluster):
    generic_source.require_references = True
    generic_source.save()
    linked = make_pending_revision(team, name="linked")
    other = make_pending_revision(team, name="other", ticket="OPS-999")

    body = post_generic("ops-generic", {**APPROVE, "revisions": [other.approval_reference]}).json()

    assert body["outcome"] == "ignored"
    assert body["unmatched_references"] == [other.approval_reference]
    assert approvals(linked, other) == ["pending", "pending"]


@pytest.mark.parametrize("revisions", ["gpr-1", [1], [""], ["x" * 101]])
def test_a_malformed_revisions_list_is_400_naming_it(generic_source, two_pending, revisions):
    response = post_generic("ops-generic", {**APPROVE, "revisions": revisions})

    assert response.status_code == 400
    assert "revisions" in response.json()
    assert approvals(*two_pending) == ["pending", "pending"]


# --- Jira and ServiceNow: references in the ticket's text ----------------------------------------------------------


def test_jira_approval_takes_references_from_the_description(jira_source, two_pending):
    reviewed, slipped = two_pending
    jira_source.require_references = True
    jira_source.save()
    description = f"Expose the reviewed service.\nGateway portal: {reviewed.approval_reference}."

    body = post_jira("jira-prod", jira_approval(description)).json()

    assert body["outcome"] == "approved", body
    assert approvals(reviewed, slipped) == ["approved", "pending"]


def test_jira_approval_reads_an_atlassian_document_description(jira_source, two_pending):
    reviewed, slipped = two_pending
    jira_source.require_references = True
    jira_source.save()
    adf = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": f"ref {slipped.approval_reference}"}]}],
    }

    assert post_jira("jira-prod", jira_approval(adf)).json()["outcome"] == "approved"
    assert approvals(reviewed, slipped) == ["pending", "approved"]


def test_jira_source_may_name_the_field_that_carries_references(jira_source, two_pending):
    reviewed, slipped = two_pending
    jira_source.require_references = True
    jira_source.reference_field = "customfield_10042"
    jira_source.save()
    body = jira_approval(f"{slipped.approval_reference}", customfield_10042=f"{reviewed.approval_reference}")

    assert post_jira("jira-prod", body).json()["outcome"] == "approved"
    assert approvals(reviewed, slipped) == ["approved", "pending"]


def test_servicenow_approval_takes_references_from_the_description(servicenow_source, team, gated_cluster):
    servicenow_source.require_references = True
    servicenow_source.save()
    reviewed = make_pending_revision(team, name="reviewed", ticket="CHG0030042")
    slipped = make_pending_revision(team, name="slipped", ticket="CHG0030042")

    body = post_servicenow("snow", servicenow_approval("CHG0030042", f"Reviewed: {reviewed.approval_reference}"))

    assert body.json()["outcome"] == "approved"
    assert approvals(reviewed, slipped) == ["approved", "pending"]


def test_references_are_found_as_whole_words_in_any_text():
    text = parsers.text_of({"value": "a gpr-0123456789abcdef, GPR-FEDCBA9876543210", "more": ["xgpr-0123456789abcde0"]})

    assert references_in(text) == ["gpr-0123456789abcdef", "gpr-fedcba9876543210"]


# --- the source's settings -----------------------------------------------------------------------------------------


@pytest.fixture
def platform(team):
    return api_client(make_user("pat", platform=True))


def test_require_references_and_its_field_are_settings_of_the_source_and_audited(platform):
    created = platform.post(
        "/api/v1/ticketing-sources/",
        {"name": "jira", "kind": "jira", "team": "payments", "require_references": True},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert (created.json()["require_references"], created.json()["reference_field"]) == (True, "")

    updated = platform.patch("/api/v1/ticketing-sources/jira/", {"reference_field": "customfield_10042"}, format="json")

    assert updated.status_code == 200, updated.content
    assert TicketingSource.objects.get().reference_field == "customfield_10042"
    event = AuditEvent.objects.filter(action="ticketing_source.updated").latest("id")
    assert event.changes == {"reference_field": ["", "customfield_10042"]}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"require_reference": True}, "require_reference"),
        ({"reference_field": "fields.description"}, "reference_field"),
    ],
)
def test_unknown_fields_and_bad_field_names_are_refused(platform, payload, field):
    source = {"name": "jira", "kind": "jira", "team": "payments", **payload}

    response = platform.post("/api/v1/ticketing-sources/", source, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not TicketingSource.objects.exists()
