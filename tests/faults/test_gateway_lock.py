"""Two workers on the same gateway at once: the per-gateway lock runs them one after the other."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from clusters import converge
from clusters.models import Cluster
from tests.clusters.builders import make_service, sim_cluster
from tests.faults.helpers import GATEWAY

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_two_workers_on_one_gateway_never_overlap(kubesim, monkeypatch):
    cluster = sim_cluster(kubesim, "c1")
    make_service("checkout", clusters=["c1"])
    kubesim.faults.latency = 0.2  # each reconcile spends a while between its read and its write
    inside, most_inside, runs = [0], [0], [0]
    count = threading.Lock()
    plan_and_write = converge._plan_and_write

    def recorded(*args, **kwargs):
        with count:
            inside[0] += 1
            runs[0] += 1
            most_inside[0] = max(most_inside[0], inside[0])
        try:
            return plan_and_write(*args, **kwargs)
        finally:
            with count:
                inside[0] -= 1

    monkeypatch.setattr(converge, "_plan_and_write", recorded)
    busy: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def a_worker() -> None:
        try:
            barrier.wait()
            while True:  # what the task does on GatewayBusy: run again shortly
                try:
                    converge.gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
                    return
                except converge.GatewayBusy:
                    busy.append(1)
                    time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own database session (and holds its own lock)

    threads = [threading.Thread(target=a_worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    assert runs[0] == 2 and busy, "both ran, and one had to wait for the other"
    assert most_inside[0] == 1
    # The second found the Gateway already converged: one write in all, no 409.
    assert kubesim.requests.gateway_writes(*GATEWAY) == 1
    assert not any(r.status == 409 for r in kubesim.requests.all())
    assert Cluster.objects.get(pk=cluster.pk).gateway_states.get(traffic_type="ingress").last_result == "ok"
