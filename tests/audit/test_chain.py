import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, transaction

from audit import chain
from audit.actions import audit_record
from audit.models import AuditEvent
from gatewayportal.context import acting_as
from tests.factories import api_client, make_user


def tamper(sql: str, params: list) -> None:
    """What an attacker with database access would do: switch the trigger off and edit."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_auditevent_append_only")


@pytest.mark.django_db
def test_intact_chain_verifies(bulk_events, capsys):
    bulk_events(50)
    audit_record(action="team.updated", object_type="team", object_id="payments")
    chain.seal()

    result = chain.verify()
    call_command("audit_verify")

    assert (result.ok, result.checked, result.first_broken_id) == (True, 51, None)
    assert "audit chain OK: 51 events verified" in capsys.readouterr().out


@pytest.mark.django_db
def test_edited_row_is_found_by_audit_verify(bulk_events):
    events = bulk_events(20)
    victim = events[7]
    tamper("UPDATE audit_auditevent SET actor = 'nobody' WHERE id = %s", [victim.pk])

    with pytest.raises(CommandError, match=f"BROKEN at event {victim.pk}: content does not match") as raised:
        call_command("audit_verify")

    assert raised.value.returncode == 1
    assert chain.verify().checked == 7


@pytest.mark.django_db
def test_removed_row_is_found(bulk_events):
    events = bulk_events(20)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL gatewayportal.audit_purge = 'on'")
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [events[5].pk])

    result = chain.verify()

    assert (result.ok, result.first_broken_id) == (False, events[6].pk)
    assert "removed or reordered" in result.reason


@pytest.mark.django_db
def test_rehashed_row_still_breaks_the_next_link(bulk_events):
    """Recomputing the edited row's own hash does not help: the next event names the old one."""
    events = bulk_events(5)
    forged = {**vars(AuditEvent.objects.get(pk=events[2].pk)), "actor": "nobody"}
    tamper(
        "UPDATE audit_auditevent SET actor = 'nobody', hash = %s WHERE id = %s",
        [chain.compute_hash(forged), events[2].pk],
    )

    assert chain.verify().first_broken_id == events[3].pk


@pytest.mark.django_db
def test_integrity_report_is_for_platform_engineers_only(bulk_events):
    bulk_events(3)
    tamper("UPDATE audit_auditevent SET team = 'other' WHERE id = (SELECT min(id) FROM audit_auditevent)", [])

    assert api_client(make_user("alice")).get("/api/v1/reports/audit-integrity/").status_code == 403
    body = api_client(make_user("root", platform=True)).get("/api/v1/reports/audit-integrity/").json()

    assert body["ok"] is False
    assert body["first_broken_id"] == AuditEvent.objects.order_by("id").first().pk
    assert body["checked"] == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_form_one_valid_chain():
    writers, per_writer = 8, 15
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            with acting_as(name=f"writer-{n}", source="worker"):
                for i in range(per_writer):
                    with transaction.atomic():
                        audit_record(action="gateway.applied", object_type="gateway", object_id=f"{n}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    result = chain.verify()
    assert (result.ok, result.checked) == (True, writers * per_writer)
    prev_hashes = list(AuditEvent.objects.values_list("prev_hash", flat=True))
    assert len(set(prev_hashes)) == len(prev_hashes), "two events claim the same predecessor: the chain forked"


def test_verify_rows_accepts_an_anchored_gap_only():
    rows = []
    prev = ""
    for i in range(1, 5):
        fields = {name: "" for name in chain.HASHED_FIELDS} | {"changes": {}, "data": {}, "action": f"a{i}"}
        fields["prev_hash"] = prev
        fields |= {"id": i, "hash": chain.compute_hash(fields)}
        rows.append(fields)
        prev = fields["hash"]
    without_2 = [rows[0], rows[2], rows[3]]

    assert chain.verify_rows(rows, anchors=set()).ok
    assert chain.verify_rows(without_2, anchors=set()).first_broken_id == 3
    anchored = chain.verify_rows(without_2, anchors={(3, rows[0]["hash"], rows[1]["hash"])})
    assert (anchored.ok, anchored.gaps) == (True, 1)
    assert not chain.verify_rows(without_2, anchors={(3, "elsewhere", rows[1]["hash"])}).ok
