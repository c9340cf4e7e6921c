"""Loading and schema-checking the Kubernetes manifests under deploy/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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
# Everything the Secret holds; every other variable of the kustomize base is in the ConfigMap.
SECRET_ENV = REQUIRED_SECRET_ENV | {"METRICS_TOKEN", "OIDC_CLIENT_SECRET"}

# The production variables docs/operations.md documents, with stand-in secrets: with them `check --deploy` reports
# nothing. The one list: test_production_settings runs the check with it, the ConfigMap must carry its non-secret
# values and the Secret its secret names, the compose file must accept each, and the values operations.md lists
# under "Production behind TLS" must be these.
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
    "FIELD_ENCRYPTION_KEYS": "0UW2N0yqGo0X5uSm_0ZbM3nnAV6yQ7v4J0u6cEoXh4k=",
    "ALLOWED_HOSTS": "gatewayportal.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://gatewayportal.example.com",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "SECURE_SSL_REDIRECT": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}

# Variables the settings read that the kustomize base leaves to their defaults on purpose. A new setting must be
# put in the ConfigMap or Secret, or named here with the reason.
LEFT_TO_DEFAULTS = {
    "REDIS_URL": "CELERY_BROKER_URL (in the Secret) is Redis and serves the locks and the cache too",
    "CACHE_URL": "REDIS_URL's default",
    "CELERY_TASK_ALWAYS_EAGER": "false whenever a broker is set",
    "AUDIT_RETENTION_DAYS": "unset keeps every event (an empty value is not a number); a retention is a decision",
    "AUDIT_ARCHIVE_DIR": "read only with AUDIT_RETENTION_DAYS, and needs a writable volume",
    "SSL_CERT_FILE": "only with an internal CA, whose file the operator mounts",
    "REQUESTS_CA_BUNDLE": "as SSL_CERT_FILE",
    "LIST_CACHE_SECONDS": "entries are keyed on data versions, never stale: the default only bounds their age",
    "LIST_CACHE_ENTRIES": "each web process keeps at most this many pages (about 9 MB at the default)",
    "LIST_CACHE_URL": "unset keeps the pages in each process, which answers faster than a Redis round trip",
}

COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<word>[^}]*))?\}")


def compose_value(value: Any, shell: dict[str, str]) -> str:
    """A compose `environment` value as compose interpolates it from `shell` (`${X}`, `${X:-d}`, `${X:?err}`)."""

    def one(match: re.Match) -> str:
        name, op, word = match["name"], match["op"] or "", match["word"] or ""
        given = shell.get(name)
        if op.startswith(":") and not given or given is None:
            if op.endswith("?"):
                raise KeyError(f"{name}: {word}")
            return word if op else ""
        return given

    return COMPOSE_VARIABLE.sub(one, str(value)).replace("$$", "$")


def manage(args: list[str], environment: dict[str, str], *, tmp: Path) -> subprocess.CompletedProcess:
    """`manage.py <args>` with `environment` and nothing else of the test run's environment (PATH aside), a
    writable metrics directory, and SQLite unless `environment` names a database."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environment}
    env.update(DJANGO_SETTINGS_MODULE="gatewayportal.settings", PROMETHEUS_MULTIPROC_DIR=str(tmp))
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'check.db'}")
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=DEPLOY.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


CHECK_DEPLOY = ["check", "--deploy", "--tag", "security", "--fail-level", "WARNING"]


def settings_env_names() -> set[str]:
    """Every environment variable gatewayportal/settings.py reads through django-environ."""
    return set(re.findall(r'\benv(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', SETTINGS.read_text()))
