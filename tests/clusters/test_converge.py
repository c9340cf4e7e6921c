"""The converge action against a kubesim cluster over HTTP, in-process (no worker)."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from clusters.converge import gateway_converge
from clusters.reconcile import managed_names
from kubesim.resources import GATEWAYS
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


def test_a_revision_stored_without_its_rendering_lands_and_then_idles(kubesim):
    from services.models import GatewayServiceRevision

    cluster = sim_cluster(kubesim, "c1", istio_api_version="networking.istio.io/v1")
    service = make_service(clusters=["c1"])
    GatewayServiceRevision.objects.filter(service=service).update(rendered_block=None, block_digest="")

    first = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    live = kubesim.store.gateway("istio-system", "ingress-gateway")
    assert managed_names(live) == ["http-checkout-payments"]
    assert first.outcomes[str(service.pk)].state == "applied"
    kubesim.requests.reset()

    assert gateway_converge(cluster_id=cluster.pk, traffic_type="ingress").gateway is None
    assert [(r.method, r.status) for r in kubesim.requests.all()] == [("GET", 200)]


def test_an_idle_reconcile_reads_the_gateways_metadata_not_its_servers(kubesim, monkeypatch):
    from clusters.kube import KubeClient

    cluster = sim_cluster(kubesim, "c1", istio_api_version="networking.istio.io/v1")
    make_service(clusters=["c1"])
    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    def whole_gateway(*args, **kwargs):
        raise AssertionError("an idle reconcile read the whole Gateway")

    monkeypatch.setattr(KubeClient, "get_gateway", whole_gateway)
    assert gateway_converge(cluster_id=cluster.pk, traffic_type="ingress").gateway is None

    # Once the database wants something else, the whole Gateway is read (and nothing else first).
    make_service("another", clusters=["c1"])
    monkeypatch.undo()
    kubesim.requests.reset()
    assert gateway_converge(cluster_id=cluster.pk, traffic_type="ingress").gateway is not None
    assert [r.method for r in kubesim.requests.all()] == ["GET", "PUT"]


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


def test_a_gated_cluster_runs_only_the_approved_revision(kubesim):
    from tests.clusters.builders import add_revision

    cluster = sim_cluster(kubesim, "gated", requires_approval=True)
    fresh = make_service("fresh", clusters=["gated"], approval="pending")
    running = make_service("running", clusters=["gated"])
    add_revision(running, {**running.current_revision.spec, "hosts": ["new.payments.example.com"]}, approval="pending")

    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    fresh_status = GatewayServiceStatus.objects.get(service=fresh, cluster=cluster)
    assert (fresh_status.state, fresh_status.revision) == ("awaiting_approval", None)
    running_status = GatewayServiceStatus.objects.get(service=running, cluster=cluster)
    assert (running_status.state, running_status.revision) == ("awaiting_approval", 1)
    assert "revision 2 awaits approval" in running_status.message
    live = kubesim.store.gateway("istio-system", "ingress-gateway")
    assert live["spec"]["servers"][-1]["hosts"] == ["payments/running.payments.example.com"]


def test_live_diff_reports_additions_and_clashes_without_writing(kubesim):
    from clusters.selectors import live_diff

    cluster = sim_cluster(kubesim, "c1")
    tcp_on_80 = {"port": {"number": 80, "name": "tcp-x-payments", "protocol": "TCP"}, "hosts": ["*"]}
    http = {"port": {"number": 80, "name": "http-x-payments", "protocol": "HTTP"}, "hosts": ["payments/x.example.com"]}

    assert live_diff(cluster=cluster, traffic_type="ingress", server=http, service_id=None)["added"] == [http]
    clash = live_diff(cluster=cluster, traffic_type="ingress", server=tcp_on_80, service_id=None)
    assert clash["added"] == [] and "cannot share port 80" in clash["conflicts"][0]
    assert kubesim.requests.writes() == []

    cluster.api_server = "http://127.0.0.1:9"
    cluster.save()
    down = live_diff(cluster=cluster, traffic_type="ingress", server=http, service_id=None)
    assert down["reachable"] is False and "cannot reach" in down["message"]


def test_the_task_retries_transient_errors_a_bounded_number_of_times(kubesim, monkeypatch):
    from clusters import tasks

    cluster = sim_cluster(kubesim, "c1")
    make_service(clusters=["c1"])
    kubesim.faults.down = True
    attempts = []
    real = tasks.converge.gateway_converge
    monkeypatch.setattr(tasks.converge, "gateway_converge", lambda **kw: attempts.append(1) or real(**kw))

    result = tasks.reconcile_gateway.apply((cluster.pk, "ingress"))

    assert len(attempts) == tasks.MAX_RETRIES + 1
    assert result.successful()
    assert AuditEvent.objects.filter(action="apply.failed", cluster="c1").count() == 1


def _queries_per_reconcile(kubesim, count: int, name: str, *, tls: bool = False) -> tuple[int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cluster = sim_cluster(kubesim, name, istio_api_version="networking.istio.io/v1")
    for index in range(count):
        if tls:
            tls_service(f"{name}-s{index}", clusters=[name])
        else:
            make_service(f"{name}-s{index}", clusters=[name])
    counts = []
    for _ in ("first", "idle"):
        with CaptureQueriesContext(connection) as queries:
            plan = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
        counts.append(len(queries))
        assert all(outcome.state == "applied" for outcome in plan.outcomes.values())
    assert GatewayServiceStatus.objects.filter(cluster=cluster, state="applied").count() == count
    return counts[0], counts[1]


def test_queries_per_reconcile_are_few_and_constant_in_the_number_of_services(kubesim_factory):
    small = _queries_per_reconcile(kubesim_factory(demo=True), 3, "small")
    large = _queries_per_reconcile(kubesim_factory(demo=True), 50, "large")

    assert small == large
    first, idle = small
    # Idle: lock, the cluster with its gateway's state (one LEFT JOIN), the desired revisions (no spec or stored
    # block), last_reconciled_at, unlock.
    assert idle <= 5
    # First (the gateway's first reconcile, every block written): the idle reads (the desired revisions with their
    # specs and stored blocks: a gateway never converged cannot be idle), then one transaction (SAVEPOINT here,
    # BEGIN/COMMIT in a worker) reading and inserting the statuses, inserting the audit event and the gateway's
    # state.
    assert first <= 10


def test_queries_of_a_change_to_a_converged_gateway_are_constant_in_the_number_of_services(kubesim_factory):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for count, name in ((3, "small"), (50, "large")):
        cluster = sim_cluster(kubesim_factory(demo=True), name, istio_api_version="networking.istio.io/v1")
        for index in range(count):
            make_service(f"{name}-s{index}", clusters=[name])
        gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
        make_service(f"{name}-new", clusters=[name])
        with CaptureQueriesContext(connection) as queries:
            plan = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
        assert plan.gateway is not None and len(plan.added) == 1
        counts.append(len(queries))

    assert counts[0] == counts[1]
    # As a first reconcile, plus the specs and stored blocks read by revision id: the desired revisions were read
    # without them, as the gateway could have been idle.
    assert counts[0] <= 11


def test_queries_of_a_reconcile_that_writes_secrets_are_constant_in_the_number_of_services(kubesim_factory):
    small = _queries_per_reconcile(kubesim_factory(demo=True), 3, "small", tls=True)
    large = _queries_per_reconcile(kubesim_factory(demo=True), 30, "large", tls=True)

    assert small == large
    first, idle = small
    assert idle <= 5
    # As above, plus the keys of the Secrets to write (one read) and the Secrets recorded before the Gateway
    # is written (one write, so none is ever orphaned); their audit events join the gateway's in one INSERT.
    assert first <= 12


def test_an_idle_reconcile_compares_digests_and_reads_no_secret_unless_verifying(kubesim):
    cluster = sim_cluster(kubesim, "c1", istio_api_version="networking.istio.io/v1")
    tls_service(clusters=["c1"])
    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    kubesim.requests.reset()

    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    assert [r.method for r in kubesim.requests.all()] == ["GET"]

    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress", verify_all=True)
    assert kubesim.requests.count("GET", "/api/v1/namespaces/istio-system/secrets/") == 1


def test_a_platform_change_to_the_gateway_is_not_idle(kubesim):
    cluster = sim_cluster(kubesim, "c1", istio_api_version="networking.istio.io/v1")
    make_service(clusters=["c1"])
    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    def tamper(gateway):  # someone edits the portal's block by hand
        gateway["spec"]["servers"][-1]["hosts"] = ["payments/evil.example.com"]

    kubesim.store.modify(GATEWAYS, "istio-system", "ingress-gateway", tamper)

    plan = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    assert plan.drift
    healed = kubesim.store.gateway("istio-system", "ingress-gateway")
    assert healed["spec"]["servers"][-1]["hosts"] == ["payments/checkout.payments.example.com"]


def test_a_gateway_reads_only_the_services_that_may_land_on_it(kubesim):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from clusters.desired import collect_desired
    from tests.clusters.builders import add_revision

    here = sim_cluster(kubesim, "here", labels={"env": "prod", "region": "eu"}, requires_approval=True)
    sim_cluster(kubesim, "there", labels={"env": "dev"})
    named = make_service("named", clusters=["here", "there"])
    selected = make_service("selected", cluster_selector={"env": "prod"})
    make_service("elsewhere", clusters=["there"])
    make_service("unmatched", cluster_selector={"env": "prod", "region": "us"})
    # Approved here, its pending revision moves it away: it still runs here until that is approved.
    moving = make_service("moving", clusters=["here"])
    add_revision(moving, {**moving.current_revision.spec, "clusters": ["there"]}, approval="pending")

    with CaptureQueriesContext(connection) as queries:
        desired = collect_desired(here, "ingress")

    assert {item.service_id for item in desired.items} == {str(named.pk), str(selected.pk), str(moving.pk)}
    if connection.vendor == "postgresql":  # the database leaves out the rest: they are not even read
        read = [q["sql"] for q in queries if "services_gatewayservice" in q["sql"]]
        assert len(read) == 1
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM ({read[0]}) AS desired")
            assert cursor.fetchone()[0] == 3


SQLITE_CONVERGE = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from clusters.converge import gateway_converge
from kubesim.server import KubeSim
from services.models import GatewayServiceStatus
from tests.clusters.builders import add_revision, make_service, sim_cluster, tls_service
sim = KubeSim(token="t")
sim.seed_demo(("payments",))
sim.start()
try:
    cluster = sim_cluster(sim, "c1", labels={"env": "prod"})
    plain = make_service("plain", clusters=["c1"])
    tls_service("shop", cluster_selector={"env": "prod"})
    make_service("elsewhere", clusters=["c2"])
    first = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    idle = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    add_revision(plain, {**plain.current_revision.spec, "hosts": ["other.payments.example.com"]})
    changed = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    rows = GatewayServiceStatus.objects.order_by("service__name").values_list("service__name", "state", "revision")
    print(first.gateway is not None, idle.gateway is None, changed.gateway is not None, list(rows))
finally:
    sim.stop()
"""


