"""Writing audit events. Call inside the transaction of the change being recorded."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.sealing import request_seal
from gatewayportal.context import current_actor
from gatewayportal.redaction import redact, redact_text

siem_logger = logging.getLogger("gatewayportal.audit")


def audit_record(**fields: Any) -> AuditEvent:
    """Append one unsealed event (the fields of `audit_event`), in the caller's transaction.

    No lock is taken and nothing of the chain is read: concurrent writers never wait on each
    other. Once the transaction commits, the SIEM log line is emitted and the sequencer is asked
    to seal the event into the hash chain (`audit.chain.seal`).
    """
    event = audit_event(**fields)
    event.save()
    _after_commit([event])
    return event


def audit_record_many(events: list[AuditEvent]) -> list[AuditEvent]:
    """Append several events built by `audit_event` in one INSERT, in the caller's transaction (as `audit_record`
    does one): a reconcile that writes a thousand Secrets records them in one statement."""
    if events:
        AuditEvent.objects.bulk_create(events)
        _after_commit(events)
    return events


def audit_event(
    *,
    action: str,
    object_type: str,
    object_id: str = "",
    object_repr: str = "",
    team: str | None = None,
    cluster: str | None = None,
    ticket: str | None = None,
    changes: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    actor: str | None = None,
    source: str | None = None,
) -> AuditEvent:
    """An unsaved, unsealed event of the current actor, redacted; `audit_record` saves one, `audit_record_many`
    several."""
    ctx = current_actor()
    if ctx.identity and (actor is None or actor == ctx.name):
        data = {**(data or {}), "identity": ctx.identity}
    return AuditEvent(
        at=timezone.now(),
        actor=actor or ctx.name,
        source=source or ctx.source,
        request_id=ctx.request_id,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_repr=redact_text(object_repr)[:300],
        team=team,
        cluster=cluster,
        ticket=ticket or None,
        changes=_as_stored_json(redact(changes or {})),
        data=_as_stored_json(redact(data or {})),
        prev_hash=None,
        hash=None,
    )


def _after_commit(events: list[AuditEvent]) -> None:
    for event in events:
        transaction.on_commit(lambda event=event: emit_siem_line(event))
    # Cheap and never blocking: at most one seal is queued at a time (see `request_seal`).
    transaction.on_commit(request_seal, robust=True)


def _as_stored_json(value: dict[str, Any]) -> dict[str, Any]:
    """The value exactly as it reads back from the JSON column (dates, UUIDs, decimals as strings).

    The hash must be computed over what verification will later read.
    """
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def event_as_dict(event: AuditEvent) -> dict[str, Any]:
    """The contract's event shape, for logs and archives."""
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "source": event.source,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "team": event.team,
        "cluster": event.cluster,
        "ticket": event.ticket,
        "request_id": event.request_id,
        "changes": event.changes,
        "data": event.data,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
    }


def emit_siem_line(event: AuditEvent) -> None:
    """One structured line per event on `gatewayportal.audit`, for Splunk/ELK to ingest."""
    siem_logger.info(
        "audit event %s", event.action, extra={"audit": event_as_dict(event), "request_id": event.request_id}
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """field -> [before, after] for every field that changed."""
    keys = sorted(set(before) | set(after))
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}
