"""Istio's rules for a Gateway manifest (istio-gateway-rules.md; section numbers below refer to it).

Errors are what the CRD schema or istiod's validating webhook refuses, warnings what Istio admits with a warning
plus the portal's stricter advice; every finding is an `Issue` with a path into the manifest. The §7 merge rules
themselves live in `services.listeners`; `merge_clashes` words them as warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from services.choices import TLS_VERSIONS
from services.listeners import (
    HTTP_FAMILY,
    ISTIO_PROTOCOLS,
    TLS_BEARING,
    Clash,
    Listener,
    ListenerIndex,
    merge_clash,
    parse_protocol,
    read_listeners,
)
from services.validation.hosts import LABEL_RULE, is_dns1123_label, is_ip, istio_host_problem

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One problem found in a Gateway manifest; `path` is like `spec.servers[1].tls.credentialName`."""

    path: str
    message: str
    severity: Severity = "error"


ISTIO_API_VERSIONS = ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")
ISTIO_TLS_MODES = ("PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL")
VALID_CIPHER_SUITES = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
        "DES-CBC3-SHA",
    }
)
UINT32_MAX = 4294967295


def join_path(path: str, field: str) -> str:
    if not path:
        return field
    return f"{path}{field}" if field.startswith("[") else f"{path}.{field}"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- Server (§2, §3, §5, §6) ---------------------------------------------------------------------------------------


def validate_server(server: dict, path: str = "") -> list[Issue]:
    """Every Istio rule that applies to one server block (Istio camelCase dict)."""
    if not isinstance(server, dict):
        return [Issue(path, "a server must be a mapping with at least 'port' and 'hosts'")]
    issues = _hosts_issues(server.get("hosts"), join_path(path, "hosts"))
    port = server.get("port")
    bind = server.get("bind")
    port_issues = _port_issues(port, bind, join_path(path, "port"))
    issues += port_issues
    issues += _bind_issues(bind, join_path(path, "bind"))
    tls = server.get("tls")
    if not port_issues:
        issues += _protocol_tls_coupling(parse_protocol(port["protocol"]), tls, path)
    if tls is not None:
        issues += validate_tls(tls, join_path(path, "tls"))
    return issues


def _hosts_issues(hosts: Any, path: str) -> list[Issue]:
    if hosts is None:
        return [Issue(path, "hosts is required: a non-empty list such as ['app.example.com']")]
    if not isinstance(hosts, list) or not all(isinstance(host, str) for host in hosts):
        return [Issue(path, "hosts must be a list of strings such as ['app.example.com']")]
    if not hosts:
        return [Issue(path, "hosts must contain at least one host, e.g. 'app.example.com' or '*'")]
    issues = []
    for index, host in enumerate(hosts):
        problem = istio_host_problem(host)
        if problem:
            issues.append(Issue(f"{path}[{index}]", problem))
    return issues


def _port_issues(port: Any, bind: Any, path: str) -> list[Issue]:
    if port is None:
        return [Issue(path, "port is required: a mapping with number, protocol and name")]
    if not isinstance(port, dict):
        return [Issue(path, "port must be a mapping with number, protocol and name")]
    issues = [
        Issue(join_path(path, key), f"port.{key} is required (the CRD requires number, protocol and name)")
        for key in ("number", "protocol", "name")
        if key not in port
    ]
    issues += _port_number_issues(port, bind, path)
    if "protocol" in port and parse_protocol(port["protocol"]) is None:
        issues.append(
            Issue(
                join_path(path, "protocol"),
                f"invalid protocol {port['protocol']!r}; accepted (any case): {', '.join(ISTIO_PROTOCOLS)}",
            )
        )
    target = port.get("targetPort")
    if target is not None:
        if not is_int(target) or not 0 <= target <= UINT32_MAX:
            issues.append(Issue(join_path(path, "targetPort"), f"targetPort must be an integer 0..{UINT32_MAX}"))
        elif target > 0:
            issues.append(Issue(join_path(path, "targetPort"), "targetPort has no impact on Gateways; remove it"))
    if "name" in port:
        name = port["name"]
        if not isinstance(name, str):
            issues.append(Issue(join_path(path, "name"), "port name must be a string, e.g. 'https-app'"))
        elif not name:
            issues.append(Issue(join_path(path, "name"), "port name must be set, e.g. 'https-app'"))
    return issues


