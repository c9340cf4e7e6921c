"""Golden files for rendering: every protocol, mode and TLS option -> server block and Secret.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/services/test_rendering.py`,
then review the diff of tests/services/golden/ like any other change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from services.rendering import (
    GatewaySettings,
    credential_name,
    port_name,
    render_secret,
    render_server,
    secret_target_namespace,
)
from services.validation import validate_server
from tests.factories import service_spec

GOLDEN = Path(__file__).resolve().parent / "golden"
SERVICE_ID = "3f0c5a4e-0000-4000-8000-000000000001"
MATERIAL = {"cert": "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n", "key": "KEY", "ca_cert": None}
CA_MATERIAL = {**MATERIAL, "ca_cert": "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"}


def spec(**overrides: Any) -> dict[str, Any]:
    return service_spec(**{"clusters": ["prod-eu-1"], **overrides})


SECRET = {"tls_secret": {"sha256_fingerprint": "ab" * 32}}
REF = {"tls_secret_ref": {"secret_name": "existing-secret"}}
PATHS = {"tls_secret_path": {"cert_path": "/etc/istio/certs/tls.crt", "key_path": "/etc/istio/certs/tls.key"}}
MUTUAL_PATHS = {"tls_secret_path": {**PATHS["tls_secret_path"], "ca_cert_path": "/etc/istio/certs/ca.crt"}}

CASES: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "http": (spec(), None),
    "http-redirect": (spec(https_redirect=True), None),
    "http2": (spec(protocol="HTTP2", port=8080), None),
    "grpc": (spec(protocol="GRPC", port=9090), None),
    "tcp": (spec(protocol="TCP", port=5432), None),
    "mongo": (spec(protocol="MONGO", port=27017), None),
    "https-simple-secret": (spec(protocol="HTTPS", port=443, mode="SIMPLE", tls_options=SECRET), MATERIAL),
    "https-simple-secret-versions": (
        spec(
            protocol="HTTPS",
            port=443,
            mode="SIMPLE",
            tls_options=SECRET,
            min_protocol_version="TLSV1_2",
            max_protocol_version="TLSV1_3",
        ),
        MATERIAL,
    ),
    "https-simple-ref": (spec(protocol="HTTPS", port=443, mode="SIMPLE", tls_options=REF), None),
    "https-simple-path": (spec(protocol="HTTPS", port=443, mode="SIMPLE", tls_options=PATHS), None),
    "https-mutual-secret": (spec(protocol="HTTPS", port=443, mode="MUTUAL", tls_options=SECRET), CA_MATERIAL),
    "https-mutual-path": (spec(protocol="HTTPS", port=443, mode="MUTUAL", tls_options=MUTUAL_PATHS), None),
    "https-passthrough": (spec(protocol="HTTPS", port=443, mode="PASSTHROUGH"), None),
    "https-passthrough-secret": (spec(protocol="HTTPS", port=443, mode="PASSTHROUGH", tls_options=SECRET), MATERIAL),
    "tls-simple-secret": (spec(protocol="TLS", port=9443, mode="SIMPLE", tls_options=SECRET), MATERIAL),
    "tls-passthrough": (spec(protocol="TLS", port=9443, mode="PASSTHROUGH"), None),
    "egress-https-simple-secret": (
        spec(protocol="HTTPS", port=443, mode="SIMPLE", tls_options=SECRET, traffic_type="egress"),
        MATERIAL,
    ),
}
SETTINGS = {
    "scoped": GatewaySettings(namespace_scoped_hosts=True, secret_namespace="istio-system"),
    "plain": GatewaySettings(namespace_scoped_hosts=False, secret_namespace="istio-ingress"),
}


def rendered(case: str, settings_name: str) -> dict[str, Any]:
    service_spec, material = CASES[case]
    settings = SETTINGS[settings_name]
    return {
        "server": render_server(service_spec, settings),
        "credential_name": credential_name(service_spec),
        "secret": render_secret(service_spec, material, settings, service_id=SERVICE_ID, team="payments"),
    }


@pytest.mark.parametrize("settings_name", sorted(SETTINGS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_matches_golden_file(case: str, settings_name: str) -> None:
    path = GOLDEN / f"{case}.{settings_name}.json"
    actual = rendered(case, settings_name)
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    assert actual == json.loads(path.read_text()), f"{path.name} differs; see the module docstring to regenerate"


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rendered_block_passes_istio_admission(case: str) -> None:
    server = render_server(CASES[case][0], SETTINGS["scoped"])
    assert [i for i in validate_server(server) if i.severity == "error"] == []


def test_naming_follows_the_operator() -> None:
    service_spec = spec(name="Shop", namespace="Payments", protocol="HTTPS")
    assert port_name(service_spec) == "https-shop-payments"
    assert credential_name(spec(protocol="HTTPS", mode="SIMPLE", tls_options=SECRET)) == "checkout-payments-secret"
    assert credential_name(spec(protocol="HTTPS", mode="SIMPLE", tls_options=REF)) == "existing-secret"
    assert credential_name(spec(protocol="HTTPS", mode="PASSTHROUGH", tls_options=SECRET)) is None


def test_secret_namespace_depends_on_mode() -> None:
    settings = SETTINGS["plain"]
    assert secret_target_namespace(spec(mode="SIMPLE"), settings) == "istio-ingress"
    assert secret_target_namespace(spec(mode="MUTUAL"), settings) == "istio-ingress"
    assert secret_target_namespace(spec(mode="PASSTHROUGH"), settings) == "payments"
