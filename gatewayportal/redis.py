"""The portal's one Redis connection (coalescing markers, rate counters, locks without Postgres) and its key prefix."""

from __future__ import annotations

import redis
from django.conf import settings

_clients: dict[str, redis.Redis] = {}


def key_prefix() -> str:
    """Redis keys are scoped by database so several portals (or test runs) can share one Redis."""
    return f"gatewayportal:{settings.DATABASES['default']['NAME']}"


def redis_client() -> redis.Redis:
    """One client (and connection pool) per REDIS_URL, shared by the whole process."""
    if settings.REDIS_URL not in _clients:
        _clients[settings.REDIS_URL] = redis.Redis.from_url(settings.REDIS_URL)
    return _clients[settings.REDIS_URL]