def _port_number_issues(port: dict, bind: Any, path: str) -> list[Issue]:
    if "number" not in port:
        return []
    number = port["number"]
    where = join_path(path, "number")
    if not is_int(number) or not 0 <= number <= UINT32_MAX:
        return [Issue(where, f"port number must be an integer (uint32, 0..{UINT32_MAX}); got {number!r}")]
    if isinstance(bind, str) and bind.startswith("unix://"):
        if number != 0:
            return [Issue(where, f"port number must be 0 for a unix domain socket bind; got {number}")]
        return []
    if not 1 <= number <= 65535:
        return [Issue(where, f"port number {number} must be in the range 1..65535")]
    return []


def _bind_issues(bind: Any, path: str) -> list[Issue]:
    if bind is None or bind == "":
        return []
    if not isinstance(bind, str):
        return [Issue(path, "bind must be a string: an IP address or 'unix://<absolute path>' / 'unix://@name'")]
    if bind.startswith("unix://"):
        address = bind[len("unix://") :]
        if not address:
            return [Issue(path, "unix domain socket address is empty; use 'unix:///abs/path' or 'unix://@name'")]
        if address.startswith("@"):
            return []
        if not address.startswith("/") or address.endswith("/"):
            return [
                Issue(path, f"unix socket path '{address}' must be absolute and must not end in '/' (or use '@name')")
            ]
        return []
    if not is_ip(bind):
        return [
            Issue(path, f"bind '{bind}' is not an IP address; use an IPv4/IPv6 address (no CIDR, port or hostname)")
        ]
    return []


def _protocol_tls_coupling(protocol: str | None, tls: Any, path: str) -> list[Issue]:
    """§2: which protocols need, tolerate or forbid a `tls` block. Only checked once the port is valid."""
    where = join_path(path, "tls")
    if protocol in TLS_BEARING:
        if tls is None:
            return [Issue(where, "server must have TLS settings for HTTPS/TLS protocols; add a tls block with a mode")]
        return []
    if tls is None:
        return []
    if protocol in HTTP_FAMILY:
        tls = tls if isinstance(tls, dict) else {}
        passthrough = tls.get("mode") in (None, "PASSTHROUGH", "AUTO_PASSTHROUGH")
        files = any(tls.get(key) for key in ("caCertificates", "privateKey", "serverCertificate"))
        if passthrough and not files:
            return []
        return [
            Issue(
                where,
                "server cannot have TLS settings for plain text HTTP ports; only 'tls: {httpsRedirect: true}' is "
                "useful here, or use protocol HTTPS to terminate TLS",
            )
        ]
    return [
        Issue(
            where,
            f"server cannot have TLS settings for non HTTPS/TLS ports (protocol {protocol}); "
            "remove the tls block or use protocol TLS to terminate TLS",
        )
    ]


# --- TLS options (§6) ----------------------------------------------------------------------------------------------

_CERT_FIELDS = ("caCrl", "serverCertificate", "privateKey", "caCertificates", "tlsCertificates")


def validate_tls(tls: Any, path: str) -> list[Issue]:
    """validateTLSOptions plus the CRD enums, list sizes and CEL one-of rules."""
    if not isinstance(tls, dict):
        return [Issue(path, "tls must be a mapping, e.g. {mode: SIMPLE, credentialName: my-secret}")]
    issues = _tls_schema_issues(tls, path)
    mode = tls.get("mode") or "PASSTHROUGH"
    if mode not in ISTIO_TLS_MODES:
        return issues
    if mode == "ISTIO_MUTUAL":
        return issues + _istio_mutual_issues(tls, path)
    issues += _version_and_cipher_issues(tls, path)
    sources = _certificate_sources(tls)
    if len(sources) > 1:
        issues.append(
            Issue(
                path,
                "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates "
                f"should be specified; found {', '.join(sources)}",
            )
        )
    if mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"):
        issues += _terminating_issues(tls, mode, path)
    else:
        issues += _passthrough_issues(tls, mode, path)
    return issues


