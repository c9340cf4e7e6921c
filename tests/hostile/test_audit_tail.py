"""Cutting the tail of the audit chain: the head published outside the database gives it away.

Someone with write access to the database deletes the newest events (the trigger switched off).
What is left is a valid chain, so a plain verification passes; the head the sequencer logged
(and Prometheus scraped) no longer matches.
"""

import logging

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit import chain
from audit.actions import audit_record
from audit.models import AuditEvent


def delete_newest(n: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_append_only")
        cursor.execute(
            "DELETE FROM audit_auditevent WHERE id IN (SELECT id FROM audit_auditevent ORDER BY id DESC LIMIT %s)", [n]
        )
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_auditevent_append_only")


@pytest.fixture
def published_heads(django_capture_on_commit_callbacks):
    """Write ten audited changes, committed and sealed; return the heads the audit log lines carried."""
    heads: list[str] = []

    class Siem(logging.Handler):
        def emit(self, record):
            seal = getattr(record, "audit_seal", None)
            if seal:
                heads.append(f"{seal['seq']}:{seal['hash']}")

    logger = logging.getLogger("gatewayportal.audit")
    handler = Siem()
    logger.addHandler(handler)
    try:
        for n in range(10):
            with django_capture_on_commit_callbacks(execute=True):
                audit_record(action="gateway_service.deleted", object_type="gateway_service", object_id=str(n))
                chain.seal()  # what the worker does after the commit
    finally:
        logger.removeHandler(handler)
    return heads


@pytest.mark.django_db
def test_cut_tail_is_detected_with_the_published_head(published_heads, capsys):
    head = published_heads[-1]
    call_command("audit_verify", expect_head=head)  # intact

    delete_newest(3)

    call_command("audit_verify")  # the rest is a valid chain on its own
    with pytest.raises(CommandError, match="events were cut from its tail") as raised:
        call_command("audit_verify", expect_head=head)
    assert raised.value.returncode == 1


@pytest.mark.django_db
def test_cut_tail_refilled_with_forged_events_is_detected(published_heads):
    """The attacker also re-seals new events up to the old sequence number: the hash gives it away."""
    head = published_heads[-1]
    delete_newest(3)
    for n in range(3):
        audit_record(action="team.updated", object_type="team", object_id=f"forged-{n}")
    chain.seal()
    assert AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() == 10

    with pytest.raises(CommandError, match="not the expected head"):
        call_command("audit_verify", expect_head=head)


@pytest.mark.django_db
def test_expect_head_must_be_seq_colon_hash():
    with pytest.raises(CommandError, match="--expect-head: 'latest' is not SEQ:HASH"):
        call_command("audit_verify", expect_head="latest")
