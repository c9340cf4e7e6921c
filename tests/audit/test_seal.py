"""Sealing: requests append unsealed events, the sequencer chains them after commit."""

import json
import logging
import threading
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import InternalError, connection, connections, transaction
from kombu.exceptions import OperationalError
from prometheus_client.parser import text_string_to_metric_families

from audit import chain, tasks
from audit.actions import audit_record
from audit.models import AuditEvent
from audit.sealing import request_seal
from gatewayportal.celery import app as celery_app
from gatewayportal.context import acting_as
from tests.factories import api_client, make_user


def record(object_id: str = "payments", **fields):
    return audit_record(action="team.updated", object_type="team", object_id=object_id, team="payments", **fields)


@pytest.fixture
def seal_lines():
    """The `audit_seal` payloads of the lines logged on `gatewayportal.audit`."""
    payloads: list[dict] = []

    class Capture(logging.Handler):
        def emit(self, record):
            if hasattr(record, "audit_seal"):
                payloads.append(record.audit_seal)

    logger = logging.getLogger("gatewayportal.audit")
    handler = Capture()
    logger.addHandler(handler)
    yield payloads
    logger.removeHandler(handler)


@pytest.mark.django_db
def test_an_audited_write_is_one_insert_and_takes_no_lock(django_assert_num_queries):
    with transaction.atomic():
        with django_assert_num_queries(1) as captured:
            record()
        with django_assert_num_queries(1):
            record("other")

    assert captured.captured_queries[0]["sql"].startswith("INSERT")
    assert "lock" not in captured.captured_queries[0]["sql"].lower()


@pytest.mark.django_db
def test_seal_requests_are_deduplicated_until_the_task_runs():
    with mock.patch.object(tasks.seal_audit_events, "delay") as delay:
        request_seal()
        request_seal()
        assert delay.call_count == 1
        tasks.seal_audit_events()  # clears the marker first, then seals
        request_seal()
        tasks.seal_audit_events()

    assert delay.call_count == 2


def test_beat_seals_as_a_safety_net():
    schedule = celery_app.conf.beat_schedule

    assert schedule["seal-audit-events"]["task"] == tasks.seal_audit_events.name


@pytest.mark.django_db
def test_events_are_sealed_in_order_and_seal_is_idempotent():
    events = [record(str(n)) for n in range(5)]
    assert chain.verify().as_dict() | {"unsealed": 5} == chain.verify().as_dict()

    first = chain.seal(batch_size=2)
    again = chain.seal()

    assert (first.sealed, again.sealed) == (5, 0)
    stored = list(AuditEvent.objects.order_by("seq"))
    assert [e.id for e in stored] == [e.id for e in events]
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
    assert [e.prev_hash for e in stored] == ["", *(e.hash for e in stored[:-1])]
    assert again.head == chain.Head(5, stored[-1].hash)
    result = chain.verify()
    assert (result.ok, result.checked, result.unsealed, result.head) == (True, 5, 0, again.head)


@pytest.mark.django_db
def test_a_crash_mid_seal_leaves_a_consistent_prefix(monkeypatch):
    for n in range(5):
        record(str(n))
    write_seals, calls = chain._write_seals, []

    def crash_on_second_batch(seals):
        calls.append(seals)
        write_seals(seals)
        if len(calls) == 2:
            raise RuntimeError("worker killed")

    monkeypatch.setattr(chain, "_write_seals", crash_on_second_batch)
    with pytest.raises(RuntimeError, match="worker killed"):
        chain.seal(batch_size=2)

    partial = chain.verify()
    assert (partial.ok, partial.checked, partial.unsealed) == (True, 2, 3)
    monkeypatch.setattr(chain, "_write_seals", write_seals)
    assert chain.seal().sealed == 3
    assert chain.verify().as_dict() | {"checked": 5, "unsealed": 0, "ok": True} == chain.verify().as_dict()


@pytest.mark.django_db
def test_each_sealed_event_logs_its_seq_and_hash_after_commit(seal_lines, django_capture_on_commit_callbacks):
    record("a")
    record("b")

    with django_capture_on_commit_callbacks(execute=True):
        result = chain.seal()

    heads = [chain.Head(line["seq"], line["hash"]) for line in seal_lines]
    assert heads[-1] == result.head
    assert [line["seq"] for line in seal_lines] == [1, 2]
    assert seal_lines[1]["prev_hash"] == seal_lines[0]["hash"]


@pytest.mark.django_db
def test_sealing_that_rolls_back_logs_nothing(seal_lines, django_capture_on_commit_callbacks):
    record()

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        chain.seal()
        raise RuntimeError("rolled back")

    assert seal_lines == []
    assert chain.unsealed().count() == 1


# --- The Postgres trigger: only the unsealed -> sealed transition, once ----------------------------------------------


def raw(sql: str, params: list | None = None, *, purge: bool = False) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        if purge:
            cursor.execute("SET LOCAL gatewayportal.audit_purge = 'on'")
        cursor.execute(sql, params or [])