def _tls_schema_issues(tls: dict, path: str) -> list[Issue]:
    issues = []
    if "mode" in tls and tls["mode"] is not None and tls["mode"] not in ISTIO_TLS_MODES:
        issues.append(
            Issue(
                join_path(path, "mode"),
                f"invalid mode {tls['mode']!r}; accepted (exact case): {', '.join(ISTIO_TLS_MODES)}",
            )
        )
    for key in ("minProtocolVersion", "maxProtocolVersion"):
        value = tls.get(key)
        if value is not None and value not in TLS_VERSIONS:
            issues.append(
                Issue(
                    join_path(path, key), f"invalid {key} {value!r}; accepted (exact case): {', '.join(TLS_VERSIONS)}"
                )
            )
    for key in ("credentialNames", "tlsCertificates"):
        value = tls.get(key)
        if value is not None and (not isinstance(value, list) or not 1 <= len(value) <= 2):
            issues.append(Issue(join_path(path, key), f"{key} must be a list of 1 or 2 items"))
    if "httpsRedirect" in tls and not isinstance(tls["httpsRedirect"], bool):
        issues.append(Issue(join_path(path, "httpsRedirect"), "httpsRedirect must be true or false"))
    # The CRD's CEL rules; the third one re-tests credentialNames+tlsCertificates (see §6).
    if tls.get("tlsCertificates") is not None and tls.get("credentialNames") is not None:
        issues.append(Issue(path, "only one of credentialNames or tlsCertificates can be set"))
    if tls.get("credentialName") is not None and tls.get("credentialNames") is not None:
        issues.append(Issue(path, "only one of credentialName or credentialNames can be set"))
    return issues


def _istio_mutual_issues(tls: dict, path: str) -> list[Issue]:
    forbidden = (
        "serverCertificate",
        "privateKey",
        "caCertificates",
        "tlsCertificates",
        "credentialName",
        "credentialNames",
    )
    return [
        Issue(join_path(path, key), f"ISTIO_MUTUAL uses Istio's own certificates; remove {key}")
        for key in forbidden
        if tls.get(key)
    ]


def _certificate_sources(tls: dict) -> list[str]:
    sources = []
    if tls.get("serverCertificate") and tls.get("privateKey"):
        sources.append("serverCertificate/privateKey")
    for key in ("credentialName", "credentialNames", "tlsCertificates"):
        if tls.get(key):
            sources.append(key)
    return sources


def _terminating_issues(tls: dict, mode: str, path: str) -> list[Issue]:
    if tls.get("credentialName") or tls.get("credentialNames"):
        # The secret supplies certificate, key and CA; Istio checks nothing more here.
        return []
    issues = []
    if mode == "SIMPLE" and tls.get("caCrl"):
        issues.append(
            Issue(join_path(path, "caCrl"), "CRL is not supported with SIMPLE TLS; remove caCrl or use MUTUAL")
        )
    if mode != "SIMPLE" and not tls.get("caCertificates"):
        issues.append(
            Issue(
                join_path(path, "caCertificates"),
                f"{mode} TLS requires caCertificates (a CA file path) when no credentialName(s) is used",
            )
        )
    entries = tls.get("tlsCertificates")
    if isinstance(entries, list) and entries:
        if len(entries) > 2:
            issues.append(Issue(join_path(path, "tlsCertificates"), "at most 2 tlsCertificates are used", "warning"))
        for index, entry in enumerate(entries):
            entry = entry if isinstance(entry, dict) else {}
            issues += _cert_pair_issues(entry, mode, join_path(path, f"tlsCertificates[{index}]"))
        return issues
    return issues + _cert_pair_issues(tls, mode, path)


def _cert_pair_issues(entry: dict, mode: str, path: str) -> list[Issue]:
    issues = []
    if not entry.get("serverCertificate"):
        issues.append(
            Issue(
                join_path(path, "serverCertificate"),
                f"{mode} TLS requires a server certificate: set credentialName, or serverCertificate and privateKey",
            )
        )
    if not entry.get("privateKey"):
        issues.append(
            Issue(
                join_path(path, "privateKey"),
                f"{mode} TLS requires a private key: set credentialName, or serverCertificate and privateKey",
            )
        )
    return issues


def _passthrough_issues(tls: dict, mode: str, path: str) -> list[Issue]:
    issues = []
    if tls.get("caCrl") and tls.get("credentialName"):
        issues.append(Issue(join_path(path, "caCrl"), "CRL is not supported with credentialName; remove caCrl"))
    for key in (*_CERT_FIELDS, "credentialName", "credentialNames"):
        if tls.get(key):
            issues.append(
                Issue(join_path(path, key), f"{mode} mode does not use certificates; {key} is ignored", "warning")
            )
    return issues


