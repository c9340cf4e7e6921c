"""The team policy: a service stays inside its team's namespaces and domains; DRF-shaped error dicts."""

from __future__ import annotations

from collections.abc import Iterable

from services.listeners import normal_host
from services.validation.spec import add_error


def host_in_domains(host: str, domains: Iterable[str]) -> bool:
    """A host is inside a domain when it equals it or ends with '.' + it (case-insensitive, trailing dot ignored)."""
    name = normal_host(host)
    return any(name == normal_host(d) or name.endswith("." + normal_host(d)) for d in domains)


def validate_tenancy(
    spec: dict, *, namespaces: list[str], allowed_domains: list[str], allow_wildcards: bool, is_platform: bool
) -> dict:
    """The team policy: its namespaces and domains; DRF-shaped errors, empty when allowed."""
    errors: dict = {}
    namespace = spec.get("namespace")
    if namespace not in namespaces:
        add_error(
            errors,
            "namespace",
            f"namespace {namespace!r} is not one of the team's namespaces; "
            f"use one of: {', '.join(namespaces) or '(none)'}",
        )
    if is_platform:
        return errors
    domains = ", ".join(allowed_domains) or "(none)"
    for host in spec.get("hosts") or []:
        if not isinstance(host, str):
            continue
        problem = _tenancy_host_problem(host, allowed_domains, allow_wildcards, domains)
        if problem:
            add_error(errors, "hosts", problem)
    return errors


def _tenancy_host_problem(host: str, allowed: list[str], allow_wildcards: bool, domains: str) -> str | None:
    if host == "*":
        return "the host '*' (every name) is reserved for platform engineers; list your own host names"
    if host.startswith("*."):
        if not allow_wildcards:
            return f"wildcard host '{host}' is not allowed for this team; list exact host names inside: {domains}"
        if not host_in_domains(host[2:], allowed):
            return f"wildcard host '{host}' is outside the team's domains; its domain must be inside: {domains}"
        return None
    if not host_in_domains(host, allowed):
        return f"host '{host}' is outside the team's domains; use a name equal to or under: {domains}"
    return None


def secret_reference_errors(secret_name: str, *, granted: list[str], managed: bool) -> dict:
    """A `tls_secret_ref` stays inside the team: it names a Secret the platform granted to the team, and never
    one the portal manages for a service (`managed`). One answer for every refusal, whether or not such a Secret
    exists anywhere, so that the answer tells nothing about other teams' Secrets."""
    if secret_name in granted and not managed:
        return {}
    return {
        "tls_options": {
            "tls_secret_ref": {
                "secret_name": [
                    f"{secret_name!r} is not a Secret this team may reference; tls_secret_ref accepts only Secrets "
                    "the platform team granted to the team (ask them), or use tls_secret to give the certificate"
                ]
            }
        }
    }
