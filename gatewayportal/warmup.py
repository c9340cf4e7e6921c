"""What a web worker process makes ready before its first request (gunicorn's `post_worker_init`, in
deploy/gunicorn.conf.py).

Without it the first requests each worker answers pay for it: the views and everything they import (Django
imports the URL configuration on the first request), and Celery's first task sent after a commit (the app
finalized, a producer connected to the broker): about 70 ms on the first create of each worker, while the other
requests queue behind it. Measured in docs/benchmarks.md (API section).
"""

from __future__ import annotations

import gc
import logging
import threading

logger = logging.getLogger(__name__)


def warm_up(*, freeze: bool = False) -> threading.Thread | None:
    """Import the URL configuration, then connect one producer to the broker in a thread of its own (returned, None
    when tasks run in-process): a broker that does not answer cannot hold the worker past gunicorn's timeout, and
    one that is down is the first task's problem, as it would have been without this.

    With `freeze` (a web worker), what the process has loaded by then is moved out of the cyclic collector's way
    once the imports' garbage is collected, before the broker thread starts: Django, DRF and the app's modules
    (about 150,000 objects) live as long as the worker, and each full collection would walk them all again."""
    from django.conf import settings
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module and what it imports
    if freeze:
        gc.collect()
        gc.freeze()
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    thread = threading.Thread(target=_connect_broker, name="warm-up", daemon=True)
    thread.start()
    return thread


def _connect_broker() -> None:
    from gatewayportal.celery import app

    try:
        app.finalize(auto=True)
        with app.producer_or_acquire() as producer:  # kept in the app's producer pool, shared by the process
            producer.connection.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - warming up must never stop a worker from serving
        logger.warning("The broker could not be reached while warming up: %s", exc)
