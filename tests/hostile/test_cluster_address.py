"""Team members never read a cluster's address or credentials in any answer; platform engineers read everything.

A worker that cannot reach a cluster records the Kubernetes client's error on every status row it touches, and
that error names the API server (`HTTPSConnectionPool(host='10.0.0.1', port=6443)`, `https://10.0.0.1:6443/…`).
Every answer a team member gets is scanned for the address: the services list, detail, history, a dry run, the
import, the apply, the audit log, the clusters list and the cluster's gateways.
"""

from __future__ import annotations

import pytest

from clusters import kube
from clusters.converge import gateway_converge
from clusters.messages import status_message_for_teams, summary_for_teams
from clusters.models import Cluster
from services.choices import State
from services.models import GatewayServiceStatus
from tests.factories import api_client, http_service, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db

# Refused at once (nothing listens on port 1); its host is what the client's error names.
ADDRESS = "127.0.0.1"
API_SERVER = f"https://{ADDRESS}:1"
TOKEN = "cluster-token-7f3a9c1e5b"


@pytest.fixture
def world():
    member = make_user("alice")
    make_team("payments", members=[member], allow_wildcards=True)
    cluster = make_cluster(api_server=API_SERVER, token=TOKEN)
    return api_client(member), api_client(make_user("root", platform=True)), cluster


def _fail_on_the_cluster(cluster: Cluster) -> None:
    """Run the worker against the unreachable cluster: it records the client's error."""
    with pytest.raises(kube.TransientError):
        gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")


def _leaks(answer) -> bool:
    text = answer.content.decode()
    return ADDRESS in text or TOKEN in text or API_SERVER in text


def test_a_failed_status_shows_team_members_its_kind_and_platform_engineers_the_error(world):
    member, root, cluster = world
    created = member.post("/api/v1/gateway-services/", http_service(), format="json").json()
    _fail_on_the_cluster(cluster)
    status = GatewayServiceStatus.objects.get(service_id=created["id"])
    assert status.state == State.FAILED and ADDRESS in status.message  # what the worker recorded

    full = root.get(f"/api/v1/gateway-services/{created['id']}/").json()["status"][0]
    seen = member.get(f"/api/v1/gateway-services/{created['id']}/").json()["status"][0]
    listed = member.get("/api/v1/gateway-services/").json()["results"][0]["status"][0]

    assert ADDRESS in full["message"]
    assert seen["state"] == listed["state"] == "failed"
    assert seen["message"] == listed["message"] == "unreachable"


def test_no_team_answer_names_the_clusters_address(world):
    member, root, cluster = world
    created = member.post("/api/v1/gateway-services/", http_service(), format="json").json()
    _fail_on_the_cluster(cluster)
    service = f"/api/v1/gateway-services/{created['id']}/"
    other = http_service(name="other", hosts=["other.payments.example.com"])
    spec = {k: v for k, v in http_service(hosts=["applied.payments.example.com"]).items() if k != "name"}
    metadata = {"name": "applied", "namespace": spec.pop("namespace")}
    document = {"apiVersion": "gatewayportal.io/v1", "kind": "GatewayService", "metadata": metadata, "spec": spec}

    answers = {
        "list": member.get("/api/v1/gateway-services/"),
        "detail": member.get(service),
        "history": member.get(f"{service}history/"),
        "update": member.patch(service, {"hosts": ["checkout.payments.example.com"]}, format="json"),
        "dry-run update": member.patch(f"{service}?dry_run=true", {"port": 8080}, format="json"),
        "dry-run create": member.post("/api/v1/gateway-services/?dry_run=true", other, format="json"),
        "apply": member.post("/api/v1/gateway-services/apply/?apply_set=ci", document, format="json"),
        "audit": member.get("/api/v1/audit-events/"),
        "clusters": member.get("/api/v1/clusters/"),
        "cluster": member.get("/api/v1/clusters/prod-eu-1/"),
        "gateways": member.get("/api/v1/clusters/prod-eu-1/gateways/"),
    }

    assert {name: a.status_code for name, a in answers.items() if a.status_code >= 300} == {}
    assert [name for name, a in answers.items() if _leaks(a)] == []
    gateways = answers["gateways"].json()
    assert [g["message"] for g in gateways] == ["unreachable", "unreachable"]
    # Platform engineers keep the full text where teams get the kind.
    assert ADDRESS in root.get("/api/v1/clusters/prod-eu-1/gateways/").json()[0]["message"]
    assert ADDRESS in root.get(service).json()["status"][0]["message"]


def test_a_refusal_keeps_the_servers_reason_for_the_team_without_any_address(world):
    member, root, cluster = world
    created = member.post("/api/v1/gateway-services/", http_service(), format="json").json()
    refusal = (
        "the cluster refused the block: writing Gateway istio-system/ingress-gateway: 400 BadRequest: admission "
        'webhook "validation.istio.io" denied the request: host "checkout.payments.example.com" is denied; see '
        "https://10.20.30.40:6443/apis/networking.istio.io/v1 (HTTPSConnectionPool(host='api.internal.corp', "
        "port=6443)) at 10.20.30.40:6443 and [fd00::1]:6443 and api.internal.corp:6443"
    )
    GatewayServiceStatus.objects.filter(service_id=created["id"]).update(state=State.REJECTED, message=refusal)

    seen = member.get(f"/api/v1/gateway-services/{created['id']}/").json()["status"][0]["message"]
    full = root.get(f"/api/v1/gateway-services/{created['id']}/").json()["status"][0]["message"]

    assert full == refusal
    assert 'host "checkout.payments.example.com" is denied' in seen
    for address in ("10.20.30.40", "api.internal.corp", "fd00::1", "6443"):
        assert address not in seen, address


def test_portal_messages_reach_the_team_unchanged(world):
    member, _, _ = world
    created = member.post("/api/v1/gateway-services/", http_service(), format="json").json()
    text = "port 80 of checkout.payments.example.com clashes with managed server 'http-shop-ledger'"
    GatewayServiceStatus.objects.filter(service_id=created["id"]).update(state=State.REJECTED, message=text)

    seen = member.get(f"/api/v1/gateway-services/{created['id']}/").json()["status"][0]["message"]

    assert seen == text


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (
            "reading Gateway a/b: cannot reach the API server: HTTPSConnectionPool(host='10.0.0.1', port=6443)",
            "unreachable",
        ),
        ("reading Gateway a/b: 401 Unauthorized: Unauthorized", "unauthorized"),
        ("secret istio-system/x: creating Secret istio-system/x: 403 Forbidden: secrets is forbidden", "unauthorized"),
        ("reading Gateway a/b: cannot reach the API server: [SSL: CERTIFICATE_VERIFY_FAILED]", "TLS error"),
        ('writing Gateway a/b: 500 InternalError: Post "https://istiod.istio-system.svc:443/validate"', "error"),
    ],
)
def test_a_failed_status_becomes_its_kind(message, kind):
    seen = status_message_for_teams(State.FAILED, message)
    assert seen == summary_for_teams(message)
    assert seen.startswith(kind)
    assert "10.0.0.1" not in seen and "istiod" not in seen
