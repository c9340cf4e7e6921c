"""Sealing the audit chain after commit: one queued `seal_audit_events` for a burst of audited commits.

`audit.actions` calls `request_seal` on commit; `audit.tasks` re-exports the task for Celery's discovery.
"""

import contextlib
import logging

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from audit import chain

logger = logging.getLogger(__name__)

# Set while a seal is queued, so a burst of commits enqueues one task, not one per commit.
SEAL_PENDING_KEY = "audit:seal-pending"
logger = logging.getLogger(__name__)


def request_seal() -> None:
    """Run after an audited transaction commits: queue one `seal_audit_events` unless one is already queued.

    The task clears the key before it reads anything, so an event committed while it runs queues
    the next one. Should the queued task be lost, the key expires and beat's run seals the events.
    The change has committed: an unreachable Redis or broker is logged, never raised.
    """
    try:
        if cache.add(SEAL_PENDING_KEY, 1, timeout=settings.AUDIT_SEAL_INTERVAL_SECONDS):
            try:
                seal_audit_events.delay()
            except OperationalError:
                with contextlib.suppress(RedisError):
                    cache.delete(SEAL_PENDING_KEY)  # nothing is queued: the next commit must queue one
                raise
    except (RedisError, OperationalError) as exc:
        logger.warning("could not queue the sealing of audit events; beat's run will seal them: %s", exc)


@shared_task(name="audit.seal_audit_events")
def seal_audit_events() -> int:
    """Seal every committed, unsealed audit event into the hash chain; returns how many were sealed."""
    cache.delete(SEAL_PENDING_KEY)
    return chain.seal().sealed
