"""Declarative apply and export of a team's gateway services: all or nothing, idempotent, pruned per apply set.

A document is the operator's `GatewayService` (either API group; targets from the request) or the portal's own
`apiVersion: gatewayportal.io/v1`, `kind: GatewayService` whose `spec` is the API's payload. Each document goes
through the same doors as the API: `services.specs.parse`, then the create or update action. An update that
changes nothing writes nothing (no revision, no audit event, no reconcile), so applying a file twice is a no-op.

Pruning follows kubectl's ApplySets: a service remembers the apply set that last applied it, and `prune` deletes
only the team's services of that set that the documents no longer name.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import yaml
from django.db import transaction

from audit.actions import diff
from gatewayportal.exceptions import DomainError
from services import actions, importing, specs, validation
from services.models import GatewayService, Team

API_VERSION = "gatewayportal.io/v1"
KIND = "GatewayService"
APPLY_SET = re.compile(specs.DNS_LABEL)
# Documents an operator's repository carries beside its GatewayServices, which the portal has no use for.
IGNORED_KINDS = frozenset({"Secret"})
# The stored spec's identity lives in `metadata`; the rest is the portal-format `spec`.
_IDENTITY = ("name", "namespace")


@dataclass(frozen=True)
class Result:
    index: int | None
    name: str
    namespace: str
    action: str  # created | updated | unchanged | deleted
    revision: int | None
    diff: dict[str, list[Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_apply_set(value: str | None) -> str:
    value = (value or "").strip()
    if not value or len(value) > 63 or not APPLY_SET.match(value):
        raise DomainError(
            {
                "apply_set": [
                    "Required: the name of the set these documents form (a DNS-1123 label: lower-case letters, "
                    "digits and '-', at most 63 characters). Prune removes only services of this set."
                ]
            }
        )
    return value


def to_payload(document: Any, *, team: Team, clusters: list[str]) -> dict[str, Any] | None:
    """A document -> the API's payload; None for a document the apply ignores (an operator's Secret)."""
    if not isinstance(document, dict):
        raise DomainError({"non_field_errors": ["Each document must be a mapping with apiVersion, kind and spec."]})
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if kind in IGNORED_KINDS and api_version == "v1":
        return None
    if kind != KIND:
        raise DomainError({"kind": [f"Expected {KIND} ({API_VERSION} or {', '.join(importing.API_VERSIONS)})."]})
    if api_version in importing.API_VERSIONS:
        return importing.to_payload(document, team=team, clusters=clusters)
    if api_version != API_VERSION:
        accepted = ", ".join((API_VERSION, *importing.API_VERSIONS))
        raise DomainError({"apiVersion": [f"Expected one of: {accepted}."]})
    metadata = document.get("metadata")
    spec = document.get("spec")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise DomainError({"metadata": {"name": ["Required: the service's name (a DNS-1123 label)."]}})
    if not isinstance(spec, dict):
        raise DomainError({"spec": ["Required: a mapping holding the API's gateway-service payload."]})
    payload = dict(spec)
    for key in _IDENTITY:
        if key in spec and key in metadata and spec[key] != metadata[key]:
            raise DomainError({"spec": {key: [f"Differs from metadata.{key}; give it once, in metadata."]}})
    payload["name"] = metadata.get("name") or spec.get("name")
    payload["namespace"] = (
        metadata.get("namespace") or spec.get("namespace") or (team.namespaces[0] if team.namespaces else None)
    )
    return payload


def _keep_stored_key(payload: dict[str, Any], service: GatewayService | None) -> None:
    """An export carries a service's certificate but never its key: the stored key stays when the cert is the same."""
    tls_options = payload.get("tls_options")
    tls_secret = tls_options.get("tls_secret") if isinstance(tls_options, dict) else None
    if not isinstance(tls_secret, dict) or "key" in tls_secret or service is None:
        return
    material = service.current_revision.tls_material or {}
    if material.get("cert") and tls_secret.get("cert") == material["cert"]:
        tls_secret["key"] = material.get("key")
        if "ca_cert" not in tls_secret and material.get("ca_cert"):
            tls_secret["ca_cert"] = material["ca_cert"]


