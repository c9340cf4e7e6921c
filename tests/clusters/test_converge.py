"""The converge action against a kubesim cluster over HTTP, in-process (no worker)."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from clusters.converge import gateway_converge
from clusters.reconcile import managed_names
from services.models import GatewayServiceStatus
from tests.clusters.builders import make_service, sim_cluster, tls_service

pytestmark = pytest.mark.django_db


def test_a_service_lands_beside_the_platform_server(kubesim):
    cluster = sim_cluster(kubesim, "c1")
    service = make_service(clusters=["c1"])

    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    live = kubesim.store.gateway("istio-system", "ingress-gateway")
    assert [s["port"]["name"] for s in live["spec"]["servers"]] == ["http", "http-checkout-payments"]
    assert managed_names(live) == ["http-checkout-payments"]
    status = GatewayServiceStatus.objects.get(service=service, cluster=cluster)
    assert (status.state, status.revision) == ("applied", 1)
    assert AuditEvent.objects.filter(action="gateway.applied", cluster="c1").count() == 1


def test_an_idle_reconcile_reads_the_gateway_once_and_writes_nothing(kubesim):
    cluster = sim_cluster(kubesim, "c1", istio_api_version="networking.istio.io/v1")
    tls_service(clusters=["c1"])
    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    kubesim.requests.reset()

    plan = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    assert plan.gateway is None
    assert [(r.method, r.status) for r in kubesim.requests.all()] == [("GET", 200)]


def test_a_tls_secret_is_created_in_istio_system(kubesim):
    cluster = sim_cluster(kubesim, "c1")
    tls_service(clusters=["c1"])
    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    secret = kubesim.store.secret("istio-system", "shop-payments-secret")
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gatewayportal"
    assert AuditEvent.objects.filter(action="secret.created", object_id="istio-system/shop-payments-secret").exists()


def test_an_unreachable_cluster_is_recorded_as_failed(kubesim):
    from clusters.kube import TransientError

    cluster = sim_cluster(kubesim, "c1")
    cluster.api_server = "http://127.0.0.1:9"
    cluster.save()
    service = make_service(clusters=["c1"])
    with pytest.raises(TransientError):
        gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    status = GatewayServiceStatus.objects.get(service=service, cluster=cluster)
    assert status.state == "failed"
    assert "cannot reach" in status.message
    assert AuditEvent.objects.filter(action="apply.failed", cluster="c1").count() == 1
