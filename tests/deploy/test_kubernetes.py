import re
import runpy
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.deploy.manifests import (
    DEPLOY,
    PROCESS_ENV,
    SECRET_ENV,
    load,
    manifests,
    settings_env_names,
    validate,
)

BASE = DEPLOY / "kubernetes" / "base"
BASE_MANIFESTS = manifests(BASE)


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in BASE_MANIFESTS if doc["kind"] == kind}


def pod_templates() -> dict[str, dict]:
    return {name: doc["spec"]["template"] for kind in ("Deployment", "Job") for name, doc in by_kind(kind).items()}


@pytest.mark.parametrize(("path", "doc"), BASE_MANIFESTS, ids=lambda v: getattr(v, "name", None) or v["kind"])
def test_manifest_matches_the_kubernetes_schema(path, doc):
    validate(doc)


def test_kustomization_lists_every_manifest():
    kustomization = load(BASE / "kustomization.yaml")[0]

    assert set(kustomization["resources"]) == {p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_kustomize_build_renders_valid_objects_in_the_portal_namespace():
    rendered = subprocess.run(["kubectl", "kustomize", str(BASE)], capture_output=True, text=True, check=True).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]

    assert len(docs) == len(BASE_MANIFESTS)
    for doc in docs:
        validate(doc)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "gatewayportal"


@pytest.mark.parametrize("name", sorted(pod_templates()))
def test_pods_run_non_root_read_only_and_bounded(name):
    spec = pod_templates()[name]["spec"]

    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
        assert "memory" in container["resources"]["limits"], container["name"]


def test_web_runs_gunicorn_with_health_probes():
    (container,) = pod_templates()["gatewayportal-web"]["spec"]["containers"]

    assert container["command"][0] == "gunicorn"
    assert container["command"][-1] == "gatewayportal.wsgi"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_worker_and_beat_run_celery_and_beat_is_a_singleton():
    worker = pod_templates()["gatewayportal-worker"]["spec"]["containers"][0]
    beat_deployment = by_kind("Deployment")["gatewayportal-beat"]
    beat = beat_deployment["spec"]["template"]["spec"]["containers"][0]

    assert worker["command"][:4] == ["celery", "-A", "gatewayportal", "worker"]
    assert beat["command"][:4] == ["celery", "-A", "gatewayportal", "beat"]
    assert beat_deployment["spec"]["replicas"] == 1
    assert beat_deployment["spec"]["strategy"]["type"] == "Recreate"


def test_migrate_job_runs_migrations():
    (container,) = pod_templates()["gatewayportal-migrate"]["spec"]["containers"]

    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]


def test_hpa_scales_the_worker_deployment():
    (hpa,) = by_kind("HorizontalPodAutoscaler").values()

    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "gatewayportal-worker")
    assert "replicas" not in by_kind("Deployment")["gatewayportal-worker"]["spec"], "the HPA owns the replica count"


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_service_and_network_policies_select_existing_pods():
    pod_labels = [template["metadata"]["labels"] for template in pod_templates().values()]
    (service,) = by_kind("Service").values()

    assert matches(service["spec"]["selector"], pod_templates()["gatewayportal-web"]["metadata"]["labels"])
    for name, policy in by_kind("NetworkPolicy").items():
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        assert any(matches(selector, labels) for labels in pod_labels), name


def test_deployments_select_their_own_pods():
    for name, deployment in by_kind("Deployment").items():
        spec = deployment["spec"]
        assert matches(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]), name


def test_environment_comes_from_the_config_map_and_secret_that_exist():
    config_maps, secrets = set(by_kind("ConfigMap")), set(by_kind("Secret"))

    for name, template in pod_templates().items():
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, name
                else:
                    assert source["secretRef"]["name"] in secrets, name


def test_config_map_and_secret_use_only_variables_the_settings_read():
    (config,) = by_kind("ConfigMap").values()
    (secret,) = by_kind("Secret").values()
    known = settings_env_names() | PROCESS_ENV

    assert set(config["data"]) <= known, set(config["data"]) - known
    assert set(secret["stringData"]) == SECRET_ENV
    assert not set(config["data"]) & SECRET_ENV, "secrets belong in the Secret, not the ConfigMap"
    assert config["data"]["LOG_FORMAT"] == "json"
    assert config["data"]["DEBUG"] == "false"


def test_secret_is_a_template_with_placeholders():
    (secret,) = by_kind("Secret").values()

    for key in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL", "METRICS_TOKEN", "OIDC_CLIENT_SECRET"):
        assert "REPLACE-ME" in secret["stringData"][key], key


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_builds_a_non_root_gunicorn_image():
    instructions = dockerfile_instructions()
    users = [arg for op, arg in instructions if op == "USER"]
    (cmd,) = [arg for op, arg in instructions if op == "CMD"]

    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "pip install -r requirements.txt" in " ".join(arg for op, arg in instructions if op == "RUN")
    assert "collectstatic --noinput" in " ".join(arg for op, arg in instructions if op == "RUN")
    assert "gunicorn" in cmd and "gatewayportal.wsgi" in cmd


def test_dockerfile_user_matches_the_pods_run_as_user():
    (user,) = [arg for op, arg in dockerfile_instructions() if op == "USER"]

    for template in pod_templates().values():
        assert str(template["spec"]["securityContext"]["runAsUser"]) == user.split(":")[0]


def test_gunicorn_config_clears_stale_metric_files_on_start(tmp_path, monkeypatch):
    (tmp_path / "counter_1.db").write_text("stale")
    (tmp_path / "keep.txt").write_text("not a metrics file")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))

    config["on_starting"](server=None)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert config["bind"] == "0.0.0.0:8000"


def test_gunicorn_workers_warm_up_and_freeze_what_they_loaded(monkeypatch):
    from gatewayportal import warmup

    calls = []
    monkeypatch.setattr(warmup, "warm_up", lambda **kwargs: calls.append(kwargs))
    config = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))

    config["post_worker_init"](worker=None)

    assert calls == [{"freeze": True}]


def test_worker_metrics_sidecar_refuses_to_start_without_the_directory(monkeypatch):
    env = {"PATH": "/usr/bin:/bin"}

    result = subprocess.run(
        [sys.executable, "-m", "gatewayportal.metrics", "--port", "0"],
        env=env,
        cwd=DEPLOY.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 1
    assert "PROMETHEUS_MULTIPROC_DIR must be set" in result.stderr
