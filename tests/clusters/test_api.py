"""The clusters API: who may do what, write-only credentials, kubeconfig import, check/, reconcile/, gateways/."""

from __future__ import annotations

import pytest
import yaml

from audit.models import AuditEvent
from clusters.models import Cluster
from kubesim.auth import Rule
from tests.clusters.builders import make_service
from tests.factories import api_client, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def platform():
    return api_client(make_user("pat", platform=True))


@pytest.fixture
def member():
    user = make_user("alice")
    make_team("payments", members=[user])
    return api_client(user)


def register(client, sim, name="c1", **extra):
    body = {"name": name, "api_server": sim.url, "token": sim.token, "labels": {"env": "prod"}, **extra}
    return client.post("/api/v1/clusters/", body, format="json")


def test_platform_registers_a_cluster_and_credentials_are_never_returned_or_audited(platform, kubesim):
    response = register(platform, kubesim)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "token" not in body and "kubeconfig" not in body
    assert body["health"] == {"reachable": None, "checked_at": None, "message": "", "istio_api_version": ""}
    assert Cluster.objects.get(name="c1").token == kubesim.token
    event = AuditEvent.objects.get(action="cluster.created")
    assert kubesim.token not in str(event.changes)
    assert "token" in event.changes


def test_team_members_read_clusters_without_connection_details_and_cannot_write(platform, member, kubesim):
    register(platform, kubesim)
    listed = member.get("/api/v1/clusters/").json()["results"]
    assert [c["name"] for c in listed] == ["c1"]
    assert "api_server" not in listed[0]
    assert member.post("/api/v1/clusters/", {"name": "x", "api_server": "https://a"}, format="json").status_code == 403
    assert member.post("/api/v1/clusters/c1/check/").status_code == 403


def test_update_and_delete_by_name_are_audited(platform, kubesim):
    register(platform, kubesim)
    response = platform.patch("/api/v1/clusters/c1/", {"labels": {"env": "dev"}}, format="json")
    assert response.status_code == 200
    assert AuditEvent.objects.get(action="cluster.updated").changes == {"labels": [{"env": "prod"}, {"env": "dev"}]}
    assert platform.delete("/api/v1/clusters/c1/").status_code == 204
    assert AuditEvent.objects.filter(action="cluster.deleted", cluster="c1").exists()


def test_a_bad_gateway_reference_names_the_field(platform, kubesim):
    response = register(platform, kubesim, ingress_gateway="no-slash")
    assert response.status_code == 400
    assert "ingress_gateway" in response.json()


def test_kubeconfig_import_then_check(platform, kubesim_factory):
    sim = kubesim_factory(demo=True, tls=True)
    kubeconfig = yaml.safe_dump(sim.kubeconfig())
    response = platform.post("/api/v1/clusters/", {"name": "kc", "kubeconfig": kubeconfig}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["api_server"] == sim.url

    report = platform.post("/api/v1/clusters/kc/check/").json()
    assert report["reachable"] is True
    assert report["istio_api_version"] == "networking.istio.io/v1"
    assert report["gateways"]["ingress"]["exists"] is True
    assert report["ok"] is True, report["message"]
    assert platform.get("/api/v1/clusters/kc/").json()["health"]["reachable"] is True


def test_kubeconfig_with_an_exec_plugin_is_refused(platform, kubesim):
    config = kubesim.kubeconfig()
    config["users"][0]["user"] = {"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}}
    response = platform.post("/api/v1/clusters/", {"name": "kc", "kubeconfig": yaml.safe_dump(config)}, format="json")
    assert response.status_code == 400
    assert "exec plugins are not supported" in response.json()["kubeconfig"][0]


def test_check_reports_missing_permissions(platform, kubesim):
    kubesim.set_token("reader", [Rule.of("get,list", "networking.istio.io", "gateways")])
    register(platform, kubesim, token="reader")
    report = platform.post("/api/v1/clusters/c1/check/").json()
    assert report["reachable"] is True
    assert report["ok"] is False
    denied = {(p["verb"], p["resource"]) for p in report["permissions"] if not p["allowed"]}
    assert ("update", "gateways") in denied and ("create", "secrets") in denied
    assert ("get", "gateways") not in denied
    assert "missing permissions" in report["message"]


def test_check_of_an_unreachable_cluster_says_so(platform):
    platform.post("/api/v1/clusters/", {"name": "down", "api_server": "http://127.0.0.1:9"}, format="json")
    report = platform.post("/api/v1/clusters/down/check/").json()
    assert report["reachable"] is False
    assert "cannot reach the API server" in report["message"]


def test_gateway_view_shows_managed_servers_and_drift(platform, kubesim, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(platform, kubesim)
    make_service(clusters=["c1"])
    view = platform.get("/api/v1/clusters/c1/gateways/ingress/").json()
    assert view["reachable"] is True
    assert view["unmanaged_servers"] == ["http"]
    assert view["drift"]["added"] == ["http-checkout-payments"]
    assert view["in_sync"] is False

    with django_capture_on_commit_callbacks(execute=True):
        assert platform.post("/api/v1/clusters/c1/reconcile/").status_code == 202
    view = platform.get("/api/v1/clusters/c1/gateways/ingress/").json()
    assert view["managed_servers"] == ["http-checkout-payments"]
    assert view["in_sync"] is True
