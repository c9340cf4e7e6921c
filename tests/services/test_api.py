"""The gateway-service API, end to end through DRF (no cluster: enqueued reconciles are not run here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from audit.models import AuditEvent
from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus
from tests.certs import make_cert
from tests.factories import api_client, http_service, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
SEEDS = Path(__file__).resolve().parent / "seed_examples"  # copies of shared/seeds/examples
URL = "/api/v1/gateway-services/"


@pytest.fixture
def alice():
    return make_user("alice")


@pytest.fixture
def team(alice):
    return make_team("payments", members=[alice])


@pytest.fixture
def cluster():
    return make_cluster("prod-eu-1")


@pytest.fixture
def client(alice, team, cluster):
    return api_client(alice)


def counts():
    return (GatewayService.objects.count(), GatewayServiceRevision.objects.count(), AuditEvent.objects.count())


def test_create_http_service_renders_block_and_audits(client):
    response = client.post(URL, http_service(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["team"] == "payments"  # omitted: the caller has one team
    assert body["revision"] == 1
    assert body["approval"] == "not_required"
    assert body["server_block"] == {
        "port": {"number": 80, "name": "http-checkout-payments", "protocol": "HTTP"},
        "hosts": ["payments/checkout.payments.example.com"],
    }
    assert body["status"][0]["cluster"] == "prod-eu-1"
    assert body["status"][0]["state"] == "pending"
    event = AuditEvent.objects.get(action="gateway_service.created")
    assert event.actor == "alice"
    assert event.source == "api"
    assert event.object_id == body["id"]
    assert event.team == "payments"
    assert response["X-Request-ID"] == event.request_id


def test_case_insensitive_input_is_normalised(client):
    response = client.post(URL, http_service(protocol="http", traffic_type="INGRESS"), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["protocol"] == "HTTP"
    assert response.json()["traffic_type"] == "ingress"


def test_unknown_fields_are_refused_and_nothing_is_stored(client):
    before = counts()
    response = client.post(URL, http_service(colour="blue"), format="json")
    assert response.status_code == 400
    assert "colour" in response.json()
    assert counts() == before


def test_invalid_istio_host_names_the_field(client):
    before = counts()
    response = client.post(URL, http_service(hosts=["*foo.payments.example.com"]), format="json")
    assert response.status_code == 400
    assert "hosts" in response.json()
    assert counts() == before


def test_host_outside_team_domains_is_refused(client):
    response = client.post(URL, http_service(hosts=["shop.other.example.org"]), format="json")
    assert response.status_code == 400
    assert "payments.example.com" in json.dumps(response.json())


def test_namespace_must_be_the_teams(client):
    response = client.post(URL, http_service(namespace="kube-system"), format="json")
    assert response.status_code == 400
    assert "namespace" in response.json()


def test_unknown_cluster_is_refused(client):
    response = client.post(URL, http_service(clusters=["nowhere"]), format="json")
    assert response.status_code == 400
    assert "nowhere" in json.dumps(response.json()["clusters"])


def test_malformed_json_wrong_type_and_oversized_body(client):
    assert client.post(URL, "{not json", content_type="application/json").status_code == 400
    assert client.post(URL, "name=x", content_type="text/plain").status_code == 415
    big = json.dumps(http_service(hosts=["a.payments.example.com"] * 100_000))
    assert client.post(URL, big, content_type="application/json").status_code == 413


def _tls_service(cert, **overrides):
    return http_service(
        port=443,
        protocol="HTTPS",
        mode="SIMPLE",
        tls_options={"tls_secret": {"cert": cert.cert_pem, "key": cert.key_pem}},
        **overrides,
    )


def test_tls_secret_key_is_write_only_and_encrypted_at_rest(client):
    cert = make_cert(common_name="checkout.payments.example.com")
    response = client.post(URL, _tls_service(cert), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    text = json.dumps(body)
    assert "PRIVATE KEY" not in text
    assert body["tls_options"]["tls_secret"]["cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert body["credential_name"] == "checkout-payments-secret"
    assert body["server_block"]["tls"] == {"mode": "SIMPLE", "credentialName": "checkout-payments-secret"}
    assert body["certificate"]["dns_names"] == ["checkout.payments.example.com"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT tls_material, spec::text FROM services_gatewayservicerevision")
        material, spec = cursor.fetchone()
    assert "BEGIN" not in material and "BEGIN" not in spec
    assert "PRIVATE KEY" not in json.dumps(list(AuditEvent.objects.values()), default=str)
    detail = client.get(f"{URL}{body['id']}/").json()
    assert "PRIVATE KEY" not in json.dumps(detail)


def test_certificate_not_covering_host_is_refused(client):
    cert = make_cert(common_name="other.payments.example.com")
    before = counts()
    response = client.post(URL, _tls_service(cert), format="json")
    assert response.status_code == 400
    assert "cert" in response.json()["tls_options"]["tls_secret"]
    assert counts() == before


def test_certificate_expiring_soon_is_accepted_with_a_warning(client):
    cert = make_cert(common_name="checkout.payments.example.com", not_after=datetime.now(UTC) + timedelta(days=5))
    response = client.post(URL, _tls_service(cert), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["warnings"]


def test_tenant_isolation_other_teams_service_is_404(client, alice):
    bob = make_user("bob")
    make_team("shop", members=[bob])
    bob_client = api_client(bob)
    created = client.post(URL, http_service(), format="json").json()
    detail = f"{URL}{created['id']}/"
    assert bob_client.get(detail).status_code == 404
    assert bob_client.patch(detail, {"port": 8080}, format="json").status_code == 404
    assert bob_client.put(detail, http_service(), format="json").status_code == 404
    assert bob_client.delete(detail).status_code == 404
    assert bob_client.get(f"{detail}history/").status_code == 404
    assert bob_client.get(URL).json()["count"] == 0
    assert GatewayService.objects.count() == 1


def test_patch_creates_a_new_revision_and_audits_the_change(client):
    created = client.post(URL, http_service(), format="json").json()
    response = client.patch(f"{URL}{created['id']}/", {"port": 8080}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["revision"] == 2
    event = AuditEvent.objects.get(action="gateway_service.updated")
    assert event.changes["port"] == [80, 8080]
    history = client.get(f"{URL}{created['id']}/history/").json()
    assert [r["number"] for r in history["revisions"]] == [1, 2]
    assert [e["action"] for e in history["audit_events"]] == ["gateway_service.created", "gateway_service.updated"]


def test_identity_fields_cannot_change(client):
    created = client.post(URL, http_service(), format="json").json()
    response = client.patch(f"{URL}{created['id']}/", {"name": "renamed"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()


def test_same_host_on_same_gateway_port_conflicts_naming_the_other_service(client):
    assert client.post(URL, http_service(), format="json").status_code == 201
    response = client.post(URL, http_service(name="checkout-two"), format="json")
    assert response.status_code == 400
    assert "payments/checkout" in json.dumps(response.json())


def test_dry_run_stores_nothing(client):
    before = counts()
    response = client.post(f"{URL}?dry_run=true", http_service(), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["dry_run"] is True
    assert body["server_block"]["port"]["name"] == "http-checkout-payments"
    assert [d["cluster"] for d in body["diff"]] == ["prod-eu-1"]
    assert counts() == before
    assert GatewayServiceStatus.objects.count() == 0


def test_delete_without_deployments_removes_the_row_but_keeps_history(client):
    created = client.post(URL, http_service(clusters=[], cluster_selector={"env": "staging"}), format="json").json()
    response = client.delete(f"{URL}{created['id']}/")
    assert response.status_code == 202
    assert not GatewayService.objects.exists()
    assert AuditEvent.objects.filter(object_id=created["id"], action="gateway_service.deleted").exists()


def test_delete_with_deployments_marks_removing(client):
    created = client.post(URL, http_service(), format="json").json()
    assert client.delete(f"{URL}{created['id']}/").status_code == 202
    service = GatewayService.objects.get(pk=created["id"])
    assert service.deleting_at is not None
    assert set(service.statuses.values_list("state", flat=True)) == {"removing"}


def test_filters(client):
    client.post(URL, http_service(), format="json")
    client.post(URL, http_service(name="api", hosts=["api.payments.example.com"], port=8080), format="json")
    assert client.get(URL, {"host": "API.payments.example.com"}).json()["count"] == 1
    assert client.get(URL, {"protocol": "http"}).json()["count"] == 2
    assert client.get(URL, {"cluster": "prod-eu-1"}).json()["count"] == 2
    assert client.get(URL, {"team": "other"}).json()["count"] == 0
    assert client.get(URL, {"page_size": 1}).json()["next"]


def test_gated_cluster_makes_revision_pending_and_only_platform_approves(client):
    make_cluster("prod-us-1", requires_approval=True, labels={"env": "prod"})
    created = client.post(URL, http_service(clusters=[], cluster_selector={"env": "prod"}), format="json").json()
    assert created["approval"] == "pending"
    states = {s["cluster"]: s["state"] for s in created["status"]}
    assert states == {"prod-eu-1": "pending", "prod-us-1": "awaiting_approval"}
    assert client.post(f"{URL}{created['id']}/approve/", {"comment": "ok"}, format="json").status_code == 403
    admin = api_client(make_user("root", platform=True))
    response = admin.post(f"{URL}{created['id']}/approve/", {"comment": "CAB ok"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["approval"] == "approved"
    event = AuditEvent.objects.get(action="gateway_service.approved")
    assert event.actor == "root" and event.data["comment"] == "CAB ok"


def test_import_of_seed_examples(client, team):
    team.allowed_domains = ["example.com"]
    team.allow_wildcards = True
    team.namespaces = ["default"]
    team.granted_secrets = ["example-secret-ref"]  # a tls_secret_ref names only a Secret granted to the team
    team.save()
    text = (SEEDS / "tls_secretref_example.yaml").read_text()
    response = client.post(f"{URL}import/?clusters=prod-eu-1", text, content_type="application/yaml")
    assert response.status_code == 201, response.json()
    [created] = response.json()
    assert created["name"] == "tls-secret-ref-example"
    assert created["namespace"] == "default"
    assert created["server_block"]["tls"] == {"mode": "SIMPLE", "credentialName": "example-secret-ref"}

    text = (SEEDS / "tls_secretpath_example.yaml").read_text()
    response = client.post(f"{URL}import/?clusters=prod-eu-1", text, content_type="application/yaml")
    assert response.status_code == 400  # same host *.example.com on port 443 as the secret-ref import
    assert "documents" in response.json()


def test_import_of_expired_seed_certificate_is_refused_with_both_reasons(client, team):
    team.allowed_domains = ["example.com"]
    team.allow_wildcards = True
    team.save()
    before = counts()
    text = (SEEDS / "tls_secret_example.yaml").read_text()
    response = client.post(f"{URL}import/?clusters=prod-eu-1", text, content_type="application/yaml")
    assert response.status_code == 400
    errors = json.dumps(response.json()).lower()
    assert "expired" in errors
    assert "*.example.com" in errors
    assert counts() == before


def test_import_refuses_bad_yaml_and_wrong_content_type(client):
    assert client.post(f"{URL}import/", "a: [b", content_type="application/yaml").status_code == 400
    assert client.post(f"{URL}import/", {"a": 1}, format="json").status_code == 415


def test_teams_are_platform_managed(client, alice):
    assert (
        client.post(
            "/api/v1/teams/", {"slug": "x", "name": "X", "namespaces": ["x"], "allowed_domains": []}, format="json"
        ).status_code
        == 403
    )
    admin = api_client(make_user("root", platform=True))
    response = admin.post(
        "/api/v1/teams/",
        {
            "slug": "shop",
            "name": "Shop",
            "namespaces": ["shop"],
            "allowed_domains": ["Shop.Example.com."],
            "members": ["alice"],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["allowed_domains"] == ["shop.example.com"]
    assert AuditEvent.objects.filter(action="team.created", object_id="shop").exists()
    assert {t["slug"] for t in client.get("/api/v1/teams/").json()["results"]} == {"payments", "shop"}


def test_unauthenticated_is_401():
    from rest_framework.test import APIClient

    assert APIClient().get(URL).status_code == 401


def test_create_api_token_prints_a_new_token_once(alice, capsys):
    call_command("create_api_token", "alice")
    first = capsys.readouterr().out.strip().splitlines()[-1].split()[-1]
    call_command("create_api_token", "alice")
    second = capsys.readouterr().out.strip().splitlines()[-1].split()[-1]
    assert first != second
    assert len(first) >= 40
    for key in (first, second):
        assert api_client_for_key(key).get(URL).status_code == 200


def api_client_for_key(key: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_schema_describes_the_contract(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"] if response["Content-Type"].startswith("application/json") else None
    if paths is None:
        import yaml

        paths = yaml.safe_load(response.content)["paths"]
    for path in (
        "/api/v1/gateway-services/",
        "/api/v1/gateway-services/{id}/",
        "/api/v1/gateway-services/{id}/history/",
        "/api/v1/gateway-services/{id}/approve/",
        "/api/v1/gateway-services/import/",
        "/api/v1/teams/",
    ):
        assert path in paths, path


def test_names_that_would_join_to_the_same_port_and_secret_name_are_refused(client, team):
    team.namespaces = ["payments", "b-payments"]
    team.save()
    first = http_service(name="a-b", namespace="payments", hosts=["one.payments.example.com"])
    assert client.post(URL, first, format="json").status_code == 201
    second = http_service(name="a", namespace="b-payments", hosts=["two.payments.example.com"], port=8080)
    before = counts()
    response = client.post(URL, second, format="json")
    assert response.status_code == 400
    assert "payments/a-b" in response.json()["name"][0]
    assert counts() == before
