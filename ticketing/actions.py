"""Writes: ticketing sources (audited, secrets never in events) and the handling of webhook deliveries."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.actions import audit_record, diff
from gatewayportal.context import acting_as
from gatewayportal.exceptions import DomainError
from services import actions as service_actions
from services import selectors as service_selectors
from ticketing import parsers, signatures
from ticketing.models import SourceKind, TicketingSource, WebhookDelivery
from ticketing.parsers import TicketEvent
from ticketing.selectors import ticketing_source_by_name

logger = logging.getLogger(__name__)

DEFAULT_OVERLAP_SECONDS = 24 * 60 * 60
# A source's settings: what the API and the admin edit, and what its audit events diff.
SOURCE_FIELDS = (
    "name",
    "kind",
    "team",
    "approved_statuses",
    "rejected_statuses",
    "enabled",
    "require_references",
    "reference_field",
)


# --- sources ------------------------------------------------------------------------------------------


def _state(source: TicketingSource) -> dict[str, Any]:
    return {
        "name": source.name,
        "kind": source.kind,
        "team": source.team.slug,
        "approved_statuses": source.approved_statuses,
        "rejected_statuses": source.rejected_statuses,
        "enabled": source.enabled,
        "require_references": source.require_references,
        "reference_field": source.reference_field,
    }


def _audit_source(source: TicketingSource, action: str, **fields: Any) -> None:
    """An event about a ticketing source: a change of it, or a delivery it sent (webhook.*)."""
    audit_record(
        action=action,
        object_type="ticketing_source",
        object_id=str(source.pk),
        object_repr=source.name,
        team=source.team.slug,
        **fields,
    )


@transaction.atomic
def ticketing_source_create(*, data: dict[str, Any]) -> tuple[TicketingSource, str]:
    """Create a source; returns it with its secret in clear text (generated when not given) to show once."""
    fields = {k: v for k, v in data.items() if k != "secret"}
    secret = data.get("secret") or signatures.generate_secret(fields["kind"])
    source = TicketingSource.objects.create(**fields, secret=secret)
    _audit_source(source, "ticketing_source.created", changes={k: [None, v] for k, v in _state(source).items()})
    return source, secret


@transaction.atomic
def ticketing_source_update(*, source: TicketingSource, data: dict[str, Any]) -> TicketingSource:
    """Change settings; the secret changes only through `ticketing_source_rotate_secret`."""
    before = _state(source)
    for name, value in data.items():
        if name not in SOURCE_FIELDS or name == "kind":
            raise ValueError(f"{name} cannot be updated here")
        setattr(source, name, value)
    source.save()
    _audit_source(source, "ticketing_source.updated", changes=diff(before, _state(source)))
    return source


@transaction.atomic
def ticketing_source_rotate_secret(
    *, source: TicketingSource, secret: str | None = None, overlap_seconds: int = DEFAULT_OVERLAP_SECONDS
) -> str:
    """Switch to a new secret; the old one stays valid for `overlap_seconds` so senders can catch up."""
    new_secret = secret or signatures.generate_secret(source.kind)
    source.previous_secret = source.secret if overlap_seconds > 0 else ""
    source.previous_secret_expires_at = (
        timezone.now() + timedelta(seconds=overlap_seconds) if overlap_seconds > 0 else None
    )
    source.secret = new_secret
    source.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    valid_until = source.previous_secret_expires_at.isoformat() if source.previous_secret_expires_at else None
    _audit_source(
        source,
        "ticketing_source.secret_rotated",
        changes={},
        data={
            "generated": secret is None,
            "overlap_seconds": overlap_seconds,
            "previous_secret_valid_until": valid_until,
        },
    )
    return new_secret


@transaction.atomic
def ticketing_source_delete(*, source: TicketingSource) -> None:
    _audit_source(source, "ticketing_source.deleted", changes={k: [v, None] for k, v in _state(source).items()})
    source.delete()


# --- webhook ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: dict[str, Any]


_UNKNOWN = {"detail": "No enabled ticketing source with this name."}
_CLIENT_LIMITED = {"detail": "Too many unauthenticated requests from this client."}
_SOURCE_LIMITED = {"detail": "Too many deliveries for this source."}
# Refused deliveries to a known source: at most one audit event per (source, reason) in this window, with a count.
REFUSAL_AUDIT_WINDOW_SECONDS = 60


def _always() -> bool:
    return True


def webhook_receive(
    *,
    source_name: str,
    headers: Mapping[str, str],
    content_length: int | None,
    read_body: Callable[[], bytes],
    now: datetime | None = None,
    source_allowed: Callable[[], bool] = _always,
    client_allowed: Callable[[], bool] = _always,
) -> WebhookAnswer:
    """Authenticate, then throttle, parse and act on one delivery.

    Authentication comes first: only authenticated deliveries count against the source's budget
    (`source_allowed`), so unsigned floods cannot silence a source; refusals before authentication count against
    the sending client's own budget (`client_allowed`). Unknown sources are logged, never audited; refusals to a
    known source are logged each and audited at most once a minute per reason (`webhook_refuse`).
    `read_body` is called only once the source is known and the announced length is within the limit.
    """
    now = now or timezone.now()
    source = ticketing_source_by_name(name=source_name)
    if source is None:
        logger.info("webhook refused: unknown_source", extra={"source_name": source_name[:150], "status": 404})
        return WebhookAnswer(404, _UNKNOWN)
    # A disabled source answers exactly like an unknown one: senders learn nothing, the audit event says why.
    if not source.enabled:
        return _unauthenticated(source, client_allowed, status=404, reason="source_disabled", body=_UNKNOWN)
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    too_large = {"detail": f"The body exceeds the limit of {limit} bytes."}
    if content_length is not None and content_length > limit:
        return _unauthenticated(source, client_allowed, status=413, reason="body_too_large", body=too_large)
    body = read_body()
    if len(body) > limit:
        return _unauthenticated(source, client_allowed, status=413, reason="body_too_large", body=too_large)
    try:
        event = _authenticated_event(source, headers=headers, body=body, now=now)
    except signatures.Unauthenticated as exc:
        return _unauthenticated(source, client_allowed, status=401, reason="bad_signature", body={"detail": str(exc)})
    except signatures.StaleTimestamp as exc:
        return _unauthenticated(
            source, client_allowed, status=400, reason="stale_timestamp", body={"timestamp": [str(exc)]}
        )
    except signatures.MalformedHeader as exc:
        return _unauthenticated(
            source, client_allowed, status=400, reason="malformed_header", body={exc.header: [str(exc)]}
        )
    except parsers.MalformedPayload as exc:
        return webhook_refuse(source=source, status=400, reason="malformed_body", body=exc.errors)
    if not source_allowed():
        return webhook_refuse(source=source, status=429, reason="rate_limited", body=_SOURCE_LIMITED)
    return _handle(source, event)


def _unauthenticated(
    source: TicketingSource, client_allowed: Callable[[], bool], *, status: int, reason: str, body: dict[str, Any]
) -> WebhookAnswer:
    """A refusal before the sender proved who it is: it spends the client's budget, never the source's."""
    if not client_allowed():
        return webhook_refuse(source=source, status=429, reason="client_rate_limited", body=_CLIENT_LIMITED)
    return webhook_refuse(source=source, status=status, reason=reason, body=body)


def refusal_gate_key(source: TicketingSource, reason: str) -> str:
    return f"ticketing:refused:{source.pk}:{reason}:gate"


def webhook_refuse(*, source: TicketingSource, status: int, reason: str, body: dict[str, Any]) -> WebhookAnswer:
    """Answer a refused delivery to a known source: logged every time, audited at most once a window.

    The audit event counts the refusals since the previous one (never the secret, the signature or the body).
    """
    logger.info("webhook refused: %s", reason, extra={"source_name": source.name, "status": status, "reason": reason})
    count = _refusals_to_audit(source, reason)
    if count:
        with acting_as(name=source.name[:150], source="webhook"):
            _audit_source(
                source,
                "webhook.refused",
                data={
                    "reason": reason,
                    "status": status,
                    "detail": body,
                    "count": count,
                    "window_seconds": REFUSAL_AUDIT_WINDOW_SECONDS,
                },
            )
    return WebhookAnswer(status, body)


def _refusals_to_audit(source: TicketingSource, reason: str) -> int:
    """0 while this (source, reason) was audited within the window; else the refusals counted since (this one too)."""
    counter = f"ticketing:refused:{source.pk}:{reason}:count"
    try:
        cache.add(counter, 0, timeout=None)
        count = cache.incr(counter)
        if not cache.add(refusal_gate_key(source, reason), 1, timeout=REFUSAL_AUDIT_WINDOW_SECONDS):
            return 0
        cache.decr(counter, count)
        return count
    except Exception:  # noqa: BLE001 (a cache outage must not hide refusals: audit each one meanwhile)
        logger.warning("webhook refusal counter unavailable; auditing this refusal", exc_info=True)
        return 1


def _authenticated_event(
    source: TicketingSource, *, headers: Mapping[str, str], body: bytes, now: datetime
) -> TicketEvent:
    secrets_ = source.valid_secrets(now=now)
    if source.kind == SourceKind.GENERIC:
        delivery_id = signatures.verify_standard_webhook(
            secrets_=secrets_, headers=headers, body=body, now=now.timestamp()
        )
        return parsers.parse_generic(parsers.load_json(body), delivery_id=delivery_id)
    mapping = {
        "approved": source.approved_statuses,
        "rejected": source.rejected_statuses,
        "reference_field": source.reference_field or parsers.DESCRIPTION,
    }
    if source.kind == SourceKind.JIRA:
        signatures.verify_hub_signature(secrets_=secrets_, headers=headers, body=body)
        payload = parsers.load_json(body)
        # Jira signs its event time (milliseconds) inside the body: a replay older than the tolerance is refused.
        sent = payload.get("timestamp") if isinstance(payload, dict) else None
        if isinstance(sent, int | float) and not isinstance(sent, bool):
            # An int too large for a float is no time at all (dividing it was an OverflowError, a 500).
            seconds = sent / 1000 if abs(sent) < 1e300 else math.inf
            signatures.check_fresh(seconds, now=now.timestamp())
        return parsers.parse_jira(payload, body=body, **mapping)
    signatures.verify_bearer(secrets_=secrets_, headers=headers)
    return parsers.parse_servicenow(parsers.load_json(body), body=body, **mapping)


def _handle(source: TicketingSource, event: TicketEvent) -> WebhookAnswer:
    with acting_as(name=(event.actor or source.name)[:150], source="webhook"), transaction.atomic():
        try:
            # The unique (source, delivery_id) row is the idempotency lock: a concurrent twin waits here, then fails.
            with transaction.atomic():
                delivery = WebhookDelivery.objects.create(
                    source=source, delivery_id=event.delivery_id, outcome=event.kind, ticket=event.ticket
                )
        except IntegrityError:
            return _received(source, event, {"outcome": "duplicate"})
        details = _act(source, event)
        delivery.outcome = details["outcome"]
        delivery.save(update_fields=["outcome"])
        return _received(source, event, details)


def _received(source: TicketingSource, event: TicketEvent, details: dict[str, Any]) -> WebhookAnswer:
    body = {**details, "ticket": event.ticket, "delivery_id": event.delivery_id}
    _audit_source(
        source,
        "webhook.received",
        ticket=event.ticket,
        data={**body, "event": event.kind, "kind": source.kind},
    )
    return WebhookAnswer(200, body)


def _act(source: TicketingSource, event: TicketEvent) -> dict[str, Any]:
    if event.kind in (parsers.APPROVED, parsers.REJECTED):
        return _decide(source, event)
    if event.kind == parsers.CREATED:
        return _file_request(source, event)
    return {"outcome": "ignored", "reason": event.reason}


def _decide(source: TicketingSource, event: TicketEvent) -> dict[str, Any]:
    """Decide the pending revisions the write that named the ticket linked to it.

    A source that requires references approves only those whose approval reference the delivery carries; each
    pending revision it leaves out is recorded as a refused approval. A rejection needs no reference: a refusal
    must never be missed.
    """
    revisions = list(service_selectors.pending_revisions_for_ticket(ticket=event.ticket, team=source.team))
    if not revisions:
        reason = f"No pending revision of team {source.team.slug!r} names ticket {event.ticket!r}."
        return {"outcome": "ignored", "reason": reason, **_unmatched(event, [])}
    refused: list[dict[str, Any]] = []
    if event.kind == parsers.APPROVED and source.require_references:
        carried = set(event.references)
        for revision in revisions:
            if revision.approval_reference not in carried:
                refused.append(_refuse_approval(source, event, revision))
        revisions = [r for r in revisions if r.approval_reference in carried]
    decide = service_actions.revision_approve if event.kind == parsers.APPROVED else service_actions.revision_reject
    decided = []
    for revision in revisions:
        try:
            with transaction.atomic():
                decided.append(decide(revision=revision, comment=event.comment))
        except DomainError:
            continue  # decided through another door since it was looked up
    extra = {**({"refused": refused} if refused else {}), **_unmatched(event, revisions)}
    if not decided:
        reason = (
            f"The delivery carries the approval reference of no pending revision naming ticket {event.ticket!r}; "
            f"source {source.name!r} approves only the revisions whose references it carries."
            if refused and not revisions
            else f"Every revision naming ticket {event.ticket!r} was already decided."
        )
        return {"outcome": "ignored", "reason": reason, **extra}
    return {
        "outcome": event.kind,
        "services": sorted({str(r.service_id) for r in decided}),
        "revisions": [{"service": str(r.service_id), "revision": r.number} for r in decided],
        **extra,
    }


def _refuse_approval(source: TicketingSource, event: TicketEvent, revision) -> dict[str, Any]:
    """Record that a ticket's approval left out a revision whose reference it does not carry."""
    reason = (
        f"Ticket {event.ticket!r} does not carry approval reference {revision.approval_reference} of revision "
        f"{revision.number}; source {source.name!r} approves only referenced revisions."
    )
    audit_record(
        action="gateway_service.approval_refused",
        object_type="gateway_service",
        object_id=str(revision.service_id),
        object_repr=str(revision.service),
        team=source.team.slug,
        ticket=event.ticket,
        data={"revision": revision.number, "source": source.name, "reason": "reference_missing", "detail": reason},
    )
    return {"service": str(revision.service_id), "revision": revision.number, "reason": reason}


def _unmatched(event: TicketEvent, revisions: list) -> dict[str, Any]:
    """References the delivery carries that name no pending revision linked to its ticket."""
    known = {r.approval_reference for r in revisions}
    unmatched = [ref for ref in event.references if ref not in known]
    return {"unmatched_references": unmatched} if unmatched else {}


def _file_request(source: TicketingSource, event: TicketEvent) -> dict[str, Any]:
    if event.errors:
        return {"outcome": "rejected", "errors": event.errors}
    try:
        with transaction.atomic():
            service, warnings = service_actions.gateway_service_create_from_payload(
                payload=event.gateway_service or {}, team=source.team
            )
    except DomainError as exc:
        return {"outcome": "rejected", "errors": _plain(exc.errors)}
    return {"outcome": "created", "services": [str(service.pk)], "warnings": list(warnings)}


def _plain(detail: Any) -> Any:
    """Error details as plain JSON for the answer and the audit event (list indexes become string keys)."""
    return json.loads(json.dumps(detail))
