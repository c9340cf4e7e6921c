"""Postgres advisory locks: the one way the portal serializes work across every web and worker process.

A lock is named by a string (hashed to the 64-bit number Postgres wants) or given as that number. SQLite (the
embedded demo) already serializes writers and runs tasks one at a time, so both helpers do nothing there.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

from django.db import connection


def lock_number(key: str | int) -> int:
    """The signed 64-bit number Postgres locks on: `key` itself if it is one, else a hash of the name."""
    if isinstance(key, int):
        return key
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


def advisory_xact_lock(key: str | int) -> None:
    """Blocks until no other transaction holds `key`; released at commit or rollback."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_number(key)])


@contextlib.contextmanager
def try_advisory_lock(key: str | int) -> Iterator[bool]:
    """Takes `key` for this database session if nobody holds it, without waiting; yields whether it did.

    A session lock goes with the connection: a process killed while holding it (SIGKILL, OOM) frees it at once.
    Released when the block ends, if it was taken.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    number = lock_number(key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [number])
        taken = bool(cursor.fetchone()[0])
    try:
        yield taken
    finally:
        if taken:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [number])
