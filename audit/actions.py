"""Writing audit events. Call inside the transaction of the change being recorded."""

from __future__ import annotations

from typing import Any

from audit.models import AuditEvent
from audit.redaction import redact
from gatewayportal.context import current_actor


def audit_record(
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
    ctx = current_actor()
    return AuditEvent.objects.create(
        actor=actor or ctx.name,
        source=source or ctx.source,
        request_id=ctx.request_id,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_repr=object_repr[:300],
        team=team,
        cluster=cluster,
        ticket=ticket or None,
        changes=redact(changes or {}),
        data=redact(data or {}),
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """field -> [before, after] for every field that changed."""
    keys = sorted(set(before) | set(after))
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}
