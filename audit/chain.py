"""The tamper-evident hash chain over audit events, and the sequencer that seals events into it.

Requests only insert events (unsealed: `seq`, `hash` and `prev_hash` null), so audited writes of
different teams never wait on each other. `seal` then takes the chain lock for one short batch at
a time and gives each unsealed event, in id order, the next `seq`, the hash of the event sealed
before it as `prev_hash`, and its own `hash`: SHA-256 over a canonical JSON form of its content
and `prev_hash`. Editing, removing or reordering a sealed row breaks a link that `verify` reports.
Gaps left by retention are vouched for by `AuditAnchor` rows.

Chain order is `seq`, the order of sealing, not the insert id. A sealer only sees committed
events, and Postgres hands out ids at insert, so an event whose transaction commits late may
carry a lower id than events sealed before it; it is simply sealed in the next batch. Nothing is
ever placed before an event already sealed, so sealing never rewrites the chain, and the chain
follows commit order to within one batch.

Crash safety: each batch is one transaction. A crash mid-batch rolls the whole batch back, so the
chain is always a consistent prefix and the next run (on-commit trigger or beat) seals the rest.
Sealing an already sealed event is impossible (the UPDATE requires `seq IS NULL`, and so does the
Postgres trigger), which makes `seal` idempotent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet

from audit.models import EVENT_FIELDS, AuditAnchor, AuditEvent
from gatewayportal.locks import advisory_xact_lock

# The one lock of the chain: held by the sequencer for one batch, and by a retention purge.
CHAIN_LOCK = "audit-chain"
# Every public field but the row id (order comes from the prev_hash links) and the hash itself.
HASHED_FIELDS = tuple(name for name in EVENT_FIELDS if name not in ("id", "hash"))
VERIFY_CHUNK_SIZE = 2000
SEAL_BATCH_SIZE = 500

seal_logger = logging.getLogger("gatewayportal.audit")


def canonical(fields: Mapping[str, Any]) -> bytes:
    """Stable bytes for the hashed fields: sorted keys, no whitespace, UTC timestamps."""
    payload = {name: fields[name] for name in HASHED_FIELDS}
    at = payload["at"]
    payload["at"] = at.astimezone(UTC).isoformat() if isinstance(at, datetime) else at
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


def lock_chain() -> None:
    """Hold the chain lock until the current transaction ends (a no-op on SQLite, which serialises writers)."""
    advisory_xact_lock(CHAIN_LOCK)


@dataclass(frozen=True)
class Head:
    """The newest sealed event: what is published outside the database (log line, metric)."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, value: str) -> Head:
        """`SEQ:HASH`, as printed by `audit_verify` and carried by the seal log lines."""
        seq, sep, digest = value.strip().partition(":")
        if not sep or not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{value!r} is not SEQ:HASH (a sequence number, a colon, 64 lower-case hex digits).")
        return cls(int(seq), digest)


def head() -> Head | None:
    """The chain's newest sealed event (None before the first seal)."""
    row = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", "hash").first()
    return Head(*row) if row else None


def unsealed() -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(seq__isnull=True)


@dataclass(frozen=True)
class SealResult:
    sealed: int
    head: Head | None


def seal(*, batch_size: int = SEAL_BATCH_SIZE, max_batches: int | None = None) -> SealResult:
    """Seal every committed unsealed event, one short locked transaction per batch."""
    sealed, batches, last = 0, 0, None
    while max_batches is None or batches < max_batches:
        done, last = _seal_batch(batch_size)
        sealed += done
        batches += 1
        if done < batch_size:
            break
    return SealResult(sealed, last)


def _seal_batch(batch_size: int) -> tuple[int, Head | None]:
    """Seal up to `batch_size` events in one transaction; returns how many, and the head after it."""
    with transaction.atomic():
        lock_chain()
        previous = head()  # read under the lock: only a sealer holding it moves the head
        rows = list(unsealed().order_by("id").values("id", *HASHED_FIELDS)[:batch_size])
        if not rows:
            return 0, previous
        seq, prev_hash = (previous.seq, previous.hash) if previous else (0, "")
        seals = []
        for row in rows:
            seq += 1
            row["prev_hash"] = prev_hash
            prev_hash = compute_hash(row)
            seals.append((row["id"], seq, row["prev_hash"], prev_hash))
        _write_seals(seals)
        transaction.on_commit(lambda: log_seals(seals))
    return len(seals), Head(seq, prev_hash)


