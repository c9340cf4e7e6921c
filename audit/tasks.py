"""Thin Celery entry points for audit housekeeping: sealing the chain and retention."""

from celery import shared_task

from audit.sealing import seal_audit_events  # noqa: F401  (registered for Celery's task discovery)
from gatewayportal.context import acting_as


@shared_task(name="audit.purge_expired")
def purge_expired() -> int:
    """Apply AUDIT_RETENTION_DAYS (a no-op when unset); returns how many events were dropped."""
    from audit.retention import audit_purge, retention_cutoff  # retention writes events through audit.actions

    cutoff = retention_cutoff()
    if cutoff is None:
        return 0
    with acting_as(name="system", source="scheduler"):
        return audit_purge(before=cutoff).purged
