"""End to end: kubesim clusters over HTTP, a real Celery worker process, Redis and Postgres."""

from __future__ import annotations

import copy

import pytest
import yaml
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from clusters import actions, enqueue
from clusters.models import Cluster
from clusters.reconcile import managed_names
from clusters.tasks import sweep_gateways
from kubesim.resources import GATEWAYS
from services.models import GatewayService, GatewayServiceStatus
from tests.certs import make_cert
from tests.clusters.builders import add_revision, make_service, sim_cluster, tls_material, tls_service, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GATEWAY = ("istio-system", "ingress-gateway")


def push(service: GatewayService) -> None:
    """What the services actions do after a write: reconcile every cluster the service may touch, after commit."""
    with transaction.atomic():
        enqueue.request_reconcile(
            cluster_ids=Cluster.objects.values_list("id", flat=True), traffic_type=service.traffic_type
        )


def state_of(service: GatewayService, cluster: str) -> str | None:
    status = GatewayServiceStatus.objects.filter(service=service, cluster__name=cluster).first()
    return status.state if status else None


def wait_state(service: GatewayService, cluster: str, state: str) -> GatewayServiceStatus:
    wait_for(lambda: state_of(service, cluster) == state, what=f"{service} to be {state} on {cluster}")
    return GatewayServiceStatus.objects.get(service=service, cluster__name=cluster)


def server_names(sim) -> list[str]:
    return [s["port"]["name"] for s in sim.store.gateway(*GATEWAY)["spec"]["servers"]]


def test_apply_by_name_and_by_label_selector_to_many_clusters(worker, kubesim_factory):
    prod_a, prod_b, dev = (kubesim_factory(demo=True) for _ in range(3))
    sim_cluster(prod_a, "prod-a", labels={"env": "prod"})
    sim_cluster(prod_b, "prod-b", labels={"env": "prod"})
    # The third cluster is registered from a kubeconfig over TLS with the sim's own CA.
    tls_dev = kubesim_factory(demo=True, tls=True)
    actions.cluster_create(name="dev", kubeconfig=yaml.safe_dump(tls_dev.kubeconfig()), labels={"env": "dev"})
    by_selector = make_service("orders", cluster_selector={"env": "prod"})
    by_name = make_service("search", clusters=["dev"])

    push(by_selector)

    for cluster in ("prod-a", "prod-b"):
        assert wait_state(by_selector, cluster, "applied").revision == 1
    wait_state(by_name, "dev", "applied")
    assert server_names(prod_a) == server_names(prod_b) == ["http", "http-orders-payments"]
    assert server_names(tls_dev) == ["http", "http-search-payments"]
    assert server_names(dev) == ["http"]
    assert state_of(by_name, "prod-a") is None and state_of(by_selector, "dev") is None


def test_unmanaged_servers_are_preserved_and_clashes_with_them_rejected(worker, kubesim):
    platform_tls = {
        "port": {"number": 443, "name": "https-platform", "protocol": "HTTPS"},
        "hosts": ["*/shop.payments.example.com"],
        "tls": {"mode": "SIMPLE", "credentialName": "platform-cert", "minProtocolVersion": "TLSV1_2"},
        "name": "platform-owned",
    }
    kubesim.store.modify(GATEWAYS, *GATEWAY, lambda gw: gw["spec"]["servers"].append(copy.deepcopy(platform_tls)))
    before = copy.deepcopy(kubesim.store.gateway(*GATEWAY)["spec"]["servers"])
    sim_cluster(kubesim, "c1")
    clashing = tls_service("shop", clusters=["c1"])
    fine = make_service("checkout", clusters=["c1"])

    push(fine)

    wait_state(fine, "c1", "applied")
    status = wait_state(clashing, "c1", "rejected")
    assert "shop.payments.example.com" in status.message and "https-platform" in status.message
    servers = kubesim.store.gateway(*GATEWAY)["spec"]["servers"]
    assert servers[: len(before)] == before
    assert [s["port"]["name"] for s in servers[len(before) :]] == ["http-checkout-payments"]
    assert kubesim.store.secret("istio-system", "shop-payments-secret") is None


def test_secrets_go_to_the_namespace_their_mode_needs(worker, kubesim):
    kubesim.store.add_namespace("istio-ingress")
    sim_cluster(kubesim, "c1", ingress_secret_namespace="istio-ingress")
    simple = tls_service("shop", clusters=["c1"])
    passthrough = tls_service("vault", mode="PASSTHROUGH", port=8443, protocol="TLS", clusters=["c1"])
    orphan = tls_service("ghost", mode="PASSTHROUGH", port=9443, protocol="TLS", namespace="nowhere", clusters=["c1"])

    push(simple)

    wait_state(simple, "c1", "applied")
    wait_state(passthrough, "c1", "applied")
    assert "namespace 'nowhere' does not exist" in wait_state(orphan, "c1", "rejected").message
    assert kubesim.store.secret("istio-ingress", "shop-payments-secret")["type"] == "kubernetes.io/tls"
    assert kubesim.store.secret("payments", "vault-payments-secret") is not None
    assert kubesim.store.secret("istio-system", "shop-payments-secret") is None


