"""A cluster answering 500/503 or timing out, then healthy: bounded retries with backoff, then convergence."""

from __future__ import annotations

import time

import pytest

from audit.models import AuditEvent
from clusters.tasks import MAX_RETRIES, sweep_gateways
from tests.clusters.builders import make_service, sim_cluster, wait_for
from tests.faults.helpers import SOAK, push, report, scaled, server_names, state_of, wait_applied

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The session worker's per-call timeout is 3 s (tests/e2e.py); a slower answer is a timeout.
SLOW_SECONDS = 4.0


def inject(sim, fault: str) -> None:
    if fault == "timeout":
        sim.faults.latency = SLOW_SECONDS
    else:
        sim.faults.fail_next(count=1_000_000, status=int(fault))


@pytest.mark.parametrize("fault", ["500", "503", "timeout"])
def test_a_failing_cluster_is_retried_a_bounded_number_of_times_then_converges(worker, kubesim, fault):
    sim_cluster(kubesim, "c1")
    service = make_service("checkout", clusters=["c1"])
    inject(kubesim, fault)
    started = time.monotonic()
    push(service)

    wait_for(lambda: state_of(service, "c1") == "failed", what="the failure to show in the status")
    wait_for(lambda: len(kubesim.requests.all()) >= 2, what="a retry during the outage")
    outage = scaled(SLOW_SECONDS * 2 if fault == "timeout" else 3, 60)
    time.sleep(max(0.0, outage - (time.monotonic() - started)))  # the outage lasts this long, then heals
    kubesim.faults.clear()
    # Each attempt stops at its first failing call (discovery or the Gateway read).
    attempts_in_outage = len(kubesim.requests.all())
    if SOAK:
        sweep_gateways.delay()  # a 60 s outage outlasts the retries; the beat's sweep takes over (every 300 s)

    wait_applied([service], "c1")
    assert "http-checkout-payments" in server_names(kubesim)
    # Statuses and audit tell the story: failed, then applied; an apply.failed per distinct error, not per attempt.
    story = list(AuditEvent.objects.filter(cluster="c1").order_by("id").values_list("action", "data"))
    failures = [data["message"] for action, data in story if action == "apply.failed"]
    assert failures and len(failures) == len(set(failures))
    assert [action for action, _ in story][len(failures) :] == ["gateway.applied"]
    # No retry storm: one reconcile task makes at most 1 + MAX_RETRIES attempts (one Gateway read each).
    assert attempts_in_outage <= 1 + MAX_RETRIES + (1 if SOAK else 0)
    report(
        f"cluster {fault} for {outage:.0f} s: {attempts_in_outage} attempts during the outage, "
        f"applied {time.monotonic() - started:.1f} s after the first request"
    )
