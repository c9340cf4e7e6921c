"""A worker SIGKILLed in the middle of a reconcile: the task comes back (acks_late) and the gateway converges."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from clusters.reconcile import managed_names
from services.models import GatewayServiceStatus
from tests.clusters.builders import make_service, sim_cluster, tls_service, wait_for
from tests.faults.helpers import GATEWAY, push, server_names, wait_applied

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAST_REDELIVERY = {"DJANGO_SETTINGS_MODULE": "tests.faults.worker_settings"}


def test_a_reconcile_killed_mid_flight_is_redelivered_and_converges(worker_factory, kubesim):
    sim_cluster(kubesim, "c1")
    services = [make_service("checkout", clusters=["c1"]), make_service("search", clusters=["c1"])]
    services.append(tls_service("shop", clusters=["c1"]))
    first = worker_factory(env=FAST_REDELIVERY)
    # Every API call takes a while, so the reconcile is still in flight when the first answer is seen.
    kubesim.faults.latency = 2.0
    push(services[0])

    wait_for(lambda: any(r.method == "GET" and "/gateways/" in r.path for r in kubesim.requests.all()), what="a read")
    first.kill()
    assert kubesim.requests.gateway_writes(*GATEWAY) == 0, "the worker was killed before its Gateway write"
    assert not GatewayServiceStatus.objects.filter(state="applied").exists()

    kubesim.faults.clear()
    worker_factory(env=FAST_REDELIVERY)  # nothing enqueues again: only the redelivered message can converge

    wait_applied(services, "c1")
    names = server_names(kubesim)
    managed = ["http-checkout-payments", "http-search-payments", "https-shop-payments"]
    assert names == ["http", *managed]
    assert sorted(managed_names(kubesim.store.gateway(*GATEWAY))) == managed
    assert kubesim.store.secret("istio-system", "shop-payments-secret")["type"] == "kubernetes.io/tls"
    assert AuditEvent.objects.filter(action="secret.created").count() == 1
