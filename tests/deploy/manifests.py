"""Loading and schema-checking the Kubernetes manifests under deploy/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# The oldest Kubernetes minor we support running the portal on and managing; the schemas are bundled
# in the kubernetes-validate wheel, so validation needs no network.
KUBERNETES_VERSION = "1.30.0"


def load(path: Path) -> list[dict[str, Any]]:
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def manifests(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object in the YAML files of `folder` (kustomization files excluded)."""
    return [
        (path, doc)
        for path in sorted(folder.rglob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load(path)
    ]


def validate(doc: dict[str, Any]) -> None:
    """Strict schema validation: unknown fields are errors, not silently dropped by the API server."""
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


SETTINGS = DEPLOY.parent / "gatewayportal" / "settings.py"
# Read by processes rather than by Django settings: gunicorn (WEB_CONCURRENCY) and prometheus_client.
# Read by libraries or gatewayportal.outbound, not through django-environ.
PROCESS_ENV = frozenset({"WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"})
REQUIRED_SECRET_ENV = frozenset({"SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL", "CELERY_BROKER_URL"})


def settings_env_names() -> set[str]:
    """Every environment variable gatewayportal/settings.py reads through django-environ."""
    return set(re.findall(r'\benv(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', SETTINGS.read_text()))
