"""The shipped manifests run the portal hardened: the Kubernetes ConfigMap and Secret and the compose file carry
the production variables, only variables the settings read, and secrets only as placeholders.

One list drives it all, `tests.deploy.manifests.PRODUCTION_ENV` (what `check --deploy` needs, also used by
test_production_settings.py); docs/operations.md's "Production behind TLS" block must list the same values.
The ConfigMap lacked the secure cookie, HSTS and proxy SSL header variables: `check --deploy` on it warned.
"""

from __future__ import annotations

import re

import yaml

from tests.deploy.manifests import (
    CHECK_DEPLOY,
    DEPLOY,
    LEFT_TO_DEFAULTS,
    PROCESS_ENV,
    PRODUCTION_ENV,
    SECRET_ENV,
    compose_value,
    load,
    manage,
    settings_env_names,
)

BASE = DEPLOY / "kubernetes" / "base"
CONFIG = load(BASE / "configmap.yaml")[0]["data"]
SECRET = load(BASE / "secret.yaml")[0]["stringData"]
COMPOSE = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())["services"]
PORTAL_SERVICES = ("migrate", "web", "worker", "beat")
OPERATIONS = (DEPLOY.parent / "docs" / "operations.md").read_text()
README = (DEPLOY.parent / "README.md").read_text()
KNOWN = settings_env_names() | PROCESS_ENV


def test_every_key_is_a_variable_the_settings_read():
    assert set(CONFIG) <= KNOWN, set(CONFIG) - KNOWN
    assert set(SECRET) <= KNOWN, set(SECRET) - KNOWN
    for name in PORTAL_SERVICES:
        environment = set(COMPOSE[name]["environment"])
        assert environment <= KNOWN, (name, environment - KNOWN)


def test_secrets_are_in_the_secret_as_placeholders_and_nowhere_else():
    assert set(SECRET) == SECRET_ENV
    assert not set(CONFIG) & SECRET_ENV
    for name, value in SECRET.items():
        if name != "CELERY_BROKER_URL":  # a broker address without a password
            assert "REPLACE-ME" in value, name


def test_the_config_map_carries_the_production_values():
    for name, value in PRODUCTION_ENV.items():
        if name in SECRET_ENV:
            assert name in SECRET, name
        else:
            assert CONFIG.get(name) == value, (name, CONFIG.get(name), value)


def test_every_setting_is_in_the_manifests_or_left_to_its_default_on_purpose():
    placed = set(CONFIG) | set(SECRET)
    assert KNOWN - placed == set(LEFT_TO_DEFAULTS), (KNOWN - placed) ^ set(LEFT_TO_DEFAULTS)


def test_the_manifests_pass_check_deploy(tmp_path):
    """The ConfigMap as shipped, with the Secret's placeholders filled in, reports nothing."""
    environment = {**CONFIG, **SECRET, **{k: v for k, v in PRODUCTION_ENV.items() if k in SECRET_ENV}}
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path / 'check.db'}"

    result = manage(CHECK_DEPLOY, environment, tmp=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr


def test_compose_takes_every_production_variable_from_the_environment(tmp_path):
    """Locally it serves plain HTTP; given the production values (shell or .env), it passes check --deploy."""
    environment = COMPOSE["web"]["environment"]
    assert set(PRODUCTION_ENV) <= set(environment), set(PRODUCTION_ENV) - set(environment)
    local = {name: compose_value(value, {"FIELD_ENCRYPTION_KEYS": "x"}) for name, value in environment.items()}
    production = {name: compose_value(value, PRODUCTION_ENV) for name, value in environment.items()}

    assert local["SESSION_COOKIE_SECURE"] == local["SECURE_SSL_REDIRECT"] == "false"
    assert {name: production[name] for name in PRODUCTION_ENV} == PRODUCTION_ENV
    for values in (local, production):
        values["DATABASE_URL"] = f"sqlite:///{tmp_path / 'check.db'}"
    local["FIELD_ENCRYPTION_KEYS"] = PRODUCTION_ENV["FIELD_ENCRYPTION_KEYS"]
    loads = manage(["check"], local, tmp=tmp_path)
    deploy = manage(CHECK_DEPLOY, production, tmp=tmp_path)

    assert loads.returncode == 0, loads.stdout + loads.stderr
    assert deploy.returncode == 0 and "WARNINGS" not in deploy.stdout + deploy.stderr, deploy.stdout + deploy.stderr


def test_operations_md_lists_the_same_production_values():
    block = OPERATIONS.split("**Production behind TLS.**", 1)[1].split("```", 2)[1]
    documented = dict(line.split("=", 1) for line in block.strip().splitlines())

    assert documented.items() <= PRODUCTION_ENV.items(), documented.items() - PRODUCTION_ENV.items()
    hardening = {name for name in PRODUCTION_ENV if name.startswith(("SECURE_", "SESSION_", "CSRF_COOKIE"))}
    assert hardening <= set(documented), hardening - set(documented)


def test_readme_documents_only_variables_the_settings_read():
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", "\n".join(line.split("|")[1] for line in _rows(table))))

    assert names <= KNOWN, names - KNOWN
    assert set(PRODUCTION_ENV) | set(CONFIG) | set(SECRET) <= names, (set(CONFIG) | set(SECRET)) - names


def _rows(table: str) -> list[str]:
    return [line for line in table.splitlines() if line.startswith("| `")]
