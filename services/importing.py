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


def load_documents(text: str) -> list[Any]:
    """Every document of a YAML (or JSON) stream: the module's one YAML call."""
    try:
        return list(yamlsafe.load_all(text))
    except yaml.YAMLError as exc:
        raise DomainError({"non_field_errors": [f"The body is not valid YAML: {exc}"]}) from exc


def expand_documents(documents: list[Any]) -> list[Any]:
    """A `kind: List` document (what `kubectl get -o yaml` prints) stands for its items; empty documents go."""
    expanded: list[Any] = []
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "List" and isinstance(document.get("items"), list):
            expanded.extend(expand_documents(document["items"]))
        elif document is not None:
            expanded.append(document)
    return expanded


def parse_documents(text: str) -> list[Any]:
    """The documents of a YAML or JSON body; a JSON array (or a YAML sequence) stands for its items."""
    documents: list[Any] = []
    for document in load_documents(text):
        documents.extend(document if isinstance(document, list) else [document])
    return expand_documents(documents)


def is_gateway_service(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == KIND


def to_payload(document: dict[str, Any], *, team: Team, clusters: list[str]) -> dict[str, Any]:
    """The operator's camelCase resource -> the API's snake_case payload."""
    if document.get("apiVersion") not in API_VERSIONS:
        raise DomainError({"apiVersion": [f"Expected one of: {', '.join(API_VERSIONS)}."]})
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        raise DomainError({"metadata": ["A GatewayService needs a `metadata` mapping with its `name`."]})
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise DomainError({"spec": ["A GatewayService needs a `spec` mapping."]})
    unknown = sorted(set(spec) - OPERATOR_SPEC_FIELDS, key=str)
    if unknown:
        accepted = ", ".join(sorted(OPERATOR_SPEC_FIELDS))
        raise DomainError({"spec": {str(name): [f"Unknown field. Accepted fields: {accepted}."] for name in unknown}})
    payload: dict[str, Any] = {
        # The operator dropped `spec.name`: the resource's own name wins, the old field is a fallback.
        "name": metadata.get("name") or spec.get("name"),
        "team": team.slug,
        "namespace": metadata.get("namespace") or (team.namespaces[0] if team.namespaces else None),
        "hosts": spec.get("hosts"),
        "port": spec.get("port"),
        "protocol": spec.get("protocol"),
        "traffic_type": spec.get("trafficType"),
        "clusters": clusters,
    }
    for camel, snake in (
        ("mode", "mode"),
        ("httpsRedirect", "https_redirect"),
        ("minProtocolVersion", "min_protocol_version"),
        ("maxProtocolVersion", "max_protocol_version"),
    ):
        if spec.get(camel) is not None:
            payload[snake] = spec[camel]
    tls_options = _tls_options(spec.get("tlsOptions") or {}, ca_certificates=spec.get("caCertificates"))
    if tls_options:
        payload["tls_options"] = tls_options
    return payload


# Every field of the operator's CRD (kubesim/crds/gatewayservice-crds.yaml); `name` is its dropped older field.
OPERATOR_SPEC_FIELDS = frozenset(
    {
        "name",
        "hosts",
        "port",
        "protocol",
        "mode",
        "trafficType",
        "tlsOptions",
        "httpsRedirect",
        "minProtocolVersion",
        "maxProtocolVersion",
        "caCertificates",
    }
)


# The operator's TLS sources -> the API's: (its source, ours, {its field: ours}, (its CA field, ours) or None).
_TLS_SOURCES = (
    ("tlsSecret", "tls_secret", {"cert": "cert", "key": "key"}, ("caCert", "ca_cert")),
    ("tlsSecretRef", "tls_secret_ref", {"secretName": "secret_name"}, None),
    (
        "tlsSecretPath",
        "tls_secret_path",
        {"certPath": "cert_path", "keyPath": "key_path"},
        ("caCertPath", "ca_cert_path"),
    ),
)


def _tls_options(options: Any, *, ca_certificates: Any = None) -> dict[str, Any]:
    """The operator's `tlsOptions` (+ `caCertificates`, its MUTUAL CA) -> the API's `tls_options`.

    `caCertificates` is Istio's CA bundle: a file path goes with `tlsSecretPath`, PEM text with `tlsSecret`, each
    source's own CA field first.
    """
    if not isinstance(options, dict):
        raise DomainError({"spec": {"tlsOptions": ["Expected a mapping: tlsSecret, tlsSecretRef or tlsSecretPath."]}})
    for option, *_ in _TLS_SOURCES:
        if options.get(option) is not None and not isinstance(options[option], dict):
            raise DomainError({"spec": {"tlsOptions": {option: ["Expected a mapping."]}}})
    result: dict[str, Any] = {}
    for option, ours, fields, ca_field in _TLS_SOURCES:
        source = options.get(option)
        if not source:
            continue
        result[ours] = {mine: source.get(theirs) for theirs, mine in fields.items()}
        ca = ca_field and (source.get(ca_field[0]) or ca_certificates)
        if ca:
            result[ours][ca_field[1]] = ca
    if ca_certificates and not ({"tls_secret", "tls_secret_path"} & set(result)):
        raise DomainError(
            {
                "spec": {
                    "caCertificates": [
                        "Accepted with tlsOptions.tlsSecret (PEM text) or tlsOptions.tlsSecretPath (a file path) only."
                    ]
                }
            }
        )
    return result


def import_documents(*, text: str, team: Team, clusters: list[str], user, is_platform: bool) -> list[GatewayService]:
    """Creates one service per GatewayService document; other kinds (e.g. Secrets) are skipped.

    Any refused document refuses the whole import: the error names its index and field.
    """
    documents = parse_documents(text)
    actions.check_batch_size(team, sum(1 for document in documents if is_gateway_service(document)))
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
