"""Someone else edits the same Gateway every 50 ms while the portal keeps writing its blocks into it."""

from __future__ import annotations

import time

import pytest

from audit.models import AuditEvent
from kubesim.writer import WRITER_PORT_NAME
from services.models import GatewayServiceStatus
from tests.clusters.builders import make_service, sim_cluster
from tests.faults.helpers import GATEWAY, SOAK, push, report, scaled, wait_applied

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_every_block_lands_and_every_writer_edit_survives(worker, kubesim):
    sim_cluster(kubesim, "c1")
    kubesim.faults.latency = 0.01  # a little time between read and write, so conflicts actually happen
    writer = kubesim.start_writer(*GATEWAY, interval_ms=50, mode="server")
    duration = scaled(4, 30)
    deadline = time.monotonic() + duration
    services = []
    while time.monotonic() < deadline or not services:
        service = make_service(f"svc-{len(services)}", clusters=["c1"])
        services.append(service)
        push(service)
        wait_applied(services, "c1")
    writer.stop()
    kubesim.faults.clear()

    servers = {s["port"]["name"]: s for s in kubesim.store.gateway(*GATEWAY)["spec"]["servers"]}
    assert {f"http-svc-{i}-payments" for i in range(len(services))} <= set(servers)
    # The writer's latest edit is there: no reconcile wrote back a stale copy of its server.
    assert servers[WRITER_PORT_NAME]["hosts"] == [f"w{writer.writes}.writer.kubesim.local"]
    assert not AuditEvent.objects.filter(action="apply.failed").exists()
    assert not GatewayServiceStatus.objects.exclude(state="applied").exists()
    conflicts = sum(1 for r in kubesim.requests.all() if r.status == 409)
    report(
        f"concurrent writer every 50 ms for {duration:.0f} s: {writer.writes} writer edits, {len(services)} blocks "
        f"applied, {conflicts} 409s absorbed, 0 failures{' [soak]' if SOAK else ''}"
    )