def test_a_gateway_converges_on_sqlite_as_the_embedded_demo_runs_it(tmp_path):
    """The desired state's text columns, the statuses' and audit events' writes have a path for SQLite too."""
    from tests.sqlite import run_on_sqlite

    output = run_on_sqlite(SQLITE_CONVERGE, tmp_path)
    assert output.strip().splitlines()[-1] == "True True True [('plain', 'applied', 2), ('shop', 'applied', 1)]"


@pytest.mark.parametrize("gated", [False, True])
def test_what_a_reconcile_read_is_freed_when_it_returns_without_the_cyclic_collector(kubesim, gated):
    """A reconcile pauses the cyclic collector. Had anything it called kept an exception with its traceback, the
    frames on it would keep every block, spec and plan of the reconcile alive until the next collection, which then
    walks all of them (tens of milliseconds at 5,000 blocks); with JSON paths given as `spec__key` lookups, Django's
    path resolution did exactly that."""
    import gc

    from clusters.desired import Desired
    from clusters.reconcile import DesiredService

    cluster = sim_cluster(kubesim, "c1", requires_approval=gated)
    for index in range(3):
        make_service(f"s{index}", clusters=["c1"])

    kinds = (Desired, DesiredService)

    def alive() -> list[object]:
        # Only objects this test made: an earlier test's failure report may still hold some of its own. By type, not
        # isinstance: isinstance asks a weak proxy among the objects for its referent, which may be gone.
        return [o for o in gc.get_objects() if type(o) in kinds and id(o) not in before]

    def reconcile() -> tuple[object, list[object]]:
        gc.collect()
        assert alive() == []
        gc.disable()
        try:
            plan = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
            return plan, alive()
        finally:
            gc.enable()

    gc.collect()
    before = {id(o) for o in gc.get_objects() if type(o) in kinds}
    first, left = reconcile()
    assert sum(o.state == "applied" for o in first.outcomes.values()) == 3
    assert left == []
    tls_service("s-tls", clusters=["c1"])  # a change: the specs are read by revision id, a Secret is written
    change, left = reconcile()
    assert change.gateway is not None and len(change.added) == 1
    assert left == []
    idle, left = reconcile()
    assert idle.gateway is None
    assert left == []


def test_stored_texts_decode_in_one_call_and_line_up_with_their_revisions():
    from clusters.desired import decode_texts

    texts = ['{"name": "a", "note": "a \\\\ \\" \\u00e9"}', None, "", "[1, 2]", "null"]
    assert decode_texts(texts) == [{"name": "a", "note": 'a \\ " é'}, None, None, [1, 2], None]
    # A text holding two values would shift every later one onto the wrong revision: refused.
    with pytest.raises(ValueError, match="5 JSON texts decoded as 6 values"):
        decode_texts(['{"a": 1}', "1, 2", None, None, None])
