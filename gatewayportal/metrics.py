"""Prometheus metrics: what the workers observe, plus gauges read from the database at scrape time.

Workers call `observe_reconcile`, `count_apply_failure` and `set_queue_lag`. The database-derived
gauges (pending approvals, expiring certificates) are computed by the collectors apps register with
`register_state_collector` (e.g. `services.metrics.PortalStateCollector`) on every scrape of the web
`/metrics`, so they are never stale and no process has to keep them up to date.

Several processes (gunicorn workers, Celery prefork children) each hold their own counters. With
`PROMETHEUS_MULTIPROC_DIR` set, prometheus_client writes them to files in that directory and
`/metrics` (or `python -m gatewayportal.metrics` for a worker pod) sums them up.
"""

from __future__ import annotations

import argparse
import hmac
import os
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

RECONCILE_DURATION = Histogram(
    "gatewayportal_reconcile_duration_seconds",
    "Time taken by one reconcile of one cluster's gateway.",
    ["cluster", "traffic_type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
APPLY_FAILURES = Counter(
    "gatewayportal_apply_failures",
    "Writes to a cluster that failed, by reason.",
    ["reason"],
)
# "mostrecent": with several worker processes the lag is the last one any of them saw.
QUEUE_LAG = Gauge(
    "gatewayportal_queue_lag_seconds",
    "Seconds between enqueueing a task and a worker starting it, last observed.",
    multiprocess_mode="mostrecent",
)


def observe_reconcile(cluster: str, traffic_type: str, seconds: float) -> None:
    RECONCILE_DURATION.labels(cluster=cluster, traffic_type=traffic_type).observe(seconds)


def count_apply_failure(reason: str) -> None:
    APPLY_FAILURES.labels(reason=reason).inc()


def set_queue_lag(seconds: float) -> None:
    QUEUE_LAG.set(max(seconds, 0.0))


# Collectors of the portal's state, read from the database on each scrape of the web /metrics. Each app registers
# its own from its AppConfig.ready(), so this module names no app.
_state_collectors: dict[str, Callable[[], Collector]] = {}


def register_state_collector(factory: Callable[[], Collector]) -> None:
    """Add a collector (its class, or any factory) to every scrape of /metrics; registering twice is harmless."""
    _state_collectors[f"{factory.__module__}.{factory.__qualname__}"] = factory


class _DefaultRegistry(Collector):
    """The process-local default registry, as one collector of a per-scrape registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def _process_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_DefaultRegistry())
    return registry


def scrape_allowed(authorization: str, token: str) -> bool:
    """With a METRICS_TOKEN configured, only `Authorization: Bearer <it>` may scrape (compared in constant time)."""
    if not token:
        return True
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not scrape_allowed(request.headers.get("Authorization", ""), settings.METRICS_TOKEN):
        response = HttpResponse("Metrics need Authorization: Bearer <METRICS_TOKEN>.\n", status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    registry = _process_registry()
    for factory in _state_collectors.values():
        registry.register(factory())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


urlpatterns = [path("metrics", metrics_view, name="metrics")]


def serve(port: int) -> None:
    """Serve the multi-process metrics of a Celery worker pod (run as a sidecar sharing the directory)."""
    from prometheus_client import start_http_server

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise SystemExit("PROMETHEUS_MULTIPROC_DIR must be set to the directory the worker processes write to.")
    registry = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, registry=registry)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve a Celery worker pod's Prometheus metrics.")
    parser.add_argument("--port", type=int, default=9808)
    serve(parser.parse_args().port)
