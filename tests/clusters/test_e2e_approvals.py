"""Approval gate end to end: API and ticket webhook decisions, a real worker, kubesim clusters over HTTP."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from services.models import GatewayService, GatewayServiceStatus
from tests.clusters.builders import sim_cluster, wait_for
from tests.factories import api_client, http_service, make_team, make_user
from tests.ticketing.helpers import GENERIC_SECRET, post_generic
from ticketing.actions import ticketing_source_create

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GATEWAY = ("istio-system", "ingress-gateway")
URL = "/api/v1/gateway-services/"


def block(sim, port_name: str) -> dict | None:
    servers = sim.store.gateway(*GATEWAY)["spec"]["servers"]
    return next((s for s in servers if s["port"]["name"] == port_name), None)


def status(service_id: str, cluster: str) -> GatewayServiceStatus | None:
    return GatewayServiceStatus.objects.filter(service_id=service_id, cluster__name=cluster).first()


def wait_status(service_id: str, cluster: str, state: str, revision: int | None) -> None:
    def reached():
        current = status(service_id, cluster)
        return current and current.state == state and current.revision == revision

    wait_for(reached, what=f"{cluster} to be {state} at revision {revision}")


@pytest.fixture
def setup(worker, kubesim_factory):
    ungated_sim, gated_sim = kubesim_factory(demo=True), kubesim_factory(demo=True)
    sim_cluster(ungated_sim, "dev", labels={"tier": "all"})
    sim_cluster(gated_sim, "prod", labels={"tier": "all"}, requires_approval=True)
    alice = make_user("alice")
    team = make_team("payments", members=[alice])
    return {
        "ungated": ungated_sim,
        "gated": gated_sim,
        "team": team,
        "member": api_client(alice),
        "platform": api_client(make_user("root", platform=True)),
    }


def test_gated_cluster_runs_only_approved_revisions(setup):
    member, platform, ungated, gated = setup["member"], setup["platform"], setup["ungated"], setup["gated"]
    payload = http_service(clusters=[], cluster_selector={"tier": "all"}, ticket="OPS-1")
    created = member.post(URL, payload, format="json").json()
    service_id = created["id"]
    assert created["approval"] == "pending"

    # The ungated cluster gets revision 1 at once; the gated one waits, with nothing of the service on it.
    wait_status(service_id, "dev", "applied", 1)
    wait_status(service_id, "prod", "awaiting_approval", None)
    assert block(ungated, "http-checkout-payments")["port"]["number"] == 80
    assert block(gated, "http-checkout-payments") is None

    assert platform.post(f"{URL}{service_id}/approve/", {"comment": "CAB ok"}, format="json").status_code == 200
    wait_status(service_id, "prod", "applied", 1)
    assert block(gated, "http-checkout-payments")["port"]["number"] == 80

    # Revision 2 moves the port: the ungated cluster follows, the gated one keeps running revision 1.
    assert member.patch(f"{URL}{service_id}/", {"port": 8080}, format="json").status_code == 200
    wait_status(service_id, "dev", "applied", 2)
    wait_status(service_id, "prod", "awaiting_approval", 1)
    assert block(ungated, "http-checkout-payments")["port"]["number"] == 8080
    assert block(gated, "http-checkout-payments")["port"]["number"] == 80

    # Rejected: it stays in history, and the gated cluster still runs the last approved revision.
    assert platform.post(f"{URL}{service_id}/reject/", {"comment": "not now"}, format="json").status_code == 200
    history = member.get(f"{URL}{service_id}/history/").json()
    assert [(r["number"], r["approval"]) for r in history["revisions"]] == [(1, "approved"), (2, "rejected")]
    wait_for(lambda: status(service_id, "prod").revision == 1 and status(service_id, "prod").state != "pending")
    assert block(gated, "http-checkout-payments")["port"]["number"] == 80
    actions = list(AuditEvent.objects.filter(object_id=service_id).values_list("action", flat=True).order_by("id"))
    assert "gateway_service.approved" in actions and "gateway_service.rejected" in actions


def test_a_ticket_approval_lands_on_the_gated_cluster(setup):
    ticketing_source_create(data={"name": "itsm", "kind": "generic", "team": setup["team"], "secret": GENERIC_SECRET})
    payload = http_service(clusters=["prod"], ticket="CHG-42")
    service_id = setup["member"].post(URL, payload, format="json").json()["id"]
    wait_status(service_id, "prod", "awaiting_approval", None)

    response = post_generic(
        "itsm", {"event": "ticket.approved", "ticket": "CHG-42", "actor": "carol@example.com", "comment": "ok"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "approved"
    wait_status(service_id, "prod", "applied", 1)
    assert block(setup["gated"], "http-checkout-payments") is not None
    event = AuditEvent.objects.get(action="gateway_service.approved", object_id=service_id)
    assert (event.actor, event.source, event.ticket) == ("carol@example.com", "webhook", "CHG-42")
    assert GatewayService.objects.get(pk=service_id).approved_revision.number == 1


def test_approvers_see_the_live_diff_on_gated_clusters(setup):
    payload = http_service(clusters=[], cluster_selector={"tier": "all"})
    service_id = setup["member"].post(URL, payload, format="json").json()["id"]
    diff_url = f"{URL}{service_id}/approval-diff/"

    assert setup["member"].get(diff_url).status_code == 403
    [diff] = setup["platform"].get(diff_url).json()["results"]
    assert diff["cluster"] == "prod"
    assert [s["port"]["name"] for s in diff["added"]] == ["http-checkout-payments"]
    assert block(setup["gated"], "http-checkout-payments") is None  # nothing written by looking

    setup["platform"].post(f"{URL}{service_id}/approve/", {}, format="json")
    assert setup["platform"].get(diff_url).json()["results"] == []
