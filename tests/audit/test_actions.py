import json
import logging

import pytest
from django.db import transaction

from audit import chain
from audit.actions import audit_record, diff
from audit.models import AuditEvent
from gatewayportal.context import acting_as

PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6InNlY3JldC10b2tlbiJ9"


def record(**overrides):
    fields = {"action": "gateway_service.updated", "object_type": "gateway_service", "object_id": "svc-1"}
    return audit_record(**{**fields, **overrides})


@pytest.fixture
def siem_lines():
    """The formatted lines the dedicated SIEM handler would write."""
    logger = logging.getLogger("gatewayportal.audit")
    formatter = logger.handlers[0].formatter
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(formatter.format(record))

    handler = Capture()
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.mark.django_db
def test_one_event_per_call_with_actor_context_and_chain_link():
    with acting_as(name="alice", source="api", request_id="req-42"), transaction.atomic():
        first = record(team="payments", ticket="OPS-1", changes={"port": [80, 443]})
        second = record(action="gateway_service.deleted")

    assert AuditEvent.objects.count() == 2
    stored = AuditEvent.objects.get(pk=first.pk)
    assert (stored.actor, stored.source, stored.request_id, stored.ticket) == ("alice", "api", "req-42", "OPS-1")
    assert stored.changes == {"port": [80, 443]}
    assert (first.hash, first.prev_hash, first.seq) == (None, None, None)  # sealed after commit

    chain.seal()

    first, second = AuditEvent.objects.get(pk=first.pk), AuditEvent.objects.get(pk=second.pk)
    assert (first.seq, first.prev_hash) == (1, "")
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert chain.compute_hash(vars(second)) == second.hash


@pytest.mark.django_db
def test_rolled_back_change_leaves_no_event_and_no_log_line(siem_lines, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            record()
            raise RuntimeError("the change failed")

    assert AuditEvent.objects.count() == 0
    assert siem_lines == []


@pytest.mark.django_db
def test_committed_event_is_one_json_log_line(siem_lines, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        event = record(team="payments", changes={"port": [80, 443]})

    lines = [json.loads(line) for line in siem_lines]
    assert len([line for line in lines if "audit" in line]) == 1
    assert all("\n" not in line for line in siem_lines)
    line = lines[0]
    assert line["logger"] == "gatewayportal.audit"
    assert line["audit"]["id"] == event.id
    assert line["audit"]["hash"] is None  # not sealed yet when its change commits
    assert line["audit"]["changes"] == {"port": [80, 443]}


@pytest.mark.django_db
def test_secrets_never_reach_event_or_log_line(siem_lines, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        event = record(
            object_repr=f"payments/checkout {PEM_KEY}",
            changes={"tls_secret": [None, {"cert": "CERT", "key": PEM_KEY}], "token": ["old", TOKEN]},
            data={"note": f"pasted {PEM_KEY} by mistake", "headers": {"Authorization": f"Bearer {TOKEN}"}},
        )

    stored = AuditEvent.objects.get(pk=event.pk)
    everything = json.dumps([stored.object_repr, stored.changes, stored.data]) + "".join(siem_lines)
    assert "PRIVATE KEY" not in everything
    assert TOKEN not in everything
    assert stored.changes["tls_secret"][1]["cert"] == "CERT"
    assert stored.object_repr.startswith("payments/checkout ")


@pytest.mark.django_db
def test_non_json_values_are_stored_as_they_hash():
    import datetime
    import uuid

    ident = uuid.uuid4()
    event = record(data={"when": datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC), "id": ident})

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.data["id"] == str(ident)
    chain.seal()
    assert chain.verify().ok


def test_diff_lists_changed_fields_only():
    assert diff({"port": 80, "name": "a"}, {"port": 443, "name": "a", "mode": "SIMPLE"}) == {
        "mode": [None, "SIMPLE"],
        "port": [80, 443],
    }
