"""Events are sealed into the chain after commit (`audit.chain.seal`).

`seq` is an event's place in the chain; `hash` and `prev_hash` stay null until it is sealed.
On Postgres the append-only trigger of the events table now allows exactly one UPDATE per row:
sealing, i.e. `seq` going from null to a value together with `hash` and `prev_hash`, every other
column unchanged. Sealed rows stay immutable; DELETE is still refused outside retention, which may
only drop sealed events. Events written before this migration were chained in id order: they
get their `seq` in that order, their hashes unchanged.
"""

from django.db import migrations, models

SEAL_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_event_seal_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.seq IS NOT NULL
            AND current_setting('gatewayportal.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
            AND NEW.hash IS NOT NULL AND NEW.prev_hash IS NOT NULL
            AND (to_jsonb(NEW) - 'seq' - 'hash' - 'prev_hash') = (to_jsonb(OLD) - 'seq' - 'hash' - 'prev_hash') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit records are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING HINT = 'Only the sequencer seals an unsealed event, once; retention runs through manage.py audit_purge.';
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER = (
    "DROP TRIGGER IF EXISTS audit_auditevent_append_only ON audit_auditevent; "
    "CREATE TRIGGER audit_auditevent_append_only BEFORE UPDATE OR DELETE ON audit_auditevent "
    "FOR EACH ROW EXECUTE FUNCTION {function}();"
)
BACKFILL = (
    "UPDATE audit_auditevent SET seq = o.n FROM "
    "(SELECT id, row_number() OVER (ORDER BY id) AS n FROM audit_auditevent) AS o "
    "WHERE audit_auditevent.id = o.id AND audit_auditevent.seq IS NULL"
)


def seal_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SEAL_FUNCTION, params=None)
        schema_editor.execute(TRIGGER.format(function="audit_event_seal_only"), params=None)
    schema_editor.execute(BACKFILL, params=None)


def reject_all(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER.format(function="audit_reject_change"), params=None)
        schema_editor.execute("DROP FUNCTION IF EXISTS audit_event_seal_only();", params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_append_only_triggers")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(blank=True, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(
                blank=True, help_text="Null until the event is sealed into the hash chain.", max_length=64, null=True
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(
                blank=True,
                help_text="Hash of the event before it in the chain; null until sealed.",
                max_length=64,
                null=True,
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(condition=models.Q(("seq__isnull", True)), fields=["id"], name="audit_event_unsealed"),
        ),
        migrations.RunPython(seal_only, reject_all),
    ]