H1, H2 = "1" * 64, "2" * 64


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET actor = 'mallory'",
        "UPDATE audit_auditevent SET hash = %s",
        "UPDATE audit_auditevent SET seq = seq + 100",
        "UPDATE audit_auditevent SET prev_hash = %s",
        "DELETE FROM audit_auditevent",
    ],
    ids=["content", "hash", "seq", "prev_hash", "delete"],
)
def test_postgres_keeps_sealed_rows_immutable(sql):
    record()
    chain.seal()
    before = list(AuditEvent.objects.values())

    with pytest.raises(InternalError, match="append-only"):
        raw(sql, [H1] * sql.count("%s"))

    assert list(AuditEvent.objects.values()) == before
    assert chain.verify().ok


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sql", "purge"),
    [
        ("UPDATE audit_auditevent SET actor = 'mallory'", False),
        ("UPDATE audit_auditevent SET actor = 'mallory', seq = 1, hash = %s, prev_hash = ''", False),
        ("UPDATE audit_auditevent SET hash = %s, prev_hash = ''", False),
        ("DELETE FROM audit_auditevent", False),
        ("DELETE FROM audit_auditevent", True),
    ],
    ids=["content", "content-while-sealing", "hash-without-seq", "delete", "purge-unsealed"],
)
def test_postgres_allows_an_unsealed_row_nothing_but_its_seal(sql, purge):
    record()

    with pytest.raises(InternalError, match="append-only"):
        raw(sql, [H1] * sql.count("%s"), purge=purge)

    raw("UPDATE audit_auditevent SET seq = 1, hash = %s, prev_hash = ''", [H2])
    assert AuditEvent.objects.get().seq == 1


# --- Concurrency ------------------------------------------------------------------------------------------------------


def in_thread(target, errors: list[BaseException]) -> threading.Thread:
    def run():
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_do_not_wait_on_a_chain_lock():
    """Both transactions hold an uncommitted audit event at the same time: no lock serializes them."""
    both_written = threading.Barrier(2, timeout=20)
    errors: list[BaseException] = []

    def writer(name: str):
        def write():
            with acting_as(name=name, source="api"), transaction.atomic():
                record(name)
                both_written.wait()  # a chain lock held until commit would leave the other writer blocked here

        return write

    threads = [in_thread(writer("a"), errors), in_thread(writer("b"), errors)]
    for thread in threads:
        thread.join()

    assert errors == []
    chain.seal()
    result = chain.verify()
    assert (result.ok, result.checked, result.unsealed) == (True, 2, 0)


@pytest.mark.django_db(transaction=True)
def test_an_event_that_commits_late_is_sealed_after_those_sealed_before():
    """Ids are handed out at insert, commits happen in any order: the chain follows what was sealed."""
    inserted, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    late: list[AuditEvent] = []

    def slow_transaction():
        with transaction.atomic():
            late.append(record("late"))
            inserted.set()
            assert release.wait(20)

    thread = in_thread(slow_transaction, errors)
    assert inserted.wait(20)
    early = record("early")  # commits (and is sealed) while the lower id is still in flight
    chain.seal()
    release.set()
    thread.join()
    chain.seal()

    assert errors == []
    assert late[0].id < early.id
    seqs = dict(AuditEvent.objects.values_list("id", "seq"))
    assert (seqs[early.id], seqs[late[0].id]) == (1, 2)
    assert chain.verify().ok


# --- Read paths before sealing ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unsealed_events_are_listed_and_exported_at_once():
    team_member = make_user("alice", platform=True)
    event = record()
    client = api_client(team_member)

    listed = client.get("/api/v1/audit-events/").json()["results"]
    exported = b"".join(client.get("/api/v1/audit-events/?format=csv").streaming_content).decode()

    assert [(row["id"], row["hash"], row["prev_hash"]) for row in listed] == [(event.id, None, None)]
    assert str(event.id) in exported


@pytest.mark.django_db
def test_integrity_report_and_audit_verify_count_unsealed_events(capsys):
    record("a")
    chain.seal()
    record("b")
    head = chain.head()

    body = api_client(make_user("root", platform=True)).get("/api/v1/reports/audit-integrity/").json()
    call_command("audit_verify")

    assert body | {"ok": True, "checked": 1, "unsealed": 1, "head_seq": 1, "head_hash": head.hash} == body
    out = capsys.readouterr().out
    assert "1 events verified" in out
    assert "1 not yet sealed" in out
    assert f"head {head}" in out


@pytest.mark.django_db
def test_metrics_report_the_unsealed_window_and_the_head(client):
    record("a")
    chain.seal()
    record("b")
    head = chain.head()

    text = client.get("/metrics").content.decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    assert samples[("gatewayportal_audit_unsealed_events", ())] == 1
    assert samples[("gatewayportal_audit_unsealed_oldest_seconds", ())] >= 0
    assert samples[("gatewayportal_audit_chain_head_seq", ())] == 1
    assert samples[("gatewayportal_audit_chain_head_info", (("hash", head.hash), ("seq", "1")))] == 1


@pytest.mark.django_db
def test_siem_line_of_a_commit_names_the_event_before_its_seal(django_capture_on_commit_callbacks):
    lines: list[dict] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(json.loads(json.dumps(getattr(record, "audit", None) or record.audit_seal)))

    logger = logging.getLogger("gatewayportal.audit")
    handler = Capture()
    logger.addHandler(handler)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            event = record()
    finally:
        logger.removeHandler(handler)

    assert lines[0]["id"] == event.id and lines[0]["hash"] is None
    sealed = AuditEvent.objects.get(pk=event.pk)
    assert lines[-1] == {"id": event.id, "seq": sealed.seq, "hash": sealed.hash, "prev_hash": ""}


@pytest.mark.django_db
def test_a_broker_outage_leaves_no_seal_marker_behind(caplog):
    with mock.patch.object(tasks.seal_audit_events, "delay", side_effect=OperationalError("broker down")) as delay:
        request_seal()  # logged, not raised: the change has committed
        request_seal()

    assert delay.call_count == 2
    assert "beat's run will seal them" in caplog.text
