"""Transaction-scoped locks that hold across processes."""

import hashlib

from django.db import connection


def advisory_xact_lock(key: str) -> None:
    """Blocks until no other transaction holds `key`; released at commit or rollback.

    Postgres advisory locks serialize across every web and worker process. SQLite (the embedded
    demo) already serializes writers, so there is nothing more to do there.
    """
    if connection.vendor != "postgresql":
        return
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [number])
