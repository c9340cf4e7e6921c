import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from clusters.permissions import REQUIRED_PERMISSIONS
from tests.deploy.manifests import DEPLOY, load, manifests, validate

FOLDER = DEPLOY / "target-cluster"
SCRIPT = FOLDER / "print-registration.sh"
PORTAL = {"kind": "ServiceAccount", "name": "gatewayportal", "namespace": "istio-system"}
GATEWAY_NAMESPACE = "istio-system"
CLUSTER_SCOPED = {"namespaces"}
ANY_NAMESPACE = "*"


@pytest.mark.parametrize(("path", "doc"), manifests(FOLDER), ids=lambda v: getattr(v, "name", None) or v["kind"])
def test_manifest_matches_the_kubernetes_schema(path, doc):
    validate(doc)
    assert doc["kind"] != "Namespace", "target-cluster manifests must not create namespaces"


def test_kustomization_lists_every_manifest():
    kustomization = load(FOLDER / "kustomization.yaml")[0]

    listed = set(kustomization["resources"])

    assert listed == {p.name for p in FOLDER.glob("*.yaml") if p.name != "kustomization.yaml"}


def objects(kind: str) -> dict[tuple[str, str], dict]:
    return {
        (doc["metadata"].get("namespace", ""), doc["metadata"]["name"]): doc
        for _, doc in manifests(FOLDER)
        if doc["kind"] == kind
    }


def granted_permissions() -> set[tuple[str, str, str, str]]:
    """(verb, group, resource, namespace) the portal's ServiceAccount gets; "*" = every namespace."""
    roles, cluster_roles = objects("Role"), objects("ClusterRole")
    granted = set()
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for (namespace, name), binding in objects(kind).items():
            assert binding["subjects"] == [PORTAL], f"{kind} {name} must bind only the portal's ServiceAccount"
            ref = binding["roleRef"]
            role = (roles if ref["kind"] == "Role" else cluster_roles).get(
                (namespace if ref["kind"] == "Role" else "", ref["name"])
            )
            assert role is not None, f"{kind} {name} refers to a missing {ref['kind']} {ref['name']}"
            for rule in role["rules"]:
                assert "resourceNames" not in rule and "nonResourceURLs" not in rule
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        if kind == "RoleBinding":
                            scope = namespace
                        else:
                            scope = "" if resource in CLUSTER_SCOPED else ANY_NAMESPACE
                        granted |= {(verb, group, resource, scope) for verb in rule["verbs"]}
    return granted


def required_permissions() -> set[tuple[str, str, str, str]]:
    # A default cluster: Gateways and SIMPLE/MUTUAL secrets in istio-system, team namespaces anywhere.
    scope = {"gateway": GATEWAY_NAMESPACE, "secret": GATEWAY_NAMESPACE, "service": ANY_NAMESPACE, "cluster": ""}
    return {(p.verb, p.group, p.resource, scope[p.namespace_kind]) for p in REQUIRED_PERMISSIONS}


def test_rbac_grants_exactly_what_the_connection_check_asks_for():
    assert granted_permissions() == required_permissions()


def test_required_permissions_are_well_formed():
    assert len(set(REQUIRED_PERMISSIONS)) == len(REQUIRED_PERMISSIONS)
    assert {p.namespace_kind for p in REQUIRED_PERMISSIONS} == {"gateway", "secret", "service", "cluster"}


def test_token_secret_belongs_to_the_portal_service_account():
    (secret,) = objects("Secret").values()

    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == PORTAL["name"]
    assert secret["metadata"]["namespace"] == PORTAL["namespace"]
    assert (PORTAL["namespace"], PORTAL["name"]) in objects("ServiceAccount")


CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
FAKE_KUBECTL = """#!/bin/sh
case "$*" in
  *"config view"*) printf 'https://10.0.0.1:6443' ;;
  *"{.data.token}"*) printf '%s' "$FAKE_TOKEN" | base64 ;;
  *"ca\\.crt"*) printf '%s' "$FAKE_CA" | base64 ;;
  *) echo "unexpected kubectl $*" >&2; exit 1 ;;
esac
"""


def run_script(tmp_path: Path, *args: str, token: str = "sa-token") -> subprocess.CompletedProcess:
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "FAKE_TOKEN": token, "FAKE_CA": CA}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, check=False)


def test_print_registration_prints_the_cluster_registration_body(tmp_path):
    result = run_script(tmp_path, "prod-eu-1", "--label", "env=prod", "--label", "region=eu")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "name": "prod-eu-1",
        "api_server": "https://10.0.0.1:6443",
        "ca_cert": CA.rstrip("\n"),
        "token": "sa-token",
        "labels": {"env": "prod", "region": "eu"},
        "ingress_gateway": "istio-system/ingress-gateway",
        "egress_gateway": "istio-system/egress-gateway",
    }


def test_print_registration_takes_an_explicit_api_server_and_gateways(tmp_path):
    result = run_script(
        tmp_path,
        "edge",
        "--api-server",
        "https://edge.example.com",
        "--ingress-gateway",
        "gw/in",
        "--egress-gateway",
        "gw/out",
    )

    body = json.loads(result.stdout)
    assert (body["api_server"], body["ingress_gateway"], body["egress_gateway"], body["labels"]) == (
        "https://edge.example.com",
        "gw/in",
        "gw/out",
        {},
    )


def test_print_registration_rejects_a_label_without_value(tmp_path):
    result = run_script(tmp_path, "prod-eu-1", "--label", "env")

    assert result.returncode == 2
    assert "--label needs KEY=VALUE" in result.stderr


def test_print_registration_fails_while_the_token_is_not_issued(tmp_path):
    result = run_script(tmp_path, "prod-eu-1", token="")

    assert result.returncode == 1
    assert "no token yet" in result.stderr
    assert result.stdout == ""
