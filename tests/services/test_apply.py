"""Declarative apply and export: idempotent, all or nothing, pruned inside its apply set, dry run writes nothing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml

from audit.models import AuditEvent
from services.models import GatewayService, GatewayServiceRevision
from tests.certs import make_cert
from tests.factories import api_client, http_service, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
URL = "/api/v1/gateway-services/"
SEEDS = Path(__file__).resolve().parent / "seed_examples"


@pytest.fixture
def alice():
    return make_user("alice")


@pytest.fixture
def team(alice):
    return make_team("payments", members=[alice])


@pytest.fixture
def client(alice, team):
    make_cluster("prod-eu-1")
    return api_client(alice)


@pytest.fixture
def reconciles(monkeypatch):
    """Reconciles that would be enqueued once the request commits (on-commit callbacks of rolled-back work vanish)."""
    from django.db import connection

    calls = []
    monkeypatch.setattr("clusters.enqueue._enqueue", lambda ids, traffic_type: calls.append((ids, traffic_type)))

    class Pending:
        def __len__(self):
            for _, callback, _ in connection.run_on_commit:
                callback()
            connection.run_on_commit = []
            return len(calls)

    return Pending()


def portal(name="checkout", **spec):
    payload = http_service(name=name, hosts=[f"{name}.payments.example.com"], **spec)
    payload.pop("name")
    namespace = payload.pop("namespace")
    return {
        "apiVersion": "gatewayportal.io/v1",
        "kind": "GatewayService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": payload,
    }


def apply(client, documents, *, apply_set="web", **flags):
    query = "&".join([f"team=payments&apply_set={apply_set}", *(f"{k}={v}" for k, v in flags.items())])
    text = yaml.safe_dump_all(documents)
    return client.post(f"{URL}apply/?{query}", text, content_type="application/yaml")


def in_own_thread(work) -> threading.Thread:
    """`work`, started in a thread of its own with its own database connection (closed when it ends)."""
    from django.db import connection

    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def counts():
    return (GatewayService.objects.count(), GatewayServiceRevision.objects.count(), AuditEvent.objects.count())


def test_first_apply_creates_and_the_same_file_again_changes_nothing(client, reconciles):
    documents = [portal("checkout"), portal("cart")]
    first = apply(client, documents)
    assert first.status_code == 200, first.json()
    assert [(r["index"], r["name"], r["action"], r["revision"]) for r in first.json()["results"]] == [
        (0, "checkout", "created", 1),
        (1, "cart", "created", 1),
    ]
    assert first.json()["results"][0]["diff"]["port"] == [None, 80]
    before, reconciled = counts(), len(reconciles)
    assert reconciled > 0

    again = apply(client, documents)

    assert again.status_code == 200, again.json()
    assert [(r["action"], r["revision"], r["diff"]) for r in again.json()["results"]] == [
        ("unchanged", 1, {}),
        ("unchanged", 1, {}),
    ]
    assert counts() == before  # no revision, no audit event
    assert len(reconciles) == reconciled  # no reconcile


def test_a_real_change_makes_exactly_one_revision(client):
    apply(client, [portal("checkout"), portal("cart")])
    before = counts()

    response = apply(client, [portal("checkout", https_redirect=True), portal("cart")])

    assert response.status_code == 200, response.json()
    checkout, cart = response.json()["results"]
    assert (checkout["action"], checkout["revision"]) == ("updated", 2)
    assert checkout["diff"] == {"https_redirect": [False, True]}
    assert cart["action"] == "unchanged"
    assert counts() == (before[0], before[1] + 1, before[2] + 1)


def test_one_refused_document_refuses_all_and_names_index_and_field(client):
    apply(client, [portal("checkout")])
    before = counts()

    response = apply(client, [portal("checkout", https_redirect=True), portal("cart", port="eighty")])

    assert response.status_code == 400
    assert list(response.json()["documents"]) == ["1"]
    assert "port" in response.json()["documents"]["1"]
    assert counts() == before
    assert GatewayService.objects.get(name="checkout").current_revision.spec["https_redirect"] is False


def test_a_name_declared_twice_is_refused(client):
    response = apply(client, [portal("checkout"), portal("checkout", https_redirect=True)])

    assert response.status_code == 400
    assert "name" in response.json()["documents"]["1"]
    assert GatewayService.objects.count() == 0


def test_prune_deletes_only_inside_its_apply_set(client):
    apply(client, [portal("checkout"), portal("cart")], apply_set="web")
    apply(client, [portal("batch")], apply_set="jobs")
    client.post(URL, http_service(name="manual", hosts=["manual.payments.example.com"]), format="json")

    response = apply(client, [portal("checkout")], apply_set="web", prune="true")

    assert response.status_code == 200, response.json()
    assert [(r["index"], r["name"], r["action"]) for r in response.json()["results"]] == [
        (0, "checkout", "unchanged"),
        (None, "cart", "deleted"),
    ]
    remaining = set(GatewayService.objects.filter(deleting_at__isnull=True).values_list("name", flat=True))
    assert remaining == {"checkout", "batch", "manual"}


def test_without_prune_nothing_is_deleted(client):
    apply(client, [portal("checkout"), portal("cart")])

    response = apply(client, [portal("checkout")])

    assert [r["action"] for r in response.json()["results"]] == ["unchanged"]
    assert GatewayService.objects.filter(deleting_at__isnull=True).count() == 2


def test_a_service_moves_to_the_apply_set_that_last_applied_it(client):
    apply(client, [portal("checkout")], apply_set="web")

    response = apply(client, [portal("checkout")], apply_set="shop")
    assert response.json()["results"][0]["diff"] == {"apply_set": ["web", "shop"]}
    assert apply(client, [portal("checkout")], apply_set="shop").json()["results"][0]["action"] == "unchanged"

    pruned = apply(client, [portal("other")], apply_set="web", prune="true")
    assert [r["action"] for r in pruned.json()["results"]] == ["created"]
    assert GatewayService.objects.get(name="checkout").deleting_at is None


def test_dry_run_answers_the_same_plan_and_writes_nothing(client, reconciles):
    apply(client, [portal("checkout"), portal("cart")])
    before, reconciled = counts(), len(reconciles)
    documents = [portal("checkout", https_redirect=True), portal("new")]

    dry = apply(client, documents, dry_run="true", prune="true")

    assert dry.status_code == 200, dry.json()
    assert counts() == before
    assert len(reconciles) == reconciled
    real = apply(client, documents, prune="true")
    assert dry.json() == real.json()
    assert len(reconciles) > reconciled
    assert [r["action"] for r in real.json()["results"]] == ["updated", "created", "deleted"]


def test_export_then_apply_is_unchanged_for_every_service(client, team):
    cert = make_cert(common_name="secure.payments.example.com")
    apply(client, [portal("checkout", ticket="OPS-1"), portal("cart", cluster_selector={"env": "prod"}, clusters=[])])
    tls = http_service(
        name="secure",
        hosts=["secure.payments.example.com"],
        port=443,
        protocol="HTTPS",
        mode="SIMPLE",
        min_protocol_version="TLSV1_2",
        tls_options={"tls_secret": {"cert": cert.cert_pem, "key": cert.key_pem}},
    )
    assert client.post(URL, tls, format="json").status_code == 201
    before = counts()

    exported = client.get(f"{URL}export/?team=payments")

    assert exported.status_code == 200
    assert exported["Content-Type"].startswith("application/yaml")
    assert "PRIVATE KEY" not in exported.content.decode()
    listing = yaml.safe_load(exported.content)
    assert (listing["apiVersion"], listing["kind"], len(listing["items"])) == ("v1", "List", 3)
    response = client.post(
        f"{URL}apply/?team=payments&apply_set=web", exported.content.decode(), content_type="application/yaml"
    )
    assert response.status_code == 200, response.json()
    results = {r["name"]: (r["action"], r["diff"]) for r in response.json()["results"]}
    assert results == {
        "cart": ("unchanged", {}),
        "checkout": ("unchanged", {}),
        "secure": ("updated", {"apply_set": [None, "web"]}),  # made by the API: now belongs to the set
    }
    assert counts()[:2] == before[:2]


def test_json_documents_and_the_operator_format_are_accepted(client, team):
    team.allowed_domains, team.allow_wildcards, team.namespaces = ["example.com"], True, ["default"]
    team.granted_secrets = ["example-secret-ref"]  # a tls_secret_ref names only a Secret granted to the team
    team.save()
    text = (SEEDS / "tls_secretref_example.yaml").read_text()  # a GatewayService and a Secret

    response = client.post(
        f"{URL}apply/?team=payments&apply_set=ops&clusters=prod-eu-1", text, content_type="application/yaml"
    )
    assert response.status_code == 200, response.json()
    assert [(r["name"], r["namespace"], r["action"]) for r in response.json()["results"]] == [
        ("tls-secret-ref-example", "default", "created")
    ]
    operator = yaml.safe_load_all(text)
    as_json = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(operator)})
    again = client.post(
        f"{URL}apply/?team=payments&apply_set=ops&clusters=prod-eu-1", as_json, content_type="application/json"
    )
    assert again.status_code == 200, again.json()
    assert [r["action"] for r in again.json()["results"]] == ["unchanged"]


def test_apply_set_is_required_and_checked(client):
    for query in ("team=payments", "team=payments&apply_set=Not_A_Label"):
        response = client.post(f"{URL}apply/?{query}", yaml.safe_dump(portal()), content_type="application/yaml")
        assert response.status_code == 400
        assert "apply_set" in response.json()


def test_a_member_applies_only_for_their_teams(client):
    make_team("other", members=[make_user("bob")])
    before = counts()

    response = client.post(
        f"{URL}apply/?team=other&apply_set=web", yaml.safe_dump(portal()), content_type="application/yaml"
    )

    assert response.status_code == 400
    assert "team" in response.json()
    assert counts() == before
    assert client.get(f"{URL}export/?team=other").status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        "5",
        "[1, 2]",
        '{"apiVersion": "gatewayportal.io/v1", "kind": "GatewayService", "metadata": {"name": ["x"]}, "spec": {}}',
        '{"apiVersion": "gatewayportal.io/v1", "kind": "GatewayService", "metadata": {"name": "x"}, '
        '"spec": {"tls_options": ["a"]}}',
        '{"apiVersion": "gatewayportal.io/v1", "kind": "Gateway", "metadata": {"name": "x"}, "spec": {}}',
    ],
)
def test_malformed_documents_are_a_400(client, body):
    response = client.post(f"{URL}apply/?team=payments&apply_set=web", body, content_type="application/json")

    assert response.status_code == 400
    assert GatewayService.objects.count() == 0


def test_an_empty_export_is_still_a_document(client):
    listing = yaml.safe_load(client.get(f"{URL}export/?team=payments").content)

    assert listing == {"apiVersion": "v1", "kind": "List", "items": []}


@pytest.mark.django_db(transaction=True)
def test_an_unchanged_apply_waits_for_no_other_writer_of_the_port_or_the_gateway(client):
    """A GitOps tool re-applies every service of the team on each sync, nearly all unchanged. Those documents write
    nothing, so they take neither the port lock nor the Gateway's tally: another team's write on the same port and
    Gateway holding both goes on undisturbed, and the apply does not queue behind it. A real change still waits."""

    from django.db import connection, transaction
    from django.db.utils import OperationalError

    from gatewayportal.locks import advisory_xact_lock
    from services.models import GatewayTally

    documents = [portal("checkout"), portal("cart")]
    assert apply(client, documents).status_code == 200
    held, release = threading.Event(), threading.Event()

    def other_writer() -> None:
        with transaction.atomic():
            advisory_xact_lock("gateway-port:ingress:80")
            assert list(GatewayTally.objects.select_for_update())  # the Gateway's tally, locked
            held.set()
            release.wait(30)

    writer = in_own_thread(other_writer)
    try:
        assert held.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # a wait for either lock fails the request instead of hanging
        again = apply(client, documents)
        assert again.status_code == 200, again.content
        assert [r["action"] for r in again.json()["results"]] == ["unchanged", "unchanged"]
        changed = [portal("checkout")]
        changed[0]["spec"]["hosts"].append("new.payments.example.com")
        with pytest.raises(OperationalError, match="lock timeout"):
            from services import applying
            from services.models import Team

            applying.apply_documents(
                documents=changed, team=Team.objects.get(slug="payments"), apply_set="web", clusters=[]
            )
    finally:
        release.set()
        writer.join(30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert apply(client, changed).json()["results"][0]["action"] == "updated"


def test_a_batch_declaring_more_services_than_the_team_may_hold_is_refused_before_any_is_checked(client, team):
    """Its creates past the quota would each be refused under the port's lock, which every other team's write on
    the port waits for: a body of thousands of such documents held it for most of a minute."""
    from services.models import Team

    team.max_services = 2
    team.save()
    documents = [portal("checkout"), portal("cart"), portal("search")]
    refused = apply(client, documents)
    assert refused.status_code == 400
    [message] = refused.json()["documents"]["non_field_errors"]
    assert "declare 3 gateway services" in message and "at most 2" in message and "max_services" in message
    assert counts() == (0, 0, 0)
    imported = client.post(
        f"{URL}import/?team=payments&clusters=prod-eu-1",
        yaml.safe_dump_all([_operator(name) for name in ("checkout", "cart", "search")]),
        content_type="application/yaml",
    )
    assert imported.status_code == 400
    assert "declare 3 gateway services" in imported.json()["documents"]["non_field_errors"][0]
    assert counts() == (0, 0, 0)
    # A team over a quota lowered since may still apply what it holds (no new service), unchanged.
    team.max_services = 3
    team.save()
    assert apply(client, documents).status_code == 200
    Team.objects.filter(pk=team.pk).update(max_services=1)
    again = apply(client, documents)
    assert again.status_code == 200, again.json()
    assert {r["action"] for r in again.json()["results"]} == {"unchanged"}


def _operator(name: str) -> dict:
    return {
        "apiVersion": "gatewayservice.xunholy.github.com/v1alpha1",
        "kind": "GatewayService",
        "metadata": {"name": name, "namespace": "payments"},
        "spec": {"hosts": [f"{name}.payments.example.com"], "port": 80, "protocol": "HTTP"},
    }


@pytest.mark.django_db(transaction=True)
def test_an_apply_and_an_approval_on_its_port_do_not_deadlock(client, monkeypatch):
    """An apply holds what it has locked until it commits; an approval takes the port's lock, then the service's
    row. An apply's unchanged document locks no row, and a change takes the port's lock before the row, so an
    approval of a service the apply named between them never waits for the apply in a circle."""

    from services import actions, applying

    make_cluster("gated", requires_approval=True)
    waiting = portal("waiting", clusters=["gated"])
    moving = portal("moving")
    assert apply(client, [waiting, moving]).status_code == 200
    pending = GatewayServiceRevision.objects.get(service__name="waiting", number=1)
    assert pending.approval == "pending"
    moving["spec"]["hosts"].append("more.payments.example.com")
    first_done, approved = threading.Event(), threading.Event()
    original = applying._read_no_op

    def one_at_a_time(step, **kwargs):
        result = original(step, **kwargs)
        if step.index == 0:
            first_done.set()
            approved.wait(5)  # the approval runs here, between the apply's documents
        return result

    monkeypatch.setattr(applying, "_read_no_op", one_at_a_time)
    outcome: dict[str, object] = {}

    def run_apply() -> None:
        try:
            outcome["apply"] = apply(client, [waiting, moving]).status_code
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome["apply"] = repr(exc)

    thread = in_own_thread(run_apply)
    try:
        assert first_done.wait(10)
        try:
            outcome["approve"] = actions.revision_approve(revision=pending).approval
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome["approve"] = repr(exc)
    finally:
        approved.set()
        thread.join(30)
    assert outcome == {"approve": "approved", "apply": 200}


def test_a_change_takes_its_port_lock_only_after_the_unchanged_documents_are_read(client, monkeypatch):
    """Whatever the order of the file: a port's lock, once taken, is held until the apply commits, so the unchanged
    documents (which take none) are read and told apart before any change takes one."""
    from services import actions, applying

    documents = [portal(name) for name in ("a", "b", "c", "d")]
    assert apply(client, documents).status_code == 200
    documents[0]["spec"]["hosts"].append("more.payments.example.com")  # the first document now changes
    events: list[str] = []
    settle, lock = applying._read_no_op, actions._service_lock
    monkeypatch.setattr(applying, "_read_no_op", lambda step, **kw: events.append("settle") or settle(step, **kw))
    monkeypatch.setattr(actions, "_service_lock", lambda spec: events.append("port lock") or lock(spec))

    again = apply(client, documents)

    assert again.status_code == 200, again.json()
    assert [(r["index"], r["action"]) for r in again.json()["results"]] == [
        (0, "updated"),
        (1, "unchanged"),
        (2, "unchanged"),
        (3, "unchanged"),
    ]
    assert events[:4] == ["settle"] * 4 and "settle" not in events[4:] and "port lock" in events[4:]


def _pair_on_one_host(client) -> tuple[dict, dict]:
    """Two services of the team on one host, which clash once the cluster `a` runs on is relabelled so that `b`'s
    selector lands there too (a clash the checks did not see coming: it came from the cluster's labels)."""
    from clusters.models import Cluster

    a = portal("a")
    a["spec"]["hosts"] = ["a.payments.example.com", "shared.payments.example.com"]
    b = portal("b", clusters=[], cluster_selector={"env": "staging"})
    b["spec"]["hosts"] = ["shared.payments.example.com"]
    assert apply(client, [a, b]).status_code == 200
    Cluster.objects.filter(name="prod-eu-1").update(labels={"env": "staging"})
    return a, b


@pytest.mark.parametrize("order", ["change first", "change last"])
def test_an_apply_that_clears_a_clash_is_accepted_whatever_the_order_of_its_documents(client, order):
    """Every document is checked against what the whole apply leaves: `a` gives up the host it shares with `b`, and
    `b`, unchanged, no longer clashes with anything."""
    a, b = _pair_on_one_host(client)
    a["spec"]["hosts"] = ["a.payments.example.com"]
    documents = [a, b] if order == "change first" else [b, a]
    answer = apply(client, documents)
    assert answer.status_code == 200, answer.json()
    assert {r["name"]: r["action"] for r in answer.json()["results"]} == {"a": "updated", "b": "unchanged"}


@pytest.mark.parametrize("order", ["change first", "change last"])
def test_an_unchanged_document_that_clashes_with_a_change_of_the_same_apply_is_refused(client, order):
    """The other way round: `c` takes a host that `b`, unchanged in the same file, names on the cluster both land
    on. The apply is refused in either order (whichever of the two the refusal names), and nothing is stored."""
    a, b = _pair_on_one_host(client)
    a["spec"]["hosts"] = ["a.payments.example.com"]
    assert apply(client, [a, b]).status_code == 200  # the clash cleared
    c = portal("c")
    c["spec"]["hosts"] = ["c.payments.example.com"]
    assert apply(client, [a, b, c]).status_code == 200
    c["spec"]["hosts"].append("shared.payments.example.com")
    documents = [c, b] if order == "change first" else [b, c]
    answer = apply(client, [a, *documents])
    assert answer.status_code == 400
    refused = answer.json()["documents"]
    assert set(refused) <= {"1", "2"} and refused, refused
    assert GatewayServiceRevision.objects.filter(service__name="c").count() == 1  # nothing stored
