from django.core.management.base import BaseCommand, CommandError

from audit import chain


class Command(BaseCommand):
    help = "Verify the audit hash chain; exit 1 and name the first broken link if it was tampered with."

    def handle(self, *args, **options):
        result = chain.verify()
        if not result.ok:
            raise CommandError(
                f"audit chain BROKEN at event {result.first_broken_id}: {result.reason} "
                f"({result.checked} events verified before it)",
                returncode=1,
            )
        self.stdout.write(f"audit chain OK: {result.checked} events verified, {result.gaps} retention gaps anchored")
