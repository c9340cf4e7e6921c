"""The tamper-evident hash chain over audit events.

Each event's `hash` is SHA-256 over a canonical JSON form of its content and `prev_hash`, the
hash of the event written just before it. Editing, removing or reordering a row breaks a link
that `verify` reports. Gaps left by retention are vouched for by `AuditAnchor` rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet

from audit.models import EVENT_FIELDS, AuditAnchor, AuditEvent
from gatewayportal.locks import advisory_xact_lock

# Serialises every writer of the chain (and the purge) on Postgres; any constant unique to the portal.
ADVISORY_LOCK_KEY = 7_402_113_551
# Every public field but the row id (order comes from the prev_hash links) and the hash itself.
HASHED_FIELDS = tuple(name for name in EVENT_FIELDS if name not in ("id", "hash"))
VERIFY_CHUNK_SIZE = 2000


def canonical(fields: Mapping[str, Any]) -> bytes:
    """Stable bytes for the hashed fields: sorted keys, no whitespace, UTC timestamps."""
    payload = {name: fields[name] for name in HASHED_FIELDS}
    at = payload["at"]
    payload["at"] = at.astimezone(UTC).isoformat() if isinstance(at, datetime) else at
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


def lock_chain() -> None:
    """Hold the chain lock until the current transaction ends (Postgres).

    On SQLite the database-wide write lock already serialises writers.
    """
    advisory_xact_lock(ADVISORY_LOCK_KEY)


def last_hash() -> str:
    """Hash of the newest event ("" for an empty log). Call under `lock_chain`."""
    return AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or ""


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str = ""
    gaps: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_broken_id": self.first_broken_id,
            "reason": self.reason,
            "gaps": self.gaps,
        }


def _anchors() -> set[tuple[int, str, str]]:
    return set(AuditAnchor.objects.values_list("event_id", "prev_hash", "purged_hash"))


def verify(queryset: QuerySet[AuditEvent] | None = None) -> VerifyResult:
    """Walk events in id order and report the first broken link.

    Without a queryset the whole log is checked from its genesis (`prev_hash` ""). A queryset
    (e.g. `id__gte=…`) checks that range, trusting the `prev_hash` of its first event.
    """
    rows = (queryset if queryset is not None else AuditEvent.objects.all()).order_by("id")
    values = rows.values("id", "hash", *HASHED_FIELDS).iterator(chunk_size=VERIFY_CHUNK_SIZE)
    return verify_rows(values, anchors=_anchors(), trust_first=queryset is not None)


def verify_rows(
    rows: Iterable[Mapping[str, Any]], *, anchors: set[tuple[int, str, str]], trust_first: bool = False
) -> VerifyResult:
    """The pure part of `verify`: rows in id order, anchors as (event_id, prev_hash, purged_hash)."""
    expected_prev: str | None = None if trust_first else ""
    checked = gaps = 0
    for row in rows:
        if compute_hash(row) != row["hash"]:
            return VerifyResult(False, checked, row["id"], "content does not match its hash (edited)", gaps)
        if expected_prev is not None and row["prev_hash"] != expected_prev:
            if (row["id"], expected_prev, row["prev_hash"]) not in anchors:
                reason = "prev_hash does not match the preceding event (removed or reordered)"
                return VerifyResult(False, checked, row["id"], reason, gaps)
            gaps += 1
        expected_prev = row["hash"]
        checked += 1
    return VerifyResult(True, checked, gaps=gaps)
