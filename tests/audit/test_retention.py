import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from audit import chain
from audit.models import AuditAnchor, AuditEvent
from audit.retention import audit_purge
from audit.tasks import purge_expired

OLD = datetime(2024, 1, 1, tzinfo=UTC)
CUTOFF = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture
def log(bulk_events):
    """Old history of two objects around one untouched creation, then recent events."""
    events = {}
    events["a_created"] = bulk_events(1, start=OLD, object_id="a", action="gateway_service.created")[0]
    events["a_1"], events["a_2"] = bulk_events(2, start=OLD + timedelta(days=1), object_id="a")
    events["b_created"] = bulk_events(1, start=OLD + timedelta(days=2), object_id="b", action="team.created")[0]
    events["b_1"] = bulk_events(1, start=OLD + timedelta(days=3), object_id="b")[0]
    events["c_only"] = bulk_events(1, start=OLD + timedelta(days=4), object_id="c")[0]
    events["a_3"] = bulk_events(1, start=OLD + timedelta(days=5), object_id="a")[0]
    events["b_recent"] = bulk_events(1, start=CUTOFF + timedelta(days=30), object_id="b")[0]
    return events


def remaining() -> set[int]:
    return set(AuditEvent.objects.exclude(action="audit.purged").values_list("id", flat=True))


@pytest.mark.django_db
def test_purge_keeps_creations_and_latest_events_and_archives_the_rest(log, tmp_path):
    result = audit_purge(before=CUTOFF, archive_dir=tmp_path)

    purged = {log["a_1"].id, log["a_2"].id, log["b_1"].id}
    assert result.purged == 3
    assert remaining() == {e.id for e in log.values()} - purged
    archived = [json.loads(line) for line in result.archive.read_text().splitlines()]
    assert [row["id"] for row in archived] == sorted(purged)
    assert archived[0]["hash"] == log["a_1"].hash
    assert result.anchors == 2  # a_1..a_2 before b_created, b_1 before c_only


@pytest.mark.django_db
def test_chain_verifies_after_purge_and_after_a_second_purge(log, tmp_path, bulk_events):
    audit_purge(before=CUTOFF, archive_dir=tmp_path)
    assert chain.verify().ok
    bulk_events(1, start=CUTOFF + timedelta(days=40), object_id="a")

    second = audit_purge(before=CUTOFF + timedelta(days=35), archive_dir=tmp_path)

    assert log["a_3"].id not in remaining()  # no longer a's latest event
    assert second.purged == 1
    result = chain.verify()
    assert result.ok, result
    assert result.gaps == 3


@pytest.mark.django_db
def test_purge_records_itself_in_the_chain(log, tmp_path):
    result = audit_purge(before=CUTOFF, archive_dir=tmp_path)
    chain.seal()

    event = AuditEvent.objects.get(action="audit.purged")
    assert event.data["purged"] == 3
    assert event.data["archive"] == result.archive.name
    assert event.prev_hash == log["b_recent"].hash


@pytest.mark.django_db
def test_gap_without_anchor_is_still_detected(log, tmp_path):
    audit_purge(before=CUTOFF, archive_dir=tmp_path)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL gatewayportal.audit_purge = 'on'")
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [log["c_only"].id])

    assert chain.verify().first_broken_id == log["a_3"].id


@pytest.mark.django_db
def test_dry_run_changes_nothing(log, tmp_path):
    result = audit_purge(before=CUTOFF, archive_dir=tmp_path, dry_run=True)

    assert result.purged == 3
    assert result.archive is None
    assert AuditEvent.objects.count() == len(log)
    assert not AuditAnchor.objects.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_command_and_task_follow_the_retention_setting(log, tmp_path, settings, capsys):
    settings.AUDIT_ARCHIVE_DIR = tmp_path
    settings.AUDIT_RETENTION_DAYS = None
    with pytest.raises(CommandError, match="AUDIT_RETENTION_DAYS is not set"):
        call_command("audit_purge")
    assert purge_expired() == 0

    settings.AUDIT_RETENTION_DAYS = 30
    call_command("audit_purge")

    assert "dropped 3 audit events" in capsys.readouterr().out
    assert AuditEvent.objects.get(action="audit.purged").source == "cli"
    assert purge_expired() == 0  # nothing left to drop
    assert len(list(tmp_path.glob("*.jsonl"))) == 1


@pytest.mark.django_db
def test_purge_drops_sealed_events_only_and_keeps_the_head(bulk_events, tmp_path):
    old_y = bulk_events(2, start=OLD, object_id="y")
    head = bulk_events(1, start=OLD + timedelta(days=1), object_id="x")[0]
    unsealed_x = AuditEvent(at=OLD, actor="alice", source="api", action="gateway_service.updated", object_id="x")
    unsealed_x.save()  # x's newer events are not sealed yet: the head is no longer x's latest event
    newest_x = AuditEvent(at=OLD, actor="alice", source="api", action="gateway_service.updated", object_id="x")
    newest_x.save()

    result = audit_purge(before=CUTOFF, archive_dir=tmp_path)

    assert result.purged == 1  # y's first event; y's latest, the head and the unsealed events stay
    assert remaining() == {old_y[1].id, head.id, unsealed_x.id, newest_x.id}
    chain.seal()
    sealed = chain.verify()
    assert (sealed.ok, sealed.checked, sealed.unsealed, sealed.gaps) == (True, 5, 0, 1)
    assert AuditEvent.objects.get(pk=unsealed_x.pk).prev_hash == head.hash
