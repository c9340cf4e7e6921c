from django.core.management.base import BaseCommand, CommandError

from audit.retention import audit_purge, retention_cutoff
from gatewayportal.context import acting_as


class Command(BaseCommand):
    help = (
        "Drop audit events older than AUDIT_RETENTION_DAYS, after exporting them to a JSON-lines archive "
        "in AUDIT_ARCHIVE_DIR. Creation events and each object's latest event are always kept."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be dropped.")

    def handle(self, *args, dry_run: bool, **options):
        cutoff = retention_cutoff()
        if cutoff is None:
            raise CommandError("AUDIT_RETENTION_DAYS is not set: audit events are kept forever, nothing to purge.")
        with acting_as(name="system", source="cli"):
            result = audit_purge(before=cutoff, dry_run=dry_run)
        if dry_run:
            self.stdout.write(f"would drop {result.purged} audit events older than {cutoff.isoformat()}")
        else:
            self.stdout.write(
                f"dropped {result.purged} audit events older than {cutoff.isoformat()}; "
                f"archive: {result.archive or '-'}; anchors: {result.anchors}"
            )
