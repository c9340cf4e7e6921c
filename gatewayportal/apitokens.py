"""Issuing and checking API tokens (`Authorization: Token <key>`); only a hash of each key is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from gatewayportal.compiled import CompiledRead
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


def _live_token(key_hash: str):
    return (
        ApiToken.objects.filter(key_hash=key_hash, revoked=False)
        .annotate(platform_member=in_platform_group("user_id"))
        .order_by()
        .values_list(*_TOKEN_FIELDS, *(f"user__{name}" for name in _USER_FIELDS if name != "id"), "platform_member")[:1]
    )


# What a request needs of its token and user, each in its model's field order (`Model.from_db`); the other fields
# are loaded if something asks for them.
_TOKEN_FIELDS = tuple(
    f.attname for f in ApiToken._meta.concrete_fields if f.attname in ("id", "user_id", "expires_at", "last_used_at")
)
_USER_FIELDS = tuple(
    f.attname
    for f in get_user_model()._meta.concrete_fields
    if f.attname in ("id", "username", "is_active", "is_staff", "is_superuser")
)
_LIVE_TOKEN = CompiledRead(_live_token, key_hash=str)


def check(key: str) -> ApiToken | None:
    """The live token with this key (not revoked, not expired, its user active), or None.

    One query, compiled once (`CompiledRead`): it also reads whether the user is a platform engineer, which nearly
    every API request asks.
    """
    rows = _LIVE_TOKEN.rows(key_hash=hash_key(key))
    if not rows:
        return None
    token_values = rows[0][: len(_TOKEN_FIELDS)]
    *user_values, platform_member = rows[0][len(_TOKEN_FIELDS) :]
    token = ApiToken.from_db("default", _TOKEN_FIELDS, token_values)
    user_values = [token.user_id if name == "id" else user_values.pop(0) for name in _USER_FIELDS]
    user = get_user_model().from_db("default", _USER_FIELDS, user_values)
    now = timezone.now()
    if not user.is_active or (token.expires_at is not None and token.expires_at <= now):
        return None
    token.user = user
    remember_platform(user, platform_member)
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