def _version_and_cipher_issues(tls: dict, path: str) -> list[Issue]:
    issues = []
    ciphers = tls.get("cipherSuites")
    if tls.get("minProtocolVersion") in ("TLSV1_0", "TLSV1_1") and not ciphers:
        issues.append(
            Issue(
                join_path(path, "minProtocolVersion"),
                f"minProtocolVersion {tls['minProtocolVersion']} without cipherSuites enables weak defaults; "
                "set cipherSuites or use TLSV1_2 or later",
                "warning",
            )
        )
    if ciphers is None:
        return issues
    if not isinstance(ciphers, list) or not all(isinstance(c, str) for c in ciphers):
        return issues + [Issue(join_path(path, "cipherSuites"), "cipherSuites must be a list of strings")]
    seen: set[str] = set()
    for index, cipher in enumerate(ciphers):
        where = join_path(path, f"cipherSuites[{index}]")
        if cipher in seen:
            issues.append(Issue(where, f"duplicate cipher suite {cipher!r}", "warning"))
        seen.add(cipher)
        if not _cipher_accepted(cipher):
            issues.append(
                Issue(
                    where,
                    f"ignoring invalid cipher suite {cipher!r}; Istio drops it. "
                    f"Accepted: {', '.join(sorted(VALID_CIPHER_SUITES))}",
                    "warning",
                )
            )
    return issues


def _cipher_accepted(cipher: str) -> bool:
    # Operator syntax ('-X', '+X', '!X', '[..]') starts with a non-alphanumeric character and is passed through.
    return cipher in VALID_CIPHER_SUITES or cipher in ("", "ALL") or not cipher[0].isalnum()


# --- Whole Gateway (§1, §7) ----------------------------------------------------------------------------------------


def validate_gateway(manifest: dict) -> list[Issue]:
    """Istio's admission rules for a whole Gateway manifest plus the portal's stricter advice as warnings."""
    if not isinstance(manifest, dict):
        return [Issue("", "a Gateway manifest must be a mapping with apiVersion, kind, metadata and spec")]
    issues = _object_issues(manifest)
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        return issues + [Issue("spec", "spec is required: a mapping with a non-empty 'servers' list")]
    servers = spec.get("servers")
    if not isinstance(servers, list) or not servers:
        return issues + [Issue("spec.servers", "spec.servers must be a non-empty list of server blocks")]
    for index, server in enumerate(servers):
        where = f"spec.servers[{index}]"
        if server is None:
            issues.append(Issue(where, "a server entry is null; remove it or give it port and hosts"))
            continue
        issues += validate_server(server, where)
        issues += _server_advice(server, where)
    issues += _port_name_uniqueness(servers)
    issues += merge_clashes(servers, gateway_name=_name(manifest), namespace=_namespace(manifest))
    return issues


def _name(manifest: dict) -> str:
    metadata = manifest.get("metadata")
    return str(metadata.get("name", "")) if isinstance(metadata, dict) else ""


def _namespace(manifest: dict) -> str:
    metadata = manifest.get("metadata")
    return str(metadata.get("namespace") or "default") if isinstance(metadata, dict) else "default"


def _object_issues(manifest: dict) -> list[Issue]:
    issues = []
    if manifest.get("apiVersion") not in ISTIO_API_VERSIONS:
        issues.append(
            Issue(
                "apiVersion",
                f"unsupported apiVersion {manifest.get('apiVersion')!r}; use one of {', '.join(ISTIO_API_VERSIONS)}",
            )
        )
    if manifest.get("kind") != "Gateway":
        issues.append(Issue("kind", f"kind must be 'Gateway'; got {manifest.get('kind')!r}"))
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        return issues + [
            Issue("metadata.name", "metadata.name is required: a DNS-1123 label such as 'ingress-gateway'")
        ]
    annotations = metadata.get("annotations") or {}
    if isinstance(annotations, dict) and annotations.get("internal.istio.io/gateway-semantics") == "gateway":
        # istiod skips the name check for Gateways it converts from Gateway API; hand-written ones must not claim that.
        return issues + [
            Issue(
                "metadata.annotations",
                "internal.istio.io/gateway-semantics is reserved for istiod's internal conversion; remove it",
                "warning",
            )
        ]
    name = metadata["name"]
    if not isinstance(name, str) or not is_dns1123_label(name):
        issues.append(
            Issue(
                "metadata.name",
                f"invalid gateway name {name!r}; Istio requires a DNS-1123 label: {LABEL_RULE}, no dots",
            )
        )
    return issues