def apply_documents(
    *,
    documents: list[Any],
    team: Team,
    apply_set: str,
    clusters: list[str],
    user=None,
    is_platform: bool = False,
    prune: bool = False,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Applies every document in one transaction; any refusal refuses all: DomainError {"documents": {index: …}}.

    A change takes its port's lock and holds it until the apply commits; a document that changes nothing takes
    none. So the documents are first read and checked on their own, without locks, the no-ops told apart; then
    the changes are written, in document order; then each no-op's conflicts and name clashes are read against what
    the apply leaves. The port's lock is held only while the changes are written and the no-ops' one short read
    each, however many unchanged documents the file carries (a GitOps sync re-sends them all), and every document
    is checked against the state the whole apply leaves behind."""
    apply_set = check_apply_set(apply_set)
    actions.check_batch_size(team, sum(1 for document in documents if importing.is_gateway_service(document)))
    errors: dict[str, Any] = {}
    results: list[Result] = []
    seen: dict[tuple[str, str], int] = {}
    with transaction.atomic():
        changes: list[Step] = []
        no_ops: list[tuple[Step, actions.NoOp]] = []
        for index, document in enumerate(documents):
            try:
                step = _read_one(index, document, team=team, clusters=clusters, seen=seen)
                no_op = step and _read_no_op(step, apply_set=apply_set, is_platform=is_platform)
            except DomainError as exc:
                errors[str(index)] = exc.errors
                continue
            if no_op:
                no_ops.append((step, no_op))
            elif step is not None:
                changes.append(step)
        for step in changes:
            try:
                results.append(_apply_one(step, team=team, apply_set=apply_set, user=user, is_platform=is_platform))
            except DomainError as exc:
                errors[str(step.index)] = exc.errors
        for step, no_op in no_ops:
            try:
                actions.check_no_op(no_op)
            except DomainError as exc:
                errors[str(step.index)] = exc.errors
                continue
            service = no_op.service
            results.append(
                Result(step.index, service.name, service.namespace, "unchanged", service.current_revision.number, {})
            )
        results.sort(key=lambda result: result.index)
        if not seen and not errors:
            errors["non_field_errors"] = [f"No {KIND} document found."]
        if not errors and prune:
            results.extend(_prune(team=team, apply_set=apply_set, keep=set(seen)))
        if errors or dry_run:
            transaction.set_rollback(True)
    if errors:
        raise DomainError({"documents": dict(sorted(errors.items(), key=_error_order))})
    return [result.as_dict() for result in results]


def _error_order(item: tuple[str, Any]) -> tuple[int, int | str]:
    key = item[0]
    return (0, int(key)) if key.isdigit() else (1, key)


@dataclass(frozen=True)
class Step:
    """A document read and checked on its own (`_read_one`), to be applied."""

    index: int
    data: dict[str, Any]
    existing: GatewayService | None


def _read_one(
    index: int, document: Any, *, team: Team, clusters: list[str], seen: dict[tuple[str, str], int]
) -> Step | None:
    """The document's payload, checked for what needs no other document (None for one the apply ignores)."""
    payload = to_payload(document, team=team, clusters=clusters)
    if payload is None:
        return None
    key = (str(payload.get("namespace")), str(payload.get("name")))
    existing = (
        GatewayService.objects.filter(team=team, namespace=key[0], name=key[1])
        .select_related("current_revision")
        .first()
    )
    _keep_stored_key(payload, existing)
    data = specs.parse(payload)
    given_team = data.pop("team", None)
    if given_team and given_team != team.slug:
        raise DomainError({"team": [f"This apply is for team '{team.slug}' only."]})
    # The team's namespaces first: a name taken in someone else's namespace must not be confirmed to exist.
    outside = validation.validate_tenancy(
        {"namespace": data["namespace"]},
        namespaces=team.namespaces,
        allowed_domains=[],
        allow_wildcards=False,
        is_platform=True,  # the namespace rule only; hosts are checked with the rest
    )
    if outside:
        raise DomainError(outside)
    key = (data["namespace"], data["name"])
    if key in seen:
        raise DomainError({"name": [f"Document {seen[key]} already declares '{key[1]}' in namespace '{key[0]}'."]})
    seen[key] = index
    return Step(index, data, existing)


def _read_no_op(step: Step, *, apply_set: str, is_platform: bool) -> actions.NoOp | None:
    """The document's update when it changes nothing, its apply set included (read without locks), else None."""
    existing = step.existing
    if existing is None or existing.deleting_at or existing.apply_set != apply_set:
        return None
    return actions.read_no_op(service=existing, data=step.data, is_platform=is_platform)


def _apply_one(step: Step, *, team: Team, apply_set: str, user, is_platform: bool) -> Result:
    data, existing, index = step.data, step.existing, step.index
    with transaction.atomic():
        if existing is None:
            service, _ = actions.gateway_service_create(
                team=team, data=data, user=user, is_platform=is_platform, apply_set=apply_set
            )
            spec = service.current_revision.spec
            return Result(index, service.name, service.namespace, "created", 1, {k: [None, v] for k, v in spec.items()})
        if existing.deleting_at:
            raise DomainError({"name": ["This gateway service is being deleted; apply again once it is gone."]})
        before = existing.current_revision
        service, _ = actions.gateway_service_update(service=existing, data=data, user=user, is_platform=is_platform)
        service = GatewayService.objects.select_related("current_revision").get(pk=service.pk)
        changes = diff(before.spec, service.current_revision.spec) if service.current_revision_id != before.pk else {}
        if service.current_revision_id != before.pk and not changes:
            changes = {"tls_material": ["[redacted]", "[redacted]"]}
        if actions.gateway_service_set_apply_set(service=service, apply_set=apply_set):
            changes["apply_set"] = [service.apply_set or None, apply_set]
        action = "updated" if changes else "unchanged"
        return Result(index, service.name, service.namespace, action, service.current_revision.number, changes)


def _prune(*, team: Team, apply_set: str, keep: set[tuple[str, str]]) -> list[Result]:
    results = []
    gone = GatewayService.objects.filter(team=team, apply_set=apply_set, deleting_at__isnull=True).select_related(
        "current_revision"
    )
    for service in gone.order_by("namespace", "name"):
        if (service.namespace, service.name) in keep:
            continue
        spec = service.current_revision.spec if service.current_revision else {}
        revision = service.current_revision.number if service.current_revision else None
        actions.gateway_service_delete(service=service)
        results.append(
            Result(None, service.name, service.namespace, "deleted", revision, {k: [v, None] for k, v in spec.items()})
        )
    return results


def export_document(service: GatewayService) -> dict[str, Any]:
    """A service as a portal-format document that applies back as `unchanged` (a certificate without its key)."""
    revision = service.current_revision
    spec = {k: v for k, v in revision.spec.items() if k not in _IDENTITY}
    tls_options = dict(spec.get("tls_options") or {})
    if "tls_secret" in tls_options:
        material = revision.tls_material or {}
        tls_options["tls_secret"] = {"cert": material.get("cert")}
        if material.get("ca_cert"):
            tls_options["tls_secret"]["ca_cert"] = material["ca_cert"]
        spec["tls_options"] = tls_options
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": service.name, "namespace": service.namespace},
        "spec": spec,
    }


def export_yaml(services: list[GatewayService]) -> str:
    """One YAML document, a `kind: List` of portal-format documents (as `kubectl get -o yaml` prints), so an
    empty export is still a document and the apply reads it as it is."""
    listing = {"apiVersion": "v1", "kind": "List", "items": [export_document(s) for s in services]}
    return yaml.safe_dump(listing, sort_keys=False, default_flow_style=False)
