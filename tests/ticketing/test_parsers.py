"""Pure parsing of deliveries into TicketEvents, from realistic sample payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ticketing import parsers
from ticketing.parsers import MalformedPayload

PAYLOADS = Path(__file__).resolve().parent / "payloads"
JIRA_MAP = {"approved": ["Approved"], "rejected": ["Declined"]}
SN_MAP = {"approved": ["approved"], "rejected": ["rejected", "Canceled"]}


def sample(name: str) -> tuple[dict, bytes]:
    body = (PAYLOADS / name).read_bytes()
    return json.loads(body), body


def test_generic_approved():
    event = parsers.parse_generic(
        {"event": "ticket.approved", "ticket": "OPS-123", "actor": "carol@example.com", "comment": "CAB approved"},
        delivery_id="msg_1",
    )
    assert (event.kind, event.ticket, event.actor, event.comment, event.delivery_id) == (
        "approved",
        "OPS-123",
        "carol@example.com",
        "CAB approved",
        "msg_1",
    )


def test_generic_created_carries_the_service_with_the_filing_ticket():
    event = parsers.parse_generic(
        {"event": "ticket.created", "ticket": "OPS-9", "gateway_service": {"name": "x", "ticket": "OTHER-1"}},
        delivery_id="msg_2",
    )
    assert event.kind == "created"
    assert event.gateway_service == {"name": "x", "ticket": "OPS-9"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], "non_field_errors"),
        ({"event": "ticket.aproved", "ticket": "OPS-1"}, "event"),
        ({"event": "ticket.approved"}, "ticket"),
        ({"event": "ticket.approved", "ticket": "x" * 101}, "ticket"),
        ({"event": "ticket.approved", "ticket": "OPS-1", "comment": 5}, "comment"),
        ({"event": "ticket.created", "ticket": "OPS-1"}, "gateway_service"),
    ],
)
def test_generic_malformed_bodies_name_the_field(payload, field):
    with pytest.raises(MalformedPayload) as exc:
        parsers.parse_generic(payload, delivery_id="msg")
    assert field in exc.value.errors


def test_load_json_refuses_non_json():
    with pytest.raises(MalformedPayload):
        parsers.load_json(b"{not json")
    with pytest.raises(MalformedPayload):
        parsers.load_json(b"\xff\xfe")


def test_jira_transition_to_an_approved_status():
    payload, body = sample("jira_issue_updated_approved.json")
    event = parsers.parse_jira(payload, body=body, **JIRA_MAP)
    assert (event.kind, event.ticket, event.actor) == ("approved", "OPS-123", "Carol Approver")
    assert event.comment == "CAB approved for the Tuesday window."
    assert event.delivery_id.startswith("sha256:")


def test_jira_transition_to_a_rejected_status_is_matched_case_insensitively():
    payload, body = sample("jira_issue_updated_declined.json")
    event = parsers.parse_jira(payload, body=body, approved=["approved"], rejected=["DECLINED"])
    assert event.kind == "rejected"
    assert "Declined" in event.comment


def test_jira_update_without_status_change_is_ignored():
    payload, body = sample("jira_issue_updated_assignee.json")
    event = parsers.parse_jira(payload, body=body, **JIRA_MAP)
    assert event.kind == "ignored"
    assert event.reason


def test_jira_unmapped_status_is_ignored():
    payload, body = sample("jira_issue_updated_approved.json")
    event = parsers.parse_jira(payload, body=body, approved=["Done"], rejected=["Declined"])
    assert event.kind == "ignored"
    assert "Approved" in event.reason


def test_jira_created_issue_with_label_files_the_yaml_request():
    payload, body = sample("jira_issue_created_request.json")
    event = parsers.parse_jira(payload, body=body, **JIRA_MAP)
    assert event.kind == "created"
    assert event.actor == "alice@example.com"
    assert event.gateway_service == {
        "name": "refunds",
        "namespace": "payments",
        "traffic_type": "ingress",
        "hosts": ["refunds.payments.example.com"],
        "port": 80,
        "protocol": "HTTP",
        "clusters": ["prod-eu-1"],
        "ticket": "OPS-124",
    }


def test_jira_created_issue_reads_an_adf_code_block():
    payload, body = sample("jira_issue_created_request.json")
    payload["issue"]["fields"]["description"] = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "Please expose:"}]},
            {
                "type": "codeBlock",
                "attrs": {"language": "json"},
                "content": [{"type": "text", "text": '{"name": "a"}'}],
            },
        ],
    }
    event = parsers.parse_jira(payload, body=body, **JIRA_MAP)
    assert event.gateway_service == {"name": "a", "ticket": "OPS-124"}


def test_jira_created_issue_without_label_is_ignored():
    payload, body = sample("jira_issue_created_request.json")
    payload["issue"]["fields"]["labels"] = []
    assert parsers.parse_jira(payload, body=body, **JIRA_MAP).kind == "ignored"


def test_jira_created_issue_with_unreadable_description_is_a_refused_creation():
    payload, body = sample("jira_issue_created_request.json")
    payload["issue"]["fields"]["description"] = "{code}\nname: [unclosed\n{code}"
    event = parsers.parse_jira(payload, body=body, **JIRA_MAP)
    assert event.kind == "created"
    assert event.gateway_service is None
    assert "description" in event.errors


def test_jira_without_issue_is_malformed():
    with pytest.raises(MalformedPayload) as exc:
        parsers.parse_jira({"webhookEvent": "jira:issue_updated"}, body=b"{}", **JIRA_MAP)
    assert "issue" in exc.value.errors


def test_servicenow_flat_change_request_approved():
    payload, body = sample("servicenow_change_approved.json")
    event = parsers.parse_servicenow(payload, body=body, **SN_MAP)
    assert (event.kind, event.ticket, event.actor) == ("approved", "CHG0030042", "carol.approver")
    assert event.comment == "CAB approved: low risk, standard window."


def test_servicenow_table_api_record_with_display_values_rejected():
    payload, body = sample("servicenow_change_rejected_table_api.json")
    event = parsers.parse_servicenow(payload, body=body, **SN_MAP)
    assert (event.kind, event.ticket, event.actor) == ("rejected", "CHG0030043", "dave.cab")


def test_servicenow_state_mapping_by_display_value():
    payload, body = sample("servicenow_change_rejected_table_api.json")
    payload["result"]["approval"] = {"value": "requested", "display_value": "Requested"}
    event = parsers.parse_servicenow(payload, body=body, approved=["approved"], rejected=["canceled"])
    assert event.kind == "rejected"


def test_servicenow_rejection_wins_over_approval():
    payload, body = sample("servicenow_change_approved.json")
    event = parsers.parse_servicenow(payload, body=body, approved=["approved"], rejected=["-2"])
    assert event.kind == "rejected"


def test_servicenow_other_tables_are_ignored():
    payload, body = sample("servicenow_change_approved.json")
    payload["sys_class_name"] = "incident"
    assert parsers.parse_servicenow(payload, body=body, **SN_MAP).kind == "ignored"


@pytest.mark.parametrize(("payload", "field"), [({"state": "-2"}, "number"), ({"number": "CHG1"}, "non_field_errors")])
def test_servicenow_malformed(payload, field):
    with pytest.raises(MalformedPayload) as exc:
        parsers.parse_servicenow(payload, body=b"{}", **SN_MAP)
    assert field in exc.value.errors
