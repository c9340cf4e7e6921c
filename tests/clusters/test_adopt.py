"""Adopting live servers and moving from the operator, against kubesim: what is written, and what is not."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from clusters.converge import gateway_converge
from clusters.models import GatewayState
from kubesim.resources import GATEWAYS
from services import actions as service_actions
from services.models import GatewayService, GatewayServiceStatus
from tests.certs import make_cert
from tests.clusters.builders import sim_cluster
from tests.factories import api_client, make_team, make_user

pytestmark = pytest.mark.django_db
GATEWAY = ("istio-system", "ingress-gateway")
SEEDS = Path(__file__).resolve().parents[1] / "services" / "seed_examples"


def seed(name: str) -> dict:
    return next(d for d in yaml.safe_load_all((SEEDS / name).read_text()) if d and d["kind"] == "GatewayService")


# The seed's three examples all claim *.example.com on port 443, which Istio refuses to merge on one Gateway
# (two TLS servers, same port, same host). Each gets its own host here; everything else is the seed's.
OPERATOR_RESOURCES = [
    ("gatewayservice.xunholy.github.com", seed("tls_secretref_example.yaml"), "ref.example.com"),
    ("crd.xunholy.github.com", seed("tls_secretpath_example.yaml"), "path.example.com"),
    ("crd.xunholy.github.com", seed("tls_secret_example.yaml"), "pass.example.com"),
]


def operator_server(resource: dict, host: str) -> dict:
    """The server block the operator wrote for a resource: `<protocol>-<name>-<namespace>`, hosts as given."""
    spec, name = resource["spec"], resource["metadata"]["name"]
    tls: dict = {"mode": spec["mode"]}
    options = spec.get("tlsOptions") or {}
    if spec["mode"] != "PASSTHROUGH":
        if "tlsSecretRef" in options:
            tls["credentialName"] = options["tlsSecretRef"]["secretName"]
        if "tlsSecretPath" in options:
            tls["serverCertificate"] = options["tlsSecretPath"]["certPath"]
            tls["privateKey"] = options["tlsSecretPath"]["keyPath"]
    return {
        "port": {"number": spec["port"], "name": f"{spec['protocol']}-{name}-default".lower(), "protocol": "HTTPS"},
        "hosts": [host],
        "tls": tls,
    }


@pytest.fixture
def platform():
    return api_client(make_user("root", platform=True))


@pytest.fixture
def apps():
    team = make_team("apps", namespaces=["default"], domains=["example.com"])
    team.granted_secrets = ["example-secret-ref"]  # the credential a server of the operator's already names
    team.save()
    return team


@pytest.fixture
def operator_cluster(kubesim, apps, settings):
    """A cluster the operator ran on: its resources, the Secrets it used, and the servers it wrote."""
    settings.TLS_SECRET_PATH_PREFIX = "/tmp/secret/"  # where the seed's tls_secret_path example keeps its files
    kubesim.store.add_namespace("default")
    cert = make_cert(common_name="ref.example.com")
    kubesim.store.add_secret(
        "istio-system",
        "example-secret-ref",
        {"tls.crt": cert.cert_pem, "tls.key": cert.key_pem},
        type="kubernetes.io/tls",
    )
    servers = []
    for group, resource, host in OPERATOR_RESOURCES:
        spec = {k: v for k, v in resource["spec"].items() if k != "name"} | {"hosts": [host]}
        kubesim.store.add_operator_service("default", resource["metadata"]["name"], spec, group=group)
        servers.append(operator_server(resource, host))
    kubesim.store.modify(GATEWAYS, *GATEWAY, lambda gw: gw["spec"]["servers"].extend(copy.deepcopy(servers)))
    # The operator wrote hosts without a namespace prefix: the setting that keeps the move write-free.
    return sim_cluster(kubesim, "legacy", namespace_scoped_hosts=False)


def live_servers(kubesim) -> list[dict]:
    return kubesim.store.gateway(*GATEWAY)["spec"]["servers"]


def test_moving_from_the_operator_makes_zero_writes_and_the_next_change_writes_only_that_server(
    kubesim, platform, operator_cluster
):
    url = f"/api/v1/clusters/{operator_cluster.name}/import-operator-resources/?team=apps"
    before = copy.deepcopy(live_servers(kubesim))

    dry = platform.post(f"{url}&dry_run=true")
    assert dry.status_code == 200, dry.json()
    assert dry.json()["writes"]["ingress"]["gateway_writes"] == 0
    assert dry.json()["writes"]["ingress"]["secret_writes"] == 0
    assert all(r["identical"] for r in dry.json()["results"])
    assert GatewayService.objects.count() == 0

    kubesim.requests.reset()
    moved = platform.post(url)
    assert moved.status_code == 200, moved.json()
    assert sorted(r["name"] for r in moved.json()["results"]) == [
        "tls-secret-example",
        "tls-secret-path-example",
        "tls-secret-ref-example",
    ]
    gateway_converge(cluster_id=operator_cluster.pk, traffic_type="ingress")

    assert kubesim.requests.writes("gateways") == []
    assert kubesim.requests.writes("secrets") == []
    assert live_servers(kubesim) == before
    assert set(GatewayServiceStatus.objects.values_list("state", flat=True)) == {"applied"}
    ref = GatewayService.objects.get(name="tls-secret-ref-example")
    assert ref.current_revision.spec["tls_options"] == {"tls_secret_ref": {"secret_name": "example-secret-ref"}}

    service_actions.gateway_service_update(
        service=ref, data={"min_protocol_version": "TLSV1_2"}, is_platform=True, partial=True
    )
    gateway_converge(cluster_id=operator_cluster.pk, traffic_type="ingress")

    assert len(kubesim.requests.writes("gateways")) == 1
    assert kubesim.requests.writes("secrets") == []
    after = live_servers(kubesim)
    changed = [i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
    assert [after[i]["port"]["name"] for i in changed] == ["https-tls-secret-ref-example-default"]
    assert after[changed[0]]["tls"]["minProtocolVersion"] == "TLSV1_2"


def test_a_server_the_portal_would_render_differently_is_previewed_then_replaced_in_one_write(kubesim, platform, apps):
    legacy = {
        "port": {"number": 8080, "name": "legacy-shop", "protocol": "HTTP"},
        "hosts": ["shop.example.com"],
    }
    kubesim.store.add_namespace("default")
    kubesim.store.modify(GATEWAYS, *GATEWAY, lambda gw: gw["spec"]["servers"].append(copy.deepcopy(legacy)))
    cluster = sim_cluster(kubesim, "c1")
    body = {"gateway": "ingress", "port_name": "legacy-shop", "team": "apps", "name": "shop", "namespace": "default"}
    url = f"/api/v1/clusters/{cluster.name}/adopt/"

    dry = platform.post(f"{url}?dry_run=true", body, format="json")
    assert dry.status_code == 200, dry.json()
    [result] = dry.json()["results"]
    assert result["identical"] is False
    assert result["live"] == legacy
    assert result["rendered"] == {
        "port": {"number": 8080, "name": "http-shop-default", "protocol": "HTTP"},
        "hosts": ["default/shop.example.com"],
    }
    assert dry.json()["writes"]["ingress"]["gateway_writes"] == 1
    assert GatewayService.objects.count() == 0
    assert not GatewayState.objects.filter(managed_servers__contains=["legacy-shop"]).exists()

    kubesim.requests.reset()
    assert platform.post(url, body, format="json").status_code == 200
    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    assert len(kubesim.requests.writes("gateways")) == 1
    assert [s["port"]["name"] for s in live_servers(kubesim)] == ["http", "http-shop-default"]


def test_adoption_is_validated_like_any_service(kubesim, platform, apps):
    kubesim.store.add_namespace("default")
    foreign = {"port": {"number": 8080, "name": "other", "protocol": "HTTP"}, "hosts": ["shop.elsewhere.org"]}
    kubesim.store.modify(GATEWAYS, *GATEWAY, lambda gw: gw["spec"]["servers"].append(foreign))
    cluster = sim_cluster(kubesim, "c1")
    body = {"gateway": "ingress", "port_name": "other", "team": "apps", "name": "shop", "namespace": "default"}

    refused = platform.post(f"/api/v1/clusters/{cluster.name}/adopt/", body, format="json")

    assert refused.status_code == 400
    assert "hosts" in refused.json()
    assert GatewayService.objects.count() == 0
    missing = platform.post(f"/api/v1/clusters/{cluster.name}/adopt/", {**body, "port_name": "nope"}, format="json")
    assert missing.status_code == 400 and "port_name" in missing.json()


def test_only_platform_engineers_adopt_and_only_they_see_whose_hosts_a_server_has(kubesim, apps):
    alice = make_user("alice")
    apps.members.add(alice)
    cluster = sim_cluster(kubesim, "c1")
    member, root = api_client(alice), api_client(make_user("root", platform=True))
    body = {"gateway": "ingress", "port_name": "http", "team": "apps", "name": "web", "namespace": "default"}

    assert member.post(f"/api/v1/clusters/{cluster.name}/adopt/", body, format="json").status_code == 403
    assert member.post(f"/api/v1/clusters/{cluster.name}/import-operator-resources/?team=apps").status_code == 403

    seen = member.get(f"/api/v1/clusters/{cluster.name}/gateways/").json()
    assert [(g["traffic_type"], [s["port_name"] for s in g["servers"]]) for g in seen] == [
        ("ingress", ["http"]),
        ("egress", []),
    ]
    assert "team" not in seen[0]["servers"][0]
    platform_view = root.get(f"/api/v1/clusters/{cluster.name}/gateways/").json()
    assert platform_view[0]["servers"][0]["team"] == "none"  # '*' belongs to no team
    detail = root.get(f"/api/v1/clusters/{cluster.name}/gateways/ingress/").json()
    assert detail["servers"] == [{"port_name": "http", "managed": False, "team": "none"}]


def test_an_unreachable_cluster_is_a_400_naming_the_gateway(platform, apps):
    from clusters.models import Cluster

    cluster = Cluster.objects.create(name="nowhere", api_server="")
    body = {"gateway": "ingress", "port_name": "http", "team": "apps", "name": "web", "namespace": "default"}

    adopt = platform.post(f"/api/v1/clusters/{cluster.name}/adopt/", body, format="json")
    moved = platform.post(f"/api/v1/clusters/{cluster.name}/import-operator-resources/?team=apps")

    assert adopt.status_code == 400 and "gateway" in adopt.json()
    assert moved.status_code == 400 and "non_field_errors" in moved.json()
