"""Issuing and checking API tokens (`Authorization: Token <key>`); only a hash of each key is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.utils import timezone

from gatewayportal.models import ApiToken
from gatewayportal.roles import in_platform_group, remember_platform

TOKEN_PREFIX = "gp_"
PREFIX_LENGTH = 10  # "gp_" and 7 characters of the random part
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most once a minute per token


def hash_key(key: str) -> str:
    """SHA-256 is enough: keys are 256-bit random strings, not passwords."""
    return hashlib.sha256(key.encode()).hexdigest()


def issue(*, user, name: str, expires_at: datetime | None) -> tuple[ApiToken, str]:
    """A new token; returns the row and the key, which is never available again."""
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=key[:PREFIX_LENGTH], key_hash=hash_key(key), expires_at=expires_at
    )
    return token, key


def check(key: str) -> ApiToken | None:
    """The live token with this key (not revoked, not expired, its user active), or None.

    One query: it also reads whether the user is a platform engineer, which nearly every API request asks.
    """
    rows = (
        ApiToken.objects.select_related("user")
        .annotate(platform_member=in_platform_group("user_id"))
        .filter(key_hash=hash_key(key), revoked=False)
        .order_by()[:1]
    )
    token = next(iter(rows), None)
    now = timezone.now()
    if token is None or not token.user.is_active or (token.expires_at is not None and token.expires_at <= now):
        return None
    remember_platform(token.user, token.platform_member)
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
