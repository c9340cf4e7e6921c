from django.core.management.base import BaseCommand, CommandError

from audit import chain


class Command(BaseCommand):
    help = (
        "Verify the sealed audit hash chain; exit 1 and name the first broken link if it was tampered with. "
        "Events not yet sealed are counted, not verified."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--expect-head",
            metavar="SEQ:HASH",
            help="A head published earlier (seal log line, metric, a previous run): the chain must still hold it, "
            "which detects events cut from its tail.",
        )

    def handle(self, *args, expect_head: str | None = None, **options):
        try:
            expected = chain.Head.parse(expect_head) if expect_head else None
        except ValueError as error:
            raise CommandError(f"--expect-head: {error}") from None
        result = chain.verify(expect_head=expected)
        if not result.ok:
            where = f"at event {result.first_broken_id}" if result.first_broken_id else "at its tail"
            raise CommandError(
                f"audit chain BROKEN {where}: {result.reason} ({result.checked} events verified before it)",
                returncode=1,
            )
        self.stdout.write(
            f"audit chain OK: {result.checked} events verified, {result.gaps} retention gaps anchored, "
            f"{result.unsealed} not yet sealed; head {result.head or '-'}"
        )
