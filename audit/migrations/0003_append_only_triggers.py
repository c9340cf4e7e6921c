"""Postgres rejects UPDATE and DELETE on audit tables, whatever client connects.

The one exception is retention: `audit.retention` deletes inside a transaction that first runs
`SET LOCAL gatewayportal.audit_purge = 'on'`. Other databases (the SQLite demo) rely on the
models' own refusal.
"""

from django.db import migrations

TABLES = ("audit_auditevent", "audit_auditanchor")

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_reject_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('gatewayportal.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit records are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING HINT = 'Retention runs through manage.py audit_purge.';
END;
$$ LANGUAGE plpgsql;
"""
CREATE_TRIGGER = (
    "CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION audit_reject_change();"
)
DROP_TRIGGER = "DROP TRIGGER IF EXISTS {table}_append_only ON {table};"
DROP_FUNCTION = "DROP FUNCTION IF EXISTS audit_reject_change();"


def add_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_FUNCTION, params=None)
    for table in TABLES:
        schema_editor.execute(CREATE_TRIGGER.format(table=table))


def remove_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(DROP_TRIGGER.format(table=table))
    schema_editor.execute(DROP_FUNCTION)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_anchors_and_chain")]

    operations = [migrations.RunPython(add_triggers, remove_triggers)]
