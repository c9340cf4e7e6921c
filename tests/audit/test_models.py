import pytest
from django.db import InternalError, connection, transaction

from audit import chain
from audit.actions import audit_record
from audit.models import AppendOnlyError, AuditEvent


def record():
    return audit_record(action="team.updated", object_type="team", object_id="payments", team="payments")


@pytest.mark.django_db
def test_orm_refuses_to_change_or_remove_events():
    event = record()
    event.actor = "mallory"

    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(actor="mallory")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).actor == "system"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_auditevent SET actor = 'mallory'", "DELETE FROM audit_auditevent"],
    ids=["update", "delete"],
)
def test_postgres_rejects_raw_update_and_delete(sql):
    assert connection.vendor == "postgresql"
    record()

    with pytest.raises(InternalError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)

    assert AuditEvent.objects.filter(actor="system").count() == 1


@pytest.mark.django_db
def test_purge_flag_allows_delete_but_never_update():
    event = record()
    chain.seal()

    with pytest.raises(InternalError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL gatewayportal.audit_purge = 'on'")
        cursor.execute("UPDATE audit_auditevent SET actor = 'mallory'")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL gatewayportal.audit_purge = 'on'")
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])

    assert not AuditEvent.objects.exists()