def test_a_rotated_certificate_updates_the_secret_once(worker, kubesim):
    sim_cluster(kubesim, "c1")
    service = tls_service("shop", clusters=["c1"])
    push(service)
    wait_state(service, "c1", "applied")
    old = kubesim.store.secret("istio-system", "shop-payments-secret")["data"]["tls.crt"]

    revision = service.current_revision
    add_revision(service, revision.spec, material=tls_material("shop.payments.example.com"))
    push(service)

    wait_for(lambda: state_of(service, "c1") == "applied" and _status(service).revision == 2, what="revision 2")
    new = kubesim.store.secret("istio-system", "shop-payments-secret")["data"]["tls.crt"]
    assert new != old
    assert (
        AuditEvent.objects.filter(action="secret.updated", object_id="istio-system/shop-payments-secret").count() == 1
    )
    assert AuditEvent.objects.filter(action="secret.created").count() == 1


def test_tls_secret_ref_must_exist_and_be_usable(worker, kubesim):
    sim_cluster(kubesim, "c1")
    kubesim.store.add_secret("istio-system", "broken", {"tls.crt": "nope", "tls.key": "nope"}, type="kubernetes.io/tls")
    ref = {"port": 443, "protocol": "HTTPS", "mode": "SIMPLE", "clusters": ["c1"]}
    missing = make_service("missing", tls_options={"tls_secret_ref": {"secret_name": "absent"}}, **ref)
    broken = make_service("broken", tls_options={"tls_secret_ref": {"secret_name": "broken"}}, **ref)
    push(missing)

    assert "istio-system/absent does not exist" in wait_state(missing, "c1", "rejected").message
    assert "tls.crt" in wait_state(broken, "c1", "rejected").message
    assert server_names(kubesim) == ["http"]

    leaf = make_cert(dns_names=["missing.payments.example.com"])
    kubesim.store.add_secret(
        "istio-system", "absent", {"tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem}, type="kubernetes.io/tls"
    )
    push(missing)
    wait_state(missing, "c1", "applied")
    assert "https-missing-payments" in server_names(kubesim)


def test_delete_removes_block_and_secret_then_the_service(worker, kubesim):
    sim_cluster(kubesim, "c1")
    service = tls_service("shop", clusters=["c1"])
    push(service)
    wait_state(service, "c1", "applied")

    with transaction.atomic():
        GatewayService.objects.filter(pk=service.pk).update(deleting_at=timezone.now())
        GatewayServiceStatus.objects.filter(service=service).update(state="removing")
        enqueue.request_reconcile(cluster_ids=[Cluster.objects.get(name="c1").pk], traffic_type="ingress")

    wait_for(lambda: not GatewayService.objects.filter(pk=service.pk).exists(), what="the service row to go")
    assert server_names(kubesim) == ["http"]
    assert managed_names(kubesim.store.gateway(*GATEWAY)) == []
    assert kubesim.store.secret("istio-system", "shop-payments-secret") is None
    assert AuditEvent.objects.filter(action="secret.deleted").count() == 1
    assert AuditEvent.objects.filter(action="gateway_service.removed", object_id=str(service.pk)).count() == 1


def test_drift_is_healed_by_the_sweep(worker, kubesim):
    sim_cluster(kubesim, "c1")
    service = make_service("checkout", clusters=["c1"])
    push(service)
    wait_state(service, "c1", "applied")
    desired = copy.deepcopy(kubesim.store.gateway(*GATEWAY)["spec"]["servers"])

    def tamper(gateway):
        gateway["spec"]["servers"][-1]["hosts"] = ["payments/evil.example.com"]

    kubesim.store.modify(GATEWAYS, *GATEWAY, tamper)
    sweep_gateways.delay()

    wait_for(lambda: AuditEvent.objects.filter(action="drift.healed", cluster="c1").exists(), what="drift.healed")
    assert kubesim.store.gateway(*GATEWAY)["spec"]["servers"] == desired


def test_a_concurrent_writer_forces_conflicts_and_both_writes_survive(worker, kubesim):
    sim_cluster(kubesim, "c1")
    kubesim.faults.latency = 0.05
    writer = kubesim.start_writer(*GATEWAY, interval_ms=10, mode="server")
    service = make_service("checkout", clusters=["c1"])
    push(service)

    wait_for(lambda: any(r.status == 409 for r in kubesim.requests.all()), what="a 409 Conflict")
    writer.stop()
    kubesim.faults.clear()
    push(service)

    wait_state(service, "c1", "applied")
    names = server_names(kubesim)
    assert "http-checkout-payments" in names and "kubesim-writer" in names


def test_a_cluster_down_then_up_converges(worker, kubesim):
    sim_cluster(kubesim, "c1")
    kubesim.faults.down = True
    service = make_service("checkout", clusters=["c1"])
    push(service)

    status = wait_state(service, "c1", "failed")
    assert "cannot reach the API server" in status.message
    assert AuditEvent.objects.filter(action="apply.failed", cluster="c1").exists()

    kubesim.faults.clear()
    sweep_gateways.delay()
    wait_state(service, "c1", "applied")
    assert "http-checkout-payments" in server_names(kubesim)


def _status(service: GatewayService) -> GatewayServiceStatus:
    return GatewayServiceStatus.objects.get(service=service)