def _write_seals(seals: list[tuple[int, int, str, str]]) -> None:
    """One UPDATE for the batch; `seq IS NULL` makes a second seal of a row impossible."""
    table = AuditEvent._meta.db_table
    values = ",".join(["(%s, %s, %s, %s)"] * len(seals))
    params = [value for row in seals for value in row]
    with connection.cursor() as cursor:
        # VALUES columns are column1… on both Postgres and SQLite.
        cursor.execute(
            f"UPDATE {table} SET seq = s.column2, prev_hash = s.column3, hash = s.column4 "
            f"FROM (VALUES {values}) AS s WHERE {table}.id = s.column1 AND {table}.seq IS NULL",
            params,
        )
        if cursor.rowcount != len(seals):
            raise RuntimeError(f"sealed {cursor.rowcount} audit events of {len(seals)}; the batch is rolled back")


def log_seals(seals: Iterable[tuple[int, int, str, str]]) -> None:
    """One line per sealed event on `gatewayportal.audit`: the SIEM keeps every head of the chain."""
    for event_id, seq, prev_hash, digest in seals:
        seal_logger.info(
            "audit event sealed %s:%s",
            seq,
            digest,
            extra={"audit_seal": {"id": event_id, "seq": seq, "hash": digest, "prev_hash": prev_hash}},
        )


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str = ""
    gaps: int = 0
    unsealed: int = 0
    head: Head | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_broken_id": self.first_broken_id,
            "reason": self.reason,
            "gaps": self.gaps,
            "unsealed": self.unsealed,
            "head_seq": self.head.seq if self.head else None,
            "head_hash": self.head.hash if self.head else None,
        }


def _anchors() -> set[tuple[int, str, str]]:
    return set(AuditAnchor.objects.values_list("event_id", "prev_hash", "purged_hash"))


def verify(queryset: QuerySet[AuditEvent] | None = None, *, expect_head: Head | None = None) -> VerifyResult:
    """Walk sealed events in chain order and report the first broken link.

    Without a queryset the whole chain is checked from its genesis (`prev_hash` ""). A queryset
    (e.g. `seq__gte=…`) checks that range, trusting the `prev_hash` of its first event. Unsealed
    events are counted, not checked. `expect_head` is a head published earlier: the chain must
    still hold it, or its tail was cut.
    """
    rows = (queryset if queryset is not None else AuditEvent.objects.all()).filter(seq__isnull=False).order_by("seq")
    values = rows.values("id", "seq", "hash", *HASHED_FIELDS).iterator(chunk_size=VERIFY_CHUNK_SIZE)
    result = verify_rows(values, anchors=_anchors(), trust_first=queryset is not None, expect_head=expect_head)
    return VerifyResult(**{**vars(result), "unsealed": unsealed().count()})


def verify_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    anchors: set[tuple[int, str, str]],
    trust_first: bool = False,
    expect_head: Head | None = None,
) -> VerifyResult:
    """The pure part of `verify`: sealed rows in `seq` order, anchors as (event_id, prev_hash, purged_hash)."""
    expected_prev: str | None = None if trust_first else ""
    checked = gaps = 0
    last: Head | None = None
    for row in rows:
        if compute_hash(row) != row["hash"]:
            return VerifyResult(False, checked, row["id"], "content does not match its hash (edited)", gaps, head=last)
        if expected_prev is not None and row["prev_hash"] != expected_prev:
            if (row["id"], expected_prev, row["prev_hash"]) not in anchors:
                reason = "prev_hash does not match the preceding event (removed or reordered)"
                return VerifyResult(False, checked, row["id"], reason, gaps, head=last)
            gaps += 1
        if expect_head and row.get("seq") == expect_head.seq and row["hash"] != expect_head.hash:
            reason = f"the event at seq {expect_head.seq} is not the expected head (the chain was rewritten)"
            return VerifyResult(False, checked, row["id"], reason, gaps, head=last)
        expected_prev = row["hash"]
        last = Head(row.get("seq", 0), row["hash"])
        checked += 1
    if expect_head and (last is None or last.seq < expect_head.seq):
        reason = (
            f"the chain ends at seq {last.seq if last else 0}, before the expected head {expect_head.seq}: "
            "events were cut from its tail"
        )
        return VerifyResult(False, checked, None, reason, gaps, head=last)
    return VerifyResult(True, checked, gaps=gaps, head=last)
