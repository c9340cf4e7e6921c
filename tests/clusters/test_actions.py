"""Coalescing of reconcile requests (Redis markers), without a worker."""

from __future__ import annotations

import pytest

from clusters import enqueue
from clusters.tasks import reconcile_gateway
from gatewayportal.redis import key_prefix, redis_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    calls: list[tuple[tuple, float]] = []
    monkeypatch.setattr(reconcile_gateway, "apply_async", lambda args, countdown: calls.append((args, countdown)))
    cluster_id = 10_000_000 + id(calls) % 1_000_000
    yield cluster_id, calls
    redis = redis_client()
    for kind in ("pending", "rate", "burst"):
        redis.delete(f"{key_prefix()}:{kind}:{cluster_id}:ingress")


def test_requests_while_one_is_pending_are_coalesced(queued, django_capture_on_commit_callbacks):
    cluster_id, calls = queued
    with django_capture_on_commit_callbacks(execute=True):
        enqueue.request_reconcile(cluster_ids=[cluster_id, cluster_id], traffic_type="ingress")
    with django_capture_on_commit_callbacks(execute=True):
        enqueue.request_reconcile(cluster_ids=[cluster_id], traffic_type="ingress")
    assert calls == [((cluster_id, "ingress"), enqueue.COALESCE_SECONDS)]

    enqueue.clear_pending(cluster_id, "ingress")  # what the task does when it starts
    with django_capture_on_commit_callbacks(execute=True):
        enqueue.request_reconcile(cluster_ids=[cluster_id], traffic_type="ingress")
    assert len(calls) == 2


def test_a_burst_of_requests_waits_longer(queued, django_capture_on_commit_callbacks):
    cluster_id, calls = queued
    for _ in range(enqueue.BURST_REQUESTS + 1):
        enqueue.clear_pending(cluster_id, "ingress")
        with django_capture_on_commit_callbacks(execute=True):
            enqueue.request_reconcile(cluster_ids=[cluster_id], traffic_type="ingress")
    assert calls[0][1] == enqueue.COALESCE_SECONDS
    assert calls[-1][1] == enqueue.BURST_COALESCE_SECONDS


def test_nothing_is_enqueued_before_commit(queued):
    cluster_id, calls = queued
    enqueue.request_reconcile(cluster_ids=[cluster_id], traffic_type="ingress")
    assert calls == []
