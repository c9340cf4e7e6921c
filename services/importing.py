"""Import of the operator's `GatewayService` custom resources (YAML), all or nothing."""

from __future__ import annotations

from typing import Any

import yaml
from django.db import transaction

from gatewayportal import yamlsafe
from gatewayportal.exceptions import DomainError
from services import actions
from services.models import GatewayService, Team

API_VERSIONS = ("gatewayservice.xunholy.github.com/v1alpha1", "crd.xunholy.github.com/v1alpha1")
KIND = "GatewayService"


def parse_documents(text: str) -> list[Any]:
    try:
        return list(yamlsafe.load_all(text))
    except yaml.YAMLError as exc:
        raise DomainError({"non_field_errors": [f"The body is not valid YAML: {exc}"]}) from exc


def is_gateway_service(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == KIND


def to_payload(document: dict[str, Any], *, team: Team, clusters: list[str]) -> dict[str, Any]:
    """The operator's camelCase resource -> the API's snake_case payload."""
    if document.get("apiVersion") not in API_VERSIONS:
        raise DomainError({"apiVersion": [f"Expected one of: {', '.join(API_VERSIONS)}."]})
    metadata = document.get("metadata") or {}
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise DomainError({"spec": ["A GatewayService needs a `spec` mapping."]})
    payload: dict[str, Any] = {
        "name": spec.get("name") or metadata.get("name"),
        "team": team.slug,
        "namespace": metadata.get("namespace") or (team.namespaces[0] if team.namespaces else None),
        "hosts": spec.get("hosts"),
        "port": spec.get("port"),
        "protocol": spec.get("protocol"),
        "traffic_type": spec.get("trafficType"),
        "clusters": clusters,
    }
    if spec.get("mode"):
        payload["mode"] = spec["mode"]
    tls_options = _tls_options(spec.get("tlsOptions") or {})
    if tls_options:
        payload["tls_options"] = tls_options
    return payload


def _tls_options(options: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if options.get("tlsSecret"):
        secret = options["tlsSecret"]
        result["tls_secret"] = {"cert": secret.get("cert"), "key": secret.get("key")}
        if secret.get("caCert"):
            result["tls_secret"]["ca_cert"] = secret["caCert"]
    if options.get("tlsSecretRef"):
        result["tls_secret_ref"] = {"secret_name": options["tlsSecretRef"].get("secretName")}
    if options.get("tlsSecretPath"):
        paths = options["tlsSecretPath"]
        result["tls_secret_path"] = {"cert_path": paths.get("certPath"), "key_path": paths.get("keyPath")}
        if paths.get("caCertPath"):
            result["tls_secret_path"]["ca_cert_path"] = paths["caCertPath"]
    return result


def import_documents(*, text: str, team: Team, clusters: list[str], user, is_platform: bool) -> list[GatewayService]:
    """Creates one service per GatewayService document; other kinds (e.g. Secrets) are skipped.

    Any refused document refuses the whole import: the error names its index and field.
    """
    documents = parse_documents(text)
    errors: dict[str, Any] = {}
    created: list[GatewayService] = []
    with transaction.atomic():
        for index, document in enumerate(documents):
            if not is_gateway_service(document):
                continue
            try:
                payload = to_payload(document, team=team, clusters=clusters)
                service, _ = actions.gateway_service_create_from_payload(
                    payload=payload, team=team, is_platform=is_platform, user=user
                )
                created.append(service)
            except DomainError as exc:
                errors[str(index)] = exc.errors
        if not created and not errors:
            errors["non_field_errors"] = [
                f"No {KIND} document found; expected apiVersion one of {', '.join(API_VERSIONS)}."
            ]
        if errors:
            transaction.set_rollback(True)
    if errors:
        raise DomainError({"documents": errors})
    return created
