import re

import jsonschema
import pytest
import yaml

from tests.deploy.manifests import DEPLOY, PROCESS_ENV, REQUIRED_SECRET_ENV, load, settings_env_names, validate

ROOT = DEPLOY.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PORTAL_SERVICES = ("migrate", "web", "worker", "beat")


def test_every_service_is_there():
    assert set(SERVICES) == {"postgres", "redis", *PORTAL_SERVICES, "k3s", "cluster-setup"}
    assert SERVICES["postgres"]["image"].startswith("postgres:15")
    assert SERVICES["redis"]["image"].startswith("redis:7")


def test_cluster_services_are_only_in_the_cluster_profile():
    for name, service in SERVICES.items():
        expected = ["cluster"] if name in ("k3s", "cluster-setup") else None
        assert service.get("profiles") == expected, name
    assert SERVICES["k3s"]["image"].startswith("rancher/k3s:")
    assert SERVICES["k3s"]["privileged"] is True


def test_portal_services_start_in_order():
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert SERVICES["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        depends_on = SERVICES[name]["depends_on"]
        assert depends_on["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends_on["redis"] == {"condition": "service_healthy"}, name
    assert SERVICES["cluster-setup"]["depends_on"] == {"k3s": {"condition": "service_healthy"}}


def test_portal_services_run_the_image_with_the_right_command():
    for name in PORTAL_SERVICES:
        assert SERVICES[name]["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}, name
    assert (ROOT / "deploy" / "Dockerfile").is_file()
    assert SERVICES["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert SERVICES["web"]["command"][0] == "gunicorn"
    assert SERVICES["worker"]["command"][:4] == ["celery", "-A", "gatewayportal", "worker"]
    assert SERVICES["beat"]["command"][:4] == ["celery", "-A", "gatewayportal", "beat"]


@pytest.mark.parametrize("name", PORTAL_SERVICES)
def test_environment_names_are_the_ones_the_settings_read(name):
    environment = SERVICES[name]["environment"]
    known = settings_env_names() | PROCESS_ENV

    assert set(environment) <= known, set(environment) - known
    assert REQUIRED_SECRET_ENV <= set(environment)


def test_environment_points_at_the_compose_services():
    environment = SERVICES["web"]["environment"]

    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    # No key is baked in: compose refuses to start until one is given.
    assert re.fullmatch(r"\$\{FIELD_ENCRYPTION_KEYS:\?.+\}", environment["FIELD_ENCRYPTION_KEYS"])


def test_cluster_setup_mounts_existing_deploy_folders_and_applies_them():
    command = SERVICES["cluster-setup"]["command"][0]
    for volume in SERVICES["cluster-setup"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).is_dir(), source
    for applied in ("/deploy/istio/gateway-crd.yaml", "/deploy/istio/local-gateways.yaml", "-k /deploy/target-cluster"):
        assert applied in command


def test_named_volumes_are_declared():
    used = {
        volume.split(":")[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
        if not volume.startswith(".")
    }

    assert used == set(COMPOSE["volumes"])


def gateway_schema() -> dict:
    (crd,) = load(DEPLOY / "istio" / "gateway-crd.yaml")
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("doc", load(DEPLOY / "istio" / "local-gateways.yaml"), ids=lambda d: d["metadata"]["name"])
def test_local_cluster_objects_are_valid(doc):
    if doc["kind"] == "Gateway":
        assert doc["apiVersion"] == "networking.istio.io/v1"
        jsonschema.validate(doc, gateway_schema())
    else:
        validate(doc)


def test_local_gateways_are_the_cluster_defaults():
    gateways = {
        f"{d['metadata']['namespace']}/{d['metadata']['name']}"
        for d in load(DEPLOY / "istio" / "local-gateways.yaml")
        if d["kind"] == "Gateway"
    }

    assert gateways == {"istio-system/ingress-gateway", "istio-system/egress-gateway"}


def test_shipped_gateway_crd_is_the_one_kubesim_validates_against():
    # Both are verbatim copies of Istio's CRD (shared/istio/gateway-crd.yaml); they must not drift apart.
    kubesim_crd = ROOT / "kubesim" / "crds" / "gateway-crd.yaml"

    assert (DEPLOY / "istio" / "gateway-crd.yaml").read_text() == kubesim_crd.read_text()
