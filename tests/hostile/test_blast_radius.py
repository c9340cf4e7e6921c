"""Blast radius: no team can break, block or borrow from another on a shared gateway.

Each test plays one attack a hostile tenant can make with nothing but a team member's token, through the API,
against kubesim clusters over HTTP (whose emulated Istio webhook denies what Istio denies), with a real Celery
worker where the outcome depends on the worker's rounds. Two teams: alice's `demo` and bob's `search`. Two
clusters: `dev` (ungated) and `prod` (changes need approval). Tests without the `worker` fixture run tasks
in-process, so a request returns after the reconcile it asked for: what a cluster holds then is what it did.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from kubesim import KubeSim
from kubesim.resources import GATEWAYS, SECRETS
from services.models import GatewayService, GatewayServiceStatus, Team
from tests.certs import make_cert
from tests.clusters.builders import sim_cluster, wait_for
from tests.factories import api_client, http_service, make_team, make_user
from tests.ticketing.helpers import GENERIC_SECRET, post_generic
from ticketing.actions import ticketing_source_create

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/gateway-services/"
INGRESS = ("istio-system", "ingress-gateway")
EGRESS = ("istio-system", "egress-gateway")
WEBHOOK_DENIED = 'admission webhook "validation.istio.io" denied the request'
KUBERNETES_OBJECT_LIMIT = 1024 * 1024  # what the planner refuses to write as one Gateway
MANAGED_BY = ("app.kubernetes.io/managed-by", "gatewayportal")


@dataclass
class Tenants:
    alice: APIClient  # team demo
    bob: APIClient  # team search
    platform: APIClient
    dev: KubeSim
    prod: KubeSim
    alice_user: Any


@pytest.fixture
def tenants(kubesim_factory) -> Tenants:
    dev, prod = kubesim_factory(demo=True), kubesim_factory(demo=True)
    sim_cluster(dev, "dev", labels={"tier": "all", "stage": "dev"})
    sim_cluster(prod, "prod", labels={"tier": "all", "stage": "prod"}, requires_approval=True)
    alice, bob = make_user("alice"), make_user("bob")
    make_team("demo", members=[alice])
    make_team("search", members=[bob])
    return Tenants(api_client(alice), api_client(bob), api_client(make_user("root", platform=True)), dev, prod, alice)


@pytest.fixture
def itsm(tenants):
    """A generic ticketing source bound to team demo (no references required)."""
    team = Team.objects.get(slug="demo")
    return ticketing_source_create(data={"name": "itsm", "kind": "generic", "team": team, "secret": GENERIC_SECRET})


# --- helpers ------------------------------------------------------------------------------------------------------


def svc(name: str, namespace: str, **overrides: Any) -> dict[str, Any]:
    """Plain HTTP on port 80 of the ingress gateway of `dev`, host `<name>.<namespace>.example.com`."""
    overrides.setdefault("hosts", [f"{name}.{namespace}.example.com"])
    overrides.setdefault("clusters", ["dev"])
    return http_service(name=name, namespace=namespace, **overrides)


def tls_svc(name: str, namespace: str, **overrides: Any) -> dict[str, Any]:
    """HTTPS on 443, SIMPLE, with a certificate the portal stores as the Secret `<name>-<namespace>-secret`."""
    host = f"{name}.{namespace}.example.com"
    leaf = make_cert(dns_names=[host])
    tls = {"tls_secret": {"cert": leaf.cert_pem, "key": leaf.key_pem}}
    return svc(name, namespace, hosts=[host], port=443, protocol="HTTPS", mode="SIMPLE", tls_options=tls, **overrides)


def ref_svc(name: str, namespace: str, secret_name: str) -> dict[str, Any]:
    """HTTPS on 443, SIMPLE, terminating with an existing Secret named by `tls_secret_ref`."""
    tls = {"tls_secret_ref": {"secret_name": secret_name}}
    return svc(name, namespace, port=443, protocol="HTTPS", mode="SIMPLE", tls_options=tls)


def created(response) -> dict[str, Any]:
    assert response.status_code == 201, (response.status_code, response.content)
    return response.json()


def detail(service: dict[str, Any]) -> str:
    return f"{URL}{service['id']}/"


def approve(platform: APIClient, service: dict[str, Any]):
    return platform.post(f"{detail(service)}approve/", {"comment": "CAB ok"}, format="json")


def set_team(platform: APIClient, slug: str, **fields: Any) -> None:
    response = platform.patch(f"/api/v1/teams/{slug}/", fields, format="json")
    assert response.status_code == 200, (response.status_code, response.content)


def status_of(service: dict[str, Any], cluster: str) -> GatewayServiceStatus | None:
    return GatewayServiceStatus.objects.filter(service_id=service["id"], cluster__name=cluster).first()


def settled(service: dict[str, Any], cluster: str, revision: int) -> GatewayServiceStatus:
    """Wait until a worker round has decided `revision` on `cluster` (whatever it decided)."""

    def decided():
        status = status_of(service, cluster)
        return (
            status if status and status.revision == revision and status.state not in ("pending", "removing") else None
        )

    return wait_for(decided, what=f"revision {revision} of {service['name']} to be decided on {cluster}")


def block(sim: KubeSim, port_name: str, gateway: tuple[str, str] = INGRESS) -> dict[str, Any] | None:
    servers = sim.store.gateway(*gateway)["spec"]["servers"]
    return next((s for s in servers if s["port"]["name"] == port_name), None)


def text(response) -> str:
    return json.dumps(response.json())


# --- 1. One invalid host stalls the whole gateway -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["app\n.demo.example.com", "app.demo.example.com\n"])
def test_1_a_host_with_a_control_character_is_refused_naming_hosts(tenants, host):
    response = tenants.alice.post(URL, svc("app", "demo", hosts=[host]), format="json")

    assert response.status_code == 400, response.content
    assert "hosts" in response.json()
    assert not GatewayService.objects.exists()


def test_1_a_webhook_refusal_the_portal_cannot_foresee_stays_with_the_block_that_caused_it(worker, tenants):
    tenants.dev.faults.deny_host("blocked.demo.example.com")
    lookup = created(tenants.bob.post(URL, svc("lookup", "search"), format="json"))
    assert settled(lookup, "dev", 1).state == "applied"

    blocked = created(tenants.alice.post(URL, svc("app", "demo", hosts=["blocked.demo.example.com"]), format="json"))
    hosts = ["lookup.search.example.com", "find.search.example.com"]
    assert tenants.bob.patch(detail(lookup), {"hosts": hosts}, format="json").status_code == 200

    # bob's change lands in a reconcile of the gateway that also carries alice's refused block.
    bob_status = settled(lookup, "dev", 2)
    assert bob_status.state == "applied", bob_status.message
    alice_status = settled(blocked, "dev", 1)
    assert alice_status.state == "rejected", alice_status.message
    assert WEBHOOK_DENIED in alice_status.message
    assert block(tenants.dev, "http-lookup-search")["hosts"] == [f"search/{host}" for host in hosts]
    assert block(tenants.dev, "http-app-demo") is None


# --- 2. An emptied Gateway cannot be written ------------------------------------------------------------------------


def test_2_removing_the_last_server_never_writes_a_gateway_without_servers(worker, tenants):
    dev = tenants.dev
    out = created(tenants.alice.post(URL, svc("out", "demo", traffic_type="egress"), format="json"))
    assert settled(out, "dev", 1).state == "applied"
    assert block(dev, "http-out-demo", EGRESS) is not None

    assert tenants.alice.delete(detail(out)).status_code == 202

    def gone() -> bool:
        return not GatewayService.objects.filter(pk=out["id"]).exists()

    wait_for(lambda: dev.webhook.denials or gone(), what="the removal to be written or refused")
    assert dev.webhook.denials == [], "the portal wrote a Gateway Istio refuses"
    wait_for(gone, what="the service to go once its block is removed")
    assert tenants.alice.get(detail(out)).status_code == 404
    assert block(dev, "http-out-demo", EGRESS) is None


# --- 3. A claim that never runs blocks a port for everyone ----------------------------------------------------------


def test_3_a_rejected_revision_holds_no_claim_on_its_port(tenants):
    plain = created(tenants.alice.post(URL, svc("app", "demo", port=443, clusters=["prod"]), format="json"))
    assert plain["approval"] == "pending"
    assert tenants.platform.post(f"{detail(plain)}reject/", {"comment": "no"}, format="json").status_code == 200

    response = tenants.bob.post(URL, tls_svc("shop", "search", clusters=["prod"]), format="json")

    assert response.status_code == 201, response.content


def test_3_of_two_clashing_pending_revisions_the_second_approval_is_refused_naming_the_clash(tenants):
    plain = created(tenants.alice.post(URL, svc("app", "demo", port=443, clusters=["prod"]), format="json"))
    # Pending revisions hold nothing: bob may ask for TLS on the same port.
    tls = created(tenants.bob.post(URL, tls_svc("shop", "search", clusters=["prod"]), format="json"))

    assert approve(tenants.platform, plain).status_code == 200
    refused = approve(tenants.platform, tls)

    assert refused.status_code == 400, refused.content
    assert "443" in text(refused)
    assert tenants.bob.get(detail(tls)).json()["approval"] == "pending"


def test_3_a_clash_with_an_approved_claim_names_the_other_team_never_its_service_or_hosts(tenants):
    plain = created(tenants.alice.post(URL, svc("app", "demo", port=443, clusters=["prod"]), format="json"))
    assert approve(tenants.platform, plain).status_code == 200

    refused = tenants.bob.post(URL, tls_svc("shop", "search", clusters=["prod"]), format="json")

    assert refused.status_code == 400 and "443" in text(refused)
    assert "app.demo.example.com" not in text(refused) and "demo/app" not in text(refused), text(refused)


# --- 4. One team can freeze a gateway for everyone ------------------------------------------------------------------


def test_4_a_team_past_its_service_quota_gets_400_with_the_numbers(tenants):
    set_team(tenants.platform, "demo", max_services=2)
    for name in ("one", "two"):
        created(tenants.alice.post(URL, svc(name, "demo"), format="json"))

    response = tenants.alice.post(URL, svc("three", "demo"), format="json")

    assert response.status_code == 400, response.content
    assert "2" in text(response)
    assert GatewayService.objects.filter(team__slug="demo").count() == 2


def test_4_a_team_past_its_hosts_per_gateway_quota_gets_400_with_the_numbers(tenants):
    set_team(tenants.platform, "demo", max_hosts_per_gateway=3)
    two_hosts = ["a.demo.example.com", "b.demo.example.com"]
    created(tenants.alice.post(URL, svc("one", "demo", hosts=two_hosts), format="json"))

    two_more = ["c.demo.example.com", "d.demo.example.com"]
    response = tenants.alice.post(URL, svc("two", "demo", hosts=two_more), format="json")

    assert response.status_code == 400, response.content
    assert "3" in text(response) and "4" in text(response)


def test_4_a_team_past_its_share_of_the_gateway_byte_budget_gets_400_with_the_numbers(tenants):
    set_team(tenants.platform, "demo", gateway_budget_share=0.001)  # about 1 KiB of the 1 MiB budget
    hosts = [f"h{i:02d}-{'x' * 40}.demo.example.com" for i in range(30)]  # about 2 KiB rendered

    response = tenants.alice.post(URL, svc("big", "demo", hosts=hosts), format="json")

    assert response.status_code == 400, response.content
    assert "bytes" in text(response)


def pad_gateway(sim: KubeSim, total_bytes: int) -> None:
    """The platform grows its own (unmanaged) server until the Gateway is about `total_bytes` of compact JSON."""
    host = lambda i: f"p{i:05d}." + ("x" * 60 + ".") * 3 + "platform.example.com"  # noqa: E731

    def grow(gateway: dict[str, Any]) -> None:
        server = {"port": {"number": 9999, "name": "platform-padding", "protocol": "HTTP"}, "hosts": []}
        gateway["spec"]["servers"].append(server)
        size = len(json.dumps(gateway, separators=(",", ":")))
        count = (total_bytes - size) // (len(json.dumps(host(0))) + 1)
        server["hosts"] = [host(i) for i in range(count)]

    sim.store.modify(GATEWAYS, *INGRESS, grow)


def test_4_the_planners_size_refusal_leaves_out_the_newest_blocks_instead_of_writing_nothing(worker, tenants):
    dev = tenants.dev
    old = created(tenants.alice.post(URL, svc("old", "demo"), format="json"))
    assert settled(old, "dev", 1).state == "applied"
    many = [f"h{i:02d}-{'x' * 50}.search.example.com" for i in range(40)]
    new = created(tenants.bob.post(URL, svc("new", "search", hosts=many), format="json"))
    assert settled(new, "dev", 1).state == "applied"
    # Over the limit with the newest block, under it without: the portal's request checks cannot see this coming.
    newest = len(json.dumps(block(dev, "http-new-search"), separators=(",", ":")))
    pad_gateway(dev, KUBERNETES_OBJECT_LIMIT + newest // 2)

    hosts = ["old.demo.example.com", "two.demo.example.com"]
    assert tenants.alice.patch(detail(old), {"hosts": hosts}, format="json").status_code == 200

    old_status = settled(old, "dev", 2)
    assert old_status.state == "applied", old_status.message
    new_status = status_of(new, "dev")
    assert new_status.state != "applied" and "bytes" in new_status.message
    assert block(dev, "http-old-demo")["hosts"] == ["demo/old.demo.example.com", "demo/two.demo.example.com"]
    assert block(dev, "http-new-search") is None
    assert block(dev, "platform-padding") is not None


# --- 5. A team can terminate TLS with another team's key ------------------------------------------------------------


def test_5_a_tls_secret_ref_may_not_name_a_secret_the_portal_manages_for_another_service(tenants):
    created(tenants.bob.post(URL, tls_svc("shop", "search"), format="json"))
    assert tenants.dev.store.secret("istio-system", "shop-search-secret") is not None

    response = tenants.alice.post(URL, ref_svc("steal", "demo", "shop-search-secret"), format="json")

    assert response.status_code == 400, response.content
    assert "tls_options" in response.json()
    assert not GatewayService.objects.filter(name="steal").exists()


def test_5_a_refused_secret_reference_does_not_tell_whether_the_secret_exists(tenants):
    leaf = make_cert(dns_names=["*.demo.example.com"])
    tenants.dev.store.add_secret(
        "istio-system", "istio-ca-secret", {"tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem}, type="kubernetes.io/tls"
    )

    existing = tenants.alice.post(URL, ref_svc("probe-a", "demo", "istio-ca-secret"), format="json")
    missing = tenants.alice.post(URL, ref_svc("probe-b", "demo", "no-such-secret"), format="json")

    assert (existing.status_code, missing.status_code) == (400, 400), (existing.content, missing.content)
    assert text(existing).replace("istio-ca-secret", "S").replace("probe-a", "P") == text(missing).replace(
        "no-such-secret", "S"
    ).replace("probe-b", "P")


# --- 6. A ticket approves what nobody reviewed ----------------------------------------------------------------------


def test_6_a_patch_does_not_carry_the_ticket_so_the_ticket_does_not_approve_it(tenants, itsm):
    app = created(tenants.alice.post(URL, svc("app", "demo", clusters=["prod"], ticket="CHG-1"), format="json"))
    late = ["app.demo.example.com", "late.demo.example.com"]
    patched = tenants.alice.patch(detail(app), {"hosts": late}, format="json")
    assert patched.status_code == 200
    assert patched.json()["ticket"] == ""

    delivery = {"event": "ticket.approved", "ticket": "CHG-1", "actor": "carol@example.com", "comment": "ok"}
    assert post_generic("itsm", delivery, msg_id="msg-chg-1").status_code == 200

    revisions = tenants.alice.get(f"{detail(app)}history/").json()["revisions"]
    assert [(r["number"], r["ticket"]) for r in revisions] == [(1, "CHG-1"), (2, "")]
    assert revisions[1]["approval"] == "pending"
    running = block(tenants.prod, "http-app-demo")
    assert running is None or "demo/late.demo.example.com" not in running["hosts"]


def test_6_a_second_pending_revision_naming_the_same_ticket_is_refused(tenants):
    app = created(tenants.alice.post(URL, svc("app", "demo", clusters=["prod"], ticket="CHG-2"), format="json"))

    again = tenants.alice.patch(
        detail(app), {"hosts": ["app.demo.example.com", "more.demo.example.com"], "ticket": "CHG-2"}, format="json"
    )

    assert again.status_code == 400, again.content
    assert "ticket" in again.json()
    assert tenants.alice.get(detail(app)).json()["revision"] == 1


def test_6_every_revision_carries_its_own_approval_reference(tenants):
    app = created(tenants.alice.post(URL, svc("app", "demo", clusters=["prod"], ticket="CHG-3"), format="json"))
    second = tenants.alice.patch(detail(app), {"port": 8080, "ticket": "CHG-4"}, format="json").json()

    first_ref, second_ref = app.get("approval_reference"), second.get("approval_reference")
    assert isinstance(first_ref, str) and len(first_ref) >= 8, f"approval_reference is {first_ref!r}"
    assert isinstance(second_ref, str) and second_ref != first_ref
    assert app["id"] not in first_ref
    revisions = tenants.alice.get(f"{detail(app)}history/").json()["revisions"]
    assert [r.get("approval_reference") for r in revisions] == [first_ref, second_ref]


def test_6_a_source_requiring_references_approves_only_the_revisions_the_delivery_names(tenants):
    source = {"name": "cab", "kind": "generic", "team": "demo", "secret": GENERIC_SECRET, "require_references": True}
    response = tenants.platform.post("/api/v1/ticketing-sources/", source, format="json")
    assert response.status_code == 201 and response.json().get("require_references") is True, response.content
    reviewed = created(tenants.alice.post(URL, svc("one", "demo", clusters=["prod"], ticket="CHG-5"), format="json"))
    slipped_in = created(tenants.alice.post(URL, svc("two", "demo", clusters=["prod"], ticket="CHG-5"), format="json"))

    delivery = {
        "event": "ticket.approved",
        "ticket": "CHG-5",
        "actor": "carol@example.com",
        "revisions": [reviewed["approval_reference"]],
    }
    assert post_generic("cab", delivery, msg_id="msg-chg-5").status_code == 200

    assert tenants.alice.get(detail(reviewed)).json()["approval"] == "approved"
    assert tenants.alice.get(detail(slipped_in)).json()["approval"] == "pending"


# --- 7. Leaving a gated cluster needs no approval; nothing limits which clusters a team may use --------------------


@pytest.mark.parametrize(
    "allowed", [{"allowed_clusters": ["dev"]}, {"allowed_clusters": None, "allowed_cluster_selector": {"stage": "dev"}}]
)
def test_7_a_team_lands_only_on_its_allowed_clusters(tenants, allowed):
    set_team(tenants.platform, "demo", **allowed)

    named = tenants.alice.post(URL, svc("app", "demo", clusters=["prod"]), format="json")
    selected = created(
        tenants.alice.post(URL, svc("app", "demo", clusters=[], cluster_selector={"tier": "all"}), format="json")
    )

    assert named.status_code == 400 and "clusters" in named.json(), named.content
    assert [s["cluster"] for s in selected["status"]] == ["dev"]


def _approved_on_prod(tenants) -> dict[str, Any]:
    app = created(tenants.alice.post(URL, svc("app", "demo", clusters=["dev", "prod"]), format="json"))
    assert approve(tenants.platform, app).status_code == 200
    assert block(tenants.prod, "http-app-demo") is not None
    return app


def test_7_leaving_a_gated_cluster_by_patch_waits_for_approval(tenants):
    app = _approved_on_prod(tenants)

    patched = tenants.alice.patch(detail(app), {"clusters": ["dev"]}, format="json")

    assert patched.status_code == 200, patched.content
    assert block(tenants.prod, "http-app-demo") is not None, "the block left a gated cluster without approval"
    assert patched.json()["approval"] == "pending"
    assert approve(tenants.platform, app).status_code == 200
    assert block(tenants.prod, "http-app-demo") is None


def test_7_deleting_from_a_gated_cluster_waits_for_approval(tenants):
    app = _approved_on_prod(tenants)

    assert tenants.alice.delete(detail(app)).status_code == 202

    assert block(tenants.prod, "http-app-demo") is not None, "the block left a gated cluster without approval"
    assert block(tenants.dev, "http-app-demo") is None
    assert approve(tenants.platform, app).status_code == 200
    assert block(tenants.prod, "http-app-demo") is None
    assert tenants.alice.get(detail(app)).status_code == 404


# --- 8. Two concurrent updates lose one -----------------------------------------------------------------------------


def test_8_a_stale_if_match_answers_412_and_changes_nothing(tenants):
    app = created(tenants.alice.post(URL, svc("app", "demo"), format="json"))
    etag = tenants.alice.get(detail(app)).headers.get("ETag")
    assert etag, "gateway-service responses carry no ETag"

    first = tenants.alice.patch(detail(app), {"port": 8080}, format="json", HTTP_IF_MATCH=etag)
    assert first.status_code == 200 and first.headers.get("ETag") not in (None, etag)
    stale = [
        tenants.alice.patch(detail(app), {"port": 9090}, format="json", HTTP_IF_MATCH=etag),
        tenants.alice.put(detail(app), svc("app", "demo", port=9090), format="json", HTTP_IF_MATCH=etag),
        tenants.alice.delete(detail(app), HTTP_IF_MATCH=etag),
    ]

    assert [r.status_code for r in stale] == [412, 412, 412]
    now = tenants.alice.get(detail(app)).json()
    assert (now["revision"], now["port"]) == (2, 8080)
    assert GatewayService.objects.get(pk=app["id"]).deleting_at is None


def test_8_two_concurrent_patches_both_land(worker, tenants):
    app = created(tenants.alice.post(URL, svc("app", "demo"), format="json"))
    clients = [api_client(tenants.alice_user), api_client(tenants.alice_user)]

    for round_ in range(4):
        hosts = ["app.demo.example.com", f"r{round_}.demo.example.com"]
        redirect = round_ % 2 == 0
        barrier = threading.Barrier(2)

        def patch(client: APIClient, change: dict[str, Any], barrier=barrier) -> int:
            try:
                barrier.wait(timeout=10)
                return client.patch(detail(app), change, format="json").status_code
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=2) as pool:
            codes = list(pool.map(patch, clients, [{"hosts": hosts}, {"https_redirect": redirect}]))

        assert codes == [200, 200]
        now = tenants.alice.get(detail(app)).json()
        assert (now["hosts"], now["https_redirect"]) == (hosts, redirect), f"round {round_} lost an update"


# --- 9. A private key can stay on a cluster forever -----------------------------------------------------------------


def test_9_a_secret_written_in_a_round_whose_gateway_write_failed_goes_with_its_service(worker, tenants):
    dev = tenants.dev
    dev.faults.deny_host("shop.demo.example.com")
    shop = created(tenants.alice.post(URL, tls_svc("shop", "demo"), format="json"))
    settled(shop, "dev", 1)

    assert tenants.alice.delete(detail(shop)).status_code == 202
    wait_for(lambda: not GatewayService.objects.filter(pk=shop["id"]).exists(), what="the service to go")

    managed = [
        s["metadata"]["name"]
        for s in dev.store.list(SECRETS)
        if (s["metadata"].get("labels") or {}).get(MANAGED_BY[0]) == MANAGED_BY[1]
    ]
    assert managed == [], "a Secret with the portal's label is left that no service wants"
    assert any(r.method == "POST" and r.status == 201 for r in dev.requests.writes("secrets", "istio-system"))