def _server_advice(server: Any, path: str) -> list[Issue]:
    if not isinstance(server, dict):
        return []
    port = server.get("port") if isinstance(server.get("port"), dict) else {}
    tls = server.get("tls") if isinstance(server.get("tls"), dict) else {}
    protocol = parse_protocol(port.get("protocol"))
    issues = []
    if tls.get("httpsRedirect") is True and protocol is not None and protocol not in HTTP_FAMILY:
        issues.append(
            Issue(
                join_path(path, "tls.httpsRedirect"),
                f"httpsRedirect only applies to plain-text HTTP servers; it has no effect with protocol {protocol}",
                "warning",
            )
        )
    low, high = tls.get("minProtocolVersion"), tls.get("maxProtocolVersion")
    if low in TLS_VERSIONS and high in TLS_VERSIONS and tls_version_greater(low, high):
        issues.append(
            Issue(
                join_path(path, "tls.minProtocolVersion"),
                f"minProtocolVersion {low} is above maxProtocolVersion {high}; no TLS version can be negotiated",
                "warning",
            )
        )
    return issues


def tls_version_greater(low: str | None, high: str | None) -> bool:
    """True when `low` is a later TLS version than `high`; TLS_AUTO and None compare as unset."""
    if low in (None, "TLS_AUTO") or high in (None, "TLS_AUTO"):
        return False
    return TLS_VERSIONS.index(low) > TLS_VERSIONS.index(high)


def _port_name_uniqueness(servers: list) -> list[Issue]:
    issues = []
    first_index: dict[str, int] = {}
    for index, server in enumerate(servers):
        port = server.get("port") if isinstance(server, dict) else None
        if not isinstance(port, dict) or not isinstance(port.get("name", ""), str):
            continue
        name = port.get("name", "")
        if name in first_index:
            issues.append(
                Issue(
                    f"spec.servers[{index}].port.name",
                    f"port names in servers must be unique; {name!r} is already used by "
                    f"spec.servers[{first_index[name]}]",
                )
            )
        else:
            first_index[name] = index
    return issues


def merge_clashes(servers: list, *, gateway_name: str, namespace: str) -> list[Issue]:
    """§7: servers istiod admits but silently skips when it merges them onto one listener (warnings)."""
    issues: list[Issue] = []
    route_names: dict[str, int] = {}
    index = ListenerIndex()
    for current in read_listeners(servers):
        where = f"spec.servers[{current.index}]"
        for earlier, clash in index.clashes(current):
            issues.append(Issue(where, f"{_clash_message(earlier, current, clash)}; {_SKIPPED}", "warning"))
        issues += _route_name_issues(current, route_names, gateway_name, namespace)
        index.add(current)
    return issues


_SKIPPED = "istiod will skip this server at runtime"


def _route_name_issues(current: Listener, seen: dict[str, int], gateway_name: str, namespace: str) -> list[Issue]:
    """Terminating HTTPS servers on one port need distinct route names (`seen`: route name -> first index)."""
    if not current.terminating:
        return []
    route = f"https.{current.number}.{current.port_name}.{gateway_name}.{namespace}"
    route += f".{current.bind}" if current.bind else ""
    first = seen.setdefault(route, current.index)
    if first == current.index:
        return []
    return [
        Issue(
            f"spec.servers[{current.index}]",
            f"HTTPS route name {route!r} duplicates spec.servers[{first}]; {_SKIPPED}. Give it a distinct port name",
            "warning",
        )
    ]


def merge_reason(earlier: Listener, current: Listener) -> str | None:
    """Why istiod skips `current` next to `earlier` (same port and bind), in words; None when they merge."""
    clash = merge_clash(earlier, current)
    return _clash_message(earlier, current, clash) if clash else None


def _clash_message(earlier: Listener, current: Listener, clash: Clash) -> str:
    other = f"spec.servers[{earlier.index}]"
    port = current.number
    if clash.reason == "shared_tls_host":
        return f"TLS server on port {port} shares host {clash.host!r} with {other}; use distinct hosts"
    if clash.reason == "plain_and_tls":
        return f"plain-text and TLS servers cannot share port {port} (see {other}); use another port"
    return (
        f"plain-text {current.protocol} cannot share port {port} with {earlier.protocol} ({other}); "
        "only HTTP-family servers (HTTP, HTTP2, GRPC) merge on one port"
    )
