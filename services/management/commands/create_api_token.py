from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from gatewayportal import apitokens


class Command(BaseCommand):
    help = (
        "Creates a new API token for the user and prints it once, as the last word of the last line "
        "(only its hash is stored)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="What the token is for, e.g. the CI pipeline using it.")
        parser.add_argument(
            "--expires-in",
            type=int,
            default=settings.API_TOKEN_EXPIRY_DAYS,
            metavar="DAYS",
            help="Days until the token expires; 0: never (default: API_TOKEN_EXPIRY_DAYS).",
        )

    def handle(self, *args, username: str, name: str, expires_in: int, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"No user named '{username}'. Create it first (e.g. in the admin).") from exc
        if expires_in < 0:
            raise CommandError("--expires-in must be 0 (never) or a number of days.")
        if not name.strip() or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters.")
        expires_at = timezone.now() + timedelta(days=expires_in) if expires_in else None
        token, key = apitokens.issue(user=user, name=name.strip(), expires_at=expires_at)
        until = f"expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "never expires"
        self.stderr.write(f"API token {token.name!r} for {username} ({until}); it is shown only this once:")
        self.stdout.write(key)
