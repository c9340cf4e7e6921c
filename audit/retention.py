"""Retention: drop old audit events through the one controlled path, archiving them first.

Only sealed events are dropped, and never: an object's creation event (action `*.created`),
each object's latest event, and the chain's head (its newest sealed event, which the next seal
links to). Every gap left in the chain (in `seq` order) is vouched for by an `AuditAnchor`, so
`audit.chain.verify` still passes. The purge holds the chain lock, so no seal runs meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from audit import chain
from audit.actions import audit_record, event_as_dict
from audit.models import AuditAnchor, AuditEvent

DELETE_BATCH_SIZE = 1000
EXPORT_CHUNK_SIZE = 2000


@dataclass(frozen=True)
class PurgeResult:
    purged: int
    anchors: int
    archive: Path | None


def retention_cutoff(now: datetime | None = None) -> datetime | None:
    """Events older than this may be dropped; None when AUDIT_RETENTION_DAYS is unset (keep forever)."""
    days = settings.AUDIT_RETENTION_DAYS
    if days is None:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def purgeable(before: datetime) -> QuerySet[AuditEvent]:
    latest_per_object = (
        AuditEvent.objects.order_by().values("object_type", "object_id").annotate(last=Max("id")).values("last")
    )
    head = chain.head()
    return (
        AuditEvent.objects.filter(at__lt=before, seq__isnull=False)
        .exclude(action__endswith=".created")
        .exclude(id__in=latest_per_object)
        .exclude(seq=head.seq if head else None)
        .order_by("seq")
    )


@transaction.atomic
def audit_purge(*, before: datetime, archive_dir: Path | None = None, dry_run: bool = False) -> PurgeResult:
    """Archive, anchor and delete the purgeable events older than `before`."""
    chain.lock_chain()
    doomed = purgeable(before)
    rows = list(doomed.values_list("id", "seq"))
    ids = [event_id for event_id, _ in rows]
    if dry_run or not ids:
        return PurgeResult(purged=len(ids), anchors=0, archive=None)
    archive = _write_archive(doomed, Path(archive_dir or settings.AUDIT_ARCHIVE_DIR))
    anchors = _anchor_gaps(set(ids), rows[0][1], archive.name)
    _delete(ids)
    audit_record(
        action="audit.purged",
        object_type="audit_log",
        object_repr="audit log",
        data={
            "before": before.isoformat(),
            "purged": len(ids),
            "first_purged_id": ids[0],
            "last_purged_id": ids[-1],
            "anchors": anchors,
            "archive": archive.name,
            "archive_sha256": _sha256(archive),
        },
    )
    return PurgeResult(purged=len(ids), anchors=anchors, archive=archive)


def _write_archive(events: QuerySet[AuditEvent], directory: Path) -> Path:
    """JSON lines, one event each, written and synced before anything is deleted."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"audit-{timezone.now():%Y%m%dT%H%M%S%f}.jsonl"
    partial = path.with_suffix(".jsonl.partial")
    with partial.open("w", encoding="utf-8") as out:
        for event in events.iterator(chunk_size=EXPORT_CHUNK_SIZE):
            line = {**event_as_dict(event), "seq": event.seq}
            out.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
        out.flush()
        os.fsync(out.fileno())
    partial.rename(path)
    return path


def _anchor_gaps(doomed: set[int], first_seq: int, archive_name: str) -> int:
    """One anchor per run of consecutive doomed events (chain order), on the kept event that follows it."""
    sealed = AuditEvent.objects.filter(seq__isnull=False)
    kept_before = sealed.filter(seq__lt=first_seq).order_by("-seq").values_list("hash", flat=True).first()
    prev_kept_hash = kept_before or ""
    run: list[tuple[int, str]] = []
    anchors = []
    rows = sealed.filter(seq__gte=first_seq).order_by("seq").values_list("id", "hash", "prev_hash")
    for event_id, event_hash, prev_hash in rows.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        if event_id in doomed:
            run.append((event_id, event_hash))
            continue
        if run:
            anchors.append(
                AuditAnchor(
                    event_id=event_id,
                    prev_hash=prev_kept_hash,
                    purged_hash=prev_hash,
                    first_purged_id=run[0][0],
                    last_purged_id=run[-1][0],
                    purged_count=len(run),
                    archive=archive_name,
                )
            )
            run = []
        prev_kept_hash = event_hash
    AuditAnchor.objects.bulk_create(anchors)
    return len(anchors)


def _delete(ids: list[int]) -> None:
    """Raw DELETE under the session flag the append-only trigger honours (Postgres)."""
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL gatewayportal.audit_purge = 'on'")
        for start in range(0, len(ids), DELETE_BATCH_SIZE):
            batch = ids[start : start + DELETE_BATCH_SIZE]
            placeholders = ",".join(["%s"] * len(batch))
            cursor.execute(f"DELETE FROM {table} WHERE id IN ({placeholders})", batch)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL gatewayportal.audit_purge = 'off'")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
