"""Coalescing of reconcile requests (clusters.coalescer's Redis state), without a worker and without timing.

Times are passed in explicitly, or every interval is set to 0, so each verdict is deterministic.
"""

from __future__ import annotations

import pytest

from clusters import coalescer, enqueue, tasks
from clusters.tasks import reconcile_gateway
from gatewayportal.redis import redis_client

pytestmark = pytest.mark.django_db

T = 1_000_000.0  # a fixed "now" for the scripts


@pytest.fixture
def queued(settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    calls: list[tuple[tuple, float]] = []
    monkeypatch.setattr(
        reconcile_gateway, "apply_async", lambda args, countdown: calls.append((tuple(args), countdown))
    )
    cluster_id = 10_000_000 + id(calls) % 1_000_000
    yield cluster_id, calls
    redis_client().delete(*coalescer.keys(cluster_id, "ingress"))


@pytest.fixture
def no_waiting(settings):
    settings.RECONCILE_QUIET_SECONDS = 0
    settings.RECONCILE_MAX_DELAY_SECONDS = 0
    settings.RECONCILE_MIN_INTERVAL_SECONDS = 0


def run_task(cluster_id, monkeypatch, during=lambda: None):
    """Run the task body in process; `during` stands for changes committed while the gateway converges."""
    runs: list[int] = []

    def fake_converge(**kwargs):
        runs.append(kwargs["cluster_id"])
        during()

    monkeypatch.setattr(tasks.converge, "gateway_converge", fake_converge)
    reconcile_gateway(cluster_id, "ingress")
    return runs


def test_requests_while_one_is_queued_are_coalesced(queued, django_capture_on_commit_callbacks):
    cluster_id, calls = queued
    with django_capture_on_commit_callbacks(execute=True):
        enqueue.request_reconcile(cluster_ids=[cluster_id, cluster_id], traffic_type="ingress")
    with django_capture_on_commit_callbacks(execute=True):
        enqueue.request_reconcile(cluster_ids=[cluster_id], traffic_type="ingress")
    assert calls == [((cluster_id, "ingress"), coalescer.timing().quiet)]


def test_a_change_during_a_run_causes_exactly_one_follow_up(queued, no_waiting, monkeypatch):
    cluster_id, calls = queued
    enqueue._enqueue([cluster_id], "ingress")
    assert len(calls) == 1

    def three_changes():
        for _ in range(3):
            enqueue._enqueue([cluster_id], "ingress")

    assert run_task(cluster_id, monkeypatch, during=three_changes) == [cluster_id]
    # The changes queued nothing while the run was in progress; its end queued exactly one more.
    assert calls[1:] == [((cluster_id, "ingress", False), 0.0)]

    assert run_task(cluster_id, monkeypatch) == [cluster_id]
    assert len(calls) == 2  # nothing changed during the follow-up: no further run


def test_a_run_without_changes_meanwhile_queues_nothing_and_frees_the_gateway(queued, no_waiting, monkeypatch):
    cluster_id, calls = queued
    enqueue._enqueue([cluster_id], "ingress")
    run_task(cluster_id, monkeypatch)
    assert len(calls) == 1
    enqueue._enqueue([cluster_id], "ingress")  # the next change queues a new run at once
    assert len(calls) == 2


def test_many_changes_within_the_quiet_period_make_one_run(queued):
    cluster_id, _ = queued
    countdowns = [coalescer.note_change(cluster_id, "ingress", now=T + i * 0.01) for i in range(20)]
    assert countdowns[0] == coalescer.timing().quiet
    assert countdowns[1:] == [None] * 19
    last = T + 0.19
    verdict, wait = coalescer.begin(cluster_id, "ingress", token="a", now=T + 0.1)
    assert verdict == coalescer.WAIT and wait == pytest.approx(last + coalescer.timing().quiet - (T + 0.1))
    assert coalescer.begin(cluster_id, "ingress", token="a", now=last + coalescer.timing().quiet)[0] == coalescer.RUN
    assert coalescer.finish(cluster_id, "ingress", token="a", now=last + 0.5) is None


def test_a_steady_stream_runs_no_later_than_the_max_delay_after_its_first_change(queued):
    cluster_id, _ = queued
    max_delay = coalescer.timing().max_delay
    for i in range(round((max_delay + 2) / 0.05)):
        coalescer.note_change(cluster_id, "ingress", now=T + i * 0.05)  # never quiet for 0.1 s, past the max delay
    assert coalescer.begin(cluster_id, "ingress", token="a", now=T + 1.0)[0] == coalescer.WAIT
    assert coalescer.begin(cluster_id, "ingress", token="a", now=T + max_delay - 0.5)[0] == coalescer.WAIT
    assert coalescer.begin(cluster_id, "ingress", token="a", now=T + max_delay)[0] == coalescer.RUN


def test_runs_start_at_least_the_minimum_interval_apart(queued):
    cluster_id, _ = queued
    coalescer.note_change(cluster_id, "ingress", now=T)
    assert coalescer.begin(cluster_id, "ingress", token="a", now=T + 0.1)[0] == coalescer.RUN
    assert coalescer.finish(cluster_id, "ingress", token="a", now=T + 0.3) is None
    countdown = coalescer.note_change(cluster_id, "ingress", now=T + 0.4)
    assert countdown == pytest.approx(T + 0.1 + coalescer.timing().min_interval - (T + 0.4))
    verdict, wait = coalescer.begin(cluster_id, "ingress", token="b", now=T + 0.6)
    assert verdict == coalescer.WAIT and wait == pytest.approx(T + 0.1 + coalescer.timing().min_interval - (T + 0.6))


def test_a_sweep_run_during_a_run_defers_and_the_follow_up_verifies(queued):
    cluster_id, _ = queued
    coalescer.note_change(cluster_id, "ingress", now=T)
    assert coalescer.begin(cluster_id, "ingress", token="a", now=T + 0.2)[0] == coalescer.RUN
    verdict, _ = coalescer.begin(cluster_id, "ingress", token="sweep", force=True, verify=True, now=T + 0.3)
    assert verdict == coalescer.DEFER
    countdown, verify = coalescer.finish(cluster_id, "ingress", token="a", now=T + 0.5)
    assert verify is True
    assert countdown == pytest.approx(T + 0.2 + coalescer.timing().min_interval - (T + 0.5))


def test_a_crashed_run_frees_the_gateway_when_its_key_expires(queued):
    cluster_id, _ = queued
    coalescer.note_change(cluster_id, "ingress", now=T)
    coalescer.begin(cluster_id, "ingress", token="a", now=T + 0.2)
    redis = redis_client()
    for key in coalescer.keys(cluster_id, "ingress"):
        assert redis.ttl(key) in (-2, *range(1, coalescer.RUNNING_TTL_SECONDS + 1))  # absent or expiring
    running = coalescer.keys(cluster_id, "ingress")[2]
    assert 0 < redis.ttl(running) <= coalescer.RUNNING_TTL_SECONDS
    redis.delete(running)  # what the TTL does for a worker killed mid-run
    assert coalescer.note_change(cluster_id, "ingress", now=T + 0.3) is not None


def test_without_redis_or_with_eager_tasks_every_request_runs_at_once(settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    calls = []
    monkeypatch.setattr(reconcile_gateway, "apply_async", lambda args, countdown: calls.append(args))
    enqueue._enqueue([5, 5], "ingress")
    assert calls == [(5, "ingress"), (5, "ingress")]
    settings.CELERY_TASK_ALWAYS_EAGER, settings.REDIS_URL = False, ""
    enqueue._enqueue([5], "ingress")
    assert len(calls) == 3


def test_nothing_is_enqueued_before_commit(queued):
    cluster_id, calls = queued
    enqueue.request_reconcile(cluster_ids=[cluster_id], traffic_type="ingress")
    assert calls == []


def test_a_queued_run_that_never_started_does_not_hold_back_later_changes(queued):
    cluster_id, _ = queued
    assert coalescer.note_change(cluster_id, "ingress", now=T) is not None  # its task is then lost (queue purged)
    assert coalescer.note_change(cluster_id, "ingress", now=T + 1) is None
    assert coalescer.note_change(cluster_id, "ingress", now=T + coalescer.STALE_QUEUED_SECONDS + 1) is not None
