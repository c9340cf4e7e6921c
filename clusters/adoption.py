"""Pure rules for adopting a live, unmanaged Gateway server as a team's gateway service (no ORM, no network).

The live server is read back into the API's payload: hosts without the `<namespace>/` prefix, `credentialName`
as a reference to the existing Secret (`tls_secret_ref`, never copied), file paths as `tls_secret_path`. When the
portal renders that payload exactly as the server is, adopting it writes nothing to the Gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.validation import validate_tenancy


def server_to_payload(
    server: Mapping[str, Any], *, name: str, namespace: str, traffic_type: str, cluster: str
) -> dict[str, Any]:
    port = server.get("port") or {}
    tls = server.get("tls") or {}
    payload: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "hosts": [unscoped_host(host, namespace) for host in server.get("hosts") or []],
        "port": port.get("number"),
        "protocol": port.get("protocol"),
        "traffic_type": traffic_type,
        "clusters": [cluster],
        "https_redirect": bool(tls.get("httpsRedirect")),
    }
    if tls.get("mode"):
        payload["mode"] = tls["mode"]
    for camel, snake in (
        ("minProtocolVersion", "min_protocol_version"),
        ("maxProtocolVersion", "max_protocol_version"),
    ):
        if tls.get(camel):
            payload[snake] = tls[camel]
    if tls.get("credentialName"):
        payload["tls_options"] = {"tls_secret_ref": {"secret_name": tls["credentialName"]}}
    elif tls.get("serverCertificate") or tls.get("privateKey"):
        paths = {"cert_path": tls.get("serverCertificate"), "key_path": tls.get("privateKey")}
        if tls.get("caCertificates"):
            paths["ca_cert_path"] = tls["caCertificates"]
        payload["tls_options"] = {"tls_secret_path": paths}
    return payload


def unscoped_host(host: Any, namespace: str) -> Any:
    """`ns/host` -> `host` when ns is the service's namespace (or `*`/`.`); other prefixes are kept (and refused)."""
    if isinstance(host, str) and "/" in host:
        prefix, _, rest = host.partition("/")
        if prefix in (namespace, "*", "."):
            return rest
    return host


def bare_hosts(server: Mapping[str, Any]) -> list[str]:
    return [str(host).partition("/")[2] if "/" in str(host) else str(host) for host in server.get("hosts") or []]


def owning_team(hosts: Iterable[str], teams: Iterable[Any]) -> str | None:
    """The first team (by slug) whose domains cover every host, or None."""
    hosts = list(hosts)
    for team in sorted(teams, key=lambda t: t.slug):
        spec = {"namespace": (team.namespaces or [""])[0], "hosts": hosts}
        errors = validate_tenancy(
            spec,
            namespaces=team.namespaces,
            allowed_domains=team.allowed_domains,
            allow_wildcards=team.allow_wildcards,
            is_platform=False,
        )
        if hosts and "hosts" not in errors:
            return team.slug
    return None
