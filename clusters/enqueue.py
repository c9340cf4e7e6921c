"""Reconcile requests: every gateway-affecting write asks for a run of the gateways it touches, coalesced.

Requests are sent once the writing transaction commits. `clusters.coalescer` decides per gateway whether this
change queues a run, joins the one already queued, or marks the running one dirty (one more run follows it).

The task is published by its registered name, never imported: the worker's modules (`clusters.tasks`,
`clusters.converge`) use `services.actions`, which requests reconciles through this module, so importing them here
would close an import cycle. `clusters.apps` imports `clusters.tasks` at start-up so the name is registered in every
process, the worker's and the web's alike.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

import kombu.exceptions
import redis
from celery import Task, current_app
from django.db import transaction

from clusters import coalescer

__all__ = ["RECONCILE_GATEWAY", "request_reconcile"]

logger = logging.getLogger(__name__)

# The registered name of `clusters.tasks.reconcile_gateway` (the task declares itself under this name).
RECONCILE_GATEWAY = "clusters.tasks.reconcile_gateway"


def request_reconcile(*, cluster_ids: Iterable[int], traffic_type: str) -> None:
    """Enqueue a reconcile of each cluster's gateway once the current transaction commits (coalesced)."""
    ids = sorted(set(cluster_ids))
    if ids:
        transaction.on_commit(lambda: _enqueue(ids, traffic_type))


def _enqueue(cluster_ids: list[int], traffic_type: str) -> None:
    for cluster_id in cluster_ids:
        try:
            _enqueue_one(cluster_id, traffic_type)
        except (redis.exceptions.RedisError, kombu.exceptions.OperationalError) as exc:
            # The write has committed and must not fail now; the periodic sweep reconciles every gateway.
            logger.warning(
                "could not enqueue a reconcile of cluster %s/%s; the sweep will pick it up: %s",
                cluster_id,
                traffic_type,
                exc,
            )


def _enqueue_one(cluster_id: int, traffic_type: str) -> None:
    if not coalescer.enabled():
        # Eager tasks or no Redis (the embedded demo): run now, in process.
        _reconcile_task().apply_async((cluster_id, traffic_type), countdown=0)
        return
    countdown = coalescer.note_change(cluster_id, traffic_type)
    if countdown is None:
        return  # a queued run will read this change, or the running one is now dirty and runs once more
    try:
        _reconcile_task().apply_async((cluster_id, traffic_type), countdown=countdown)
    except kombu.exceptions.OperationalError:
        # Nothing is queued after all: the marker must not hold back the next change.
        with contextlib.suppress(redis.exceptions.RedisError):
            coalescer.unqueue(cluster_id, traffic_type)
        raise


def _reconcile_task() -> Task:
    """The registered task object itself (what `clusters.tasks.reconcile_gateway` stands for), so a run in process
    (eager) and a patched `apply_async` behave exactly as when it is called through the task module."""
    return current_app.tasks[RECONCILE_GATEWAY]
