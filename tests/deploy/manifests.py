"""Loading and schema-checking the Kubernetes manifests under deploy/."""

from __future__ import annotations

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
