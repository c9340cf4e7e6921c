"""Pure validation: Istio's Gateway rules, the portal's own spec rules and the team tenancy policy.

The Istio part follows shared/docs/istio-gateway-rules.md (section numbers below refer to it): errors are what the
CRD schema or istiod's validating webhook refuses, warnings what Istio admits with a warning plus the portal's
stricter advice. No ORM and no network: every function takes and returns plain data.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One problem found in a Gateway manifest; `path` is like `spec.servers[1].tls.credentialName`."""

    path: str
    message: str
    severity: Severity = "error"


# --- Shared vocabulary ---------------------------------------------------------------------------------------------

ISTIO_API_VERSIONS = ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")
ISTIO_PROTOCOLS = (
    "TCP",
    "UDP",
    "GRPC",
    "GRPC-WEB",
    "HTTP",
    "HTTP_PROXY",
    "HTTP2",
    "HTTPS",
    "TLS",
    "MONGO",
    "REDIS",
    "MYSQL",
)
# Istio's protocol.IsHTTP(): plain-text protocols that carry HTTP routes and may share a port.
HTTP_FAMILY = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY"})
TLS_BEARING = frozenset({"HTTPS", "TLS"})
ISTIO_TLS_MODES = ("PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL")
TLS_VERSIONS = ("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")
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

# The portal's own (seed) vocabulary.
PORTAL_PROTOCOLS = ("HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS")
PORTAL_PLAINTEXT = frozenset({"HTTP", "GRPC", "HTTP2", "MONGO", "TCP"})
PORTAL_HTTP_FAMILY = frozenset({"HTTP", "HTTP2", "GRPC"})
PORTAL_TLS_MODES = ("SIMPLE", "PASSTHROUGH", "MUTUAL")
TRAFFIC_TYPES = ("ingress", "egress")
TLS_SOURCES = ("tls_secret", "tls_secret_ref", "tls_secret_path")

_DNS1123_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$")
_DNS1123_LOWER_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ALL_DIGITS = re.compile(r"^[0-9]+$")
_LABEL_RULE = "at most 63 letters, digits or '-', starting and ending with a letter or digit"


def _join(path: str, field: str) -> str:
    if not path:
        return field
    return f"{path}{field}" if field.startswith("[") else f"{path}.{field}"


def is_dns1123_label(value: str) -> bool:
    """Istio's IsDNS1123Label: upper case letters are accepted, dots are not."""
    return len(value) <= 63 and bool(_DNS1123_LABEL.match(value))


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- Hosts (§4) ----------------------------------------------------------------------------------------------------


def dns_name_problem(name: str) -> str | None:
    """Why Istio refuses the dnsName part of a Gateway host, or None when it is accepted."""
    if name == "*":
        return None
    if not name:
        return "the host name is empty; use a fully qualified name such as 'app.example.com', '*.example.com' or '*'"
    if "." not in name:
        return (
            f"'{name}' is a short name; Istio requires a fully qualified domain name containing a '.', "
            "such as 'app.example.com' (IPv6 literals are not accepted either)"
        )
    if "*" in name and not name.startswith("*."):
        return (
            f"partial wildcard '{name}' is not allowed; a wildcard must be the whole left-most label, "
            "as in '*.example.com', or the host must be exactly '*'"
        )
    if _is_ip(name):
        return None
    if len(name) > 255:
        return f"host name is {len(name)} characters long; at most 255 are accepted"
    first, _, rest = name.partition(".")
    if first != "*" and not is_dns1123_label(first):
        return f"label '{first}' of '{name}' is invalid; each label must be '*' (left-most only) or {_LABEL_RULE}"
    labels = rest.split(".")
    if _ALL_DIGITS.match(labels[-1]):
        return f"the last label of '{name}' is all digits; a top-level domain must contain a letter"
    for index, label in enumerate(labels):
        # Istio allows exactly one trailing dot (a fully qualified `istio.io.`).
        if index == len(labels) - 1 and label == "":
            continue
        if not is_dns1123_label(label):
            shown = label or "(empty)"
            return f"label '{shown}' of '{name}' is invalid; each label must be {_LABEL_RULE} (no '_', no empty label)"
    return None


def istio_host_problem(host: str) -> str | None:
    """Why Istio refuses a Gateway host of the form `[namespace/]dnsName`, or None."""
    if "/" not in host:
        return dns_name_problem(host)
    namespace, _, dns_name = host.partition("/")
    if not namespace or not dns_name:
        return f"host '{host}' has an empty side of '/'; use 'namespace/host', e.g. 'payments/app.example.com'"
    if namespace == "~":
        return f"invalid namespace value '~' in host '{host}'; use '*', '.' or a namespace name"
    if namespace not in ("*", ".") and not is_dns1123_label(namespace):
        return (
            f"invalid namespace '{namespace}' in host '{host}'; use '*' (any namespace), '.' (the Gateway's namespace) "
            f"or a namespace name of {_LABEL_RULE}"
        )
    return dns_name_problem(dns_name)


# --- Server (§2, §3, §5, §6) ---------------------------------------------------------------------------------------


def parse_protocol(value: Any) -> str | None:
    """Istio parses protocols case-insensitively; None when the value is not one Istio knows."""
    if not isinstance(value, str):
        return None
    upper = value.upper()
    return upper if upper in ISTIO_PROTOCOLS else None


def validate_server(server: dict, path: str = "") -> list[Issue]:
    """Every Istio rule that applies to one server block (Istio camelCase dict)."""
    if not isinstance(server, dict):
        return [Issue(path, "a server must be a mapping with at least 'port' and 'hosts'")]
    issues = _hosts_issues(server.get("hosts"), _join(path, "hosts"))
    port = server.get("port")
    bind = server.get("bind")
    port_issues = _port_issues(port, bind, _join(path, "port"))
    issues += port_issues
    issues += _bind_issues(bind, _join(path, "bind"))
    tls = server.get("tls")
    if not port_issues:
        issues += _protocol_tls_coupling(parse_protocol(port["protocol"]), tls, path)
    if tls is not None:
        issues += validate_tls(tls, _join(path, "tls"))
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
        Issue(_join(path, key), f"port.{key} is required (the CRD requires number, protocol and name)")
        for key in ("number", "protocol", "name")
        if key not in port
    ]
    issues += _port_number_issues(port, bind, path)
    if "protocol" in port and parse_protocol(port["protocol"]) is None:
        issues.append(
            Issue(
                _join(path, "protocol"),
                f"invalid protocol {port['protocol']!r}; accepted (any case): {', '.join(ISTIO_PROTOCOLS)}",
            )
        )
    target = port.get("targetPort")
    if target is not None:
        if not _is_int(target) or not 0 <= target <= UINT32_MAX:
            issues.append(Issue(_join(path, "targetPort"), f"targetPort must be an integer 0..{UINT32_MAX}"))
        elif target > 0:
            issues.append(Issue(_join(path, "targetPort"), "targetPort has no impact on Gateways; remove it"))
    if "name" in port:
        name = port["name"]
        if not isinstance(name, str):
            issues.append(Issue(_join(path, "name"), "port name must be a string, e.g. 'https-app'"))
        elif not name:
            issues.append(Issue(_join(path, "name"), "port name must be set, e.g. 'https-app'"))
    return issues


def _port_number_issues(port: dict, bind: Any, path: str) -> list[Issue]:
    if "number" not in port:
        return []
    number = port["number"]
    where = _join(path, "number")
    if not _is_int(number) or not 0 <= number <= UINT32_MAX:
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
    if not _is_ip(bind):
        return [
            Issue(path, f"bind '{bind}' is not an IP address; use an IPv4/IPv6 address (no CIDR, port or hostname)")
        ]
    return []


def _protocol_tls_coupling(protocol: str | None, tls: Any, path: str) -> list[Issue]:
    """§2: which protocols need, tolerate or forbid a `tls` block. Only checked once the port is valid."""
    where = _join(path, "tls")
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
                _join(path, "mode"),
                f"invalid mode {tls['mode']!r}; accepted (exact case): {', '.join(ISTIO_TLS_MODES)}",
            )
        )
    for key in ("minProtocolVersion", "maxProtocolVersion"):
        value = tls.get(key)
        if value is not None and value not in TLS_VERSIONS:
            issues.append(
                Issue(_join(path, key), f"invalid {key} {value!r}; accepted (exact case): {', '.join(TLS_VERSIONS)}")
            )
    for key in ("credentialNames", "tlsCertificates"):
        value = tls.get(key)
        if value is not None and (not isinstance(value, list) or not 1 <= len(value) <= 2):
            issues.append(Issue(_join(path, key), f"{key} must be a list of 1 or 2 items"))
    if "httpsRedirect" in tls and not isinstance(tls["httpsRedirect"], bool):
        issues.append(Issue(_join(path, "httpsRedirect"), "httpsRedirect must be true or false"))
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
        Issue(_join(path, key), f"ISTIO_MUTUAL uses Istio's own certificates; remove {key}")
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
        issues.append(Issue(_join(path, "caCrl"), "CRL is not supported with SIMPLE TLS; remove caCrl or use MUTUAL"))
    if mode != "SIMPLE" and not tls.get("caCertificates"):
        issues.append(
            Issue(
                _join(path, "caCertificates"),
                f"{mode} TLS requires caCertificates (a CA file path) when no credentialName(s) is used",
            )
        )
    entries = tls.get("tlsCertificates")
    if isinstance(entries, list) and entries:
        if len(entries) > 2:
            issues.append(Issue(_join(path, "tlsCertificates"), "at most 2 tlsCertificates are used", "warning"))
        for index, entry in enumerate(entries):
            entry = entry if isinstance(entry, dict) else {}
            issues += _cert_pair_issues(entry, mode, _join(path, f"tlsCertificates[{index}]"))
        return issues
    return issues + _cert_pair_issues(tls, mode, path)


def _cert_pair_issues(entry: dict, mode: str, path: str) -> list[Issue]:
    issues = []
    if not entry.get("serverCertificate"):
        issues.append(
            Issue(
                _join(path, "serverCertificate"),
                f"{mode} TLS requires a server certificate: set credentialName, or serverCertificate and privateKey",
            )
        )
    if not entry.get("privateKey"):
        issues.append(
            Issue(
                _join(path, "privateKey"),
                f"{mode} TLS requires a private key: set credentialName, or serverCertificate and privateKey",
            )
        )
    return issues


def _passthrough_issues(tls: dict, mode: str, path: str) -> list[Issue]:
    issues = []
    if tls.get("caCrl") and tls.get("credentialName"):
        issues.append(Issue(_join(path, "caCrl"), "CRL is not supported with credentialName; remove caCrl"))
    for key in (*_CERT_FIELDS, "credentialName", "credentialNames"):
        if tls.get(key):
            issues.append(
                Issue(_join(path, key), f"{mode} mode does not use certificates; {key} is ignored", "warning")
            )
    return issues


def _version_and_cipher_issues(tls: dict, path: str) -> list[Issue]:
    issues = []
    ciphers = tls.get("cipherSuites")
    if tls.get("minProtocolVersion") in ("TLSV1_0", "TLSV1_1") and not ciphers:
        issues.append(
            Issue(
                _join(path, "minProtocolVersion"),
                f"minProtocolVersion {tls['minProtocolVersion']} without cipherSuites enables weak defaults; "
                "set cipherSuites or use TLSV1_2 or later",
                "warning",
            )
        )
    if ciphers is None:
        return issues
    if not isinstance(ciphers, list) or not all(isinstance(c, str) for c in ciphers):
        return issues + [Issue(_join(path, "cipherSuites"), "cipherSuites must be a list of strings")]
    seen: set[str] = set()
    for index, cipher in enumerate(ciphers):
        where = _join(path, f"cipherSuites[{index}]")
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
                f"invalid gateway name {name!r}; Istio requires a DNS-1123 label: {_LABEL_RULE}, no dots",
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
                _join(path, "tls.httpsRedirect"),
                f"httpsRedirect only applies to plain-text HTTP servers; it has no effect with protocol {protocol}",
                "warning",
            )
        )
    low, high = tls.get("minProtocolVersion"), tls.get("maxProtocolVersion")
    if low in TLS_VERSIONS and high in TLS_VERSIONS and tls_version_greater(low, high):
        issues.append(
            Issue(
                _join(path, "tls.minProtocolVersion"),
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


@dataclass(frozen=True)
class _Listener:
    index: int
    number: int
    bind: str
    protocol: str
    port_name: str
    hosts: tuple[str, ...]
    terminating: bool


def _listeners(servers: Iterable[Any]) -> list[_Listener]:
    listeners = []
    for index, server in enumerate(servers):
        if not isinstance(server, dict) or not isinstance(server.get("port"), dict):
            continue
        port = server["port"]
        protocol = parse_protocol(port.get("protocol"))
        hosts = server.get("hosts")
        if protocol is None or not _is_int(port.get("number")) or not isinstance(hosts, list):
            continue
        tls = server.get("tls") if isinstance(server.get("tls"), dict) else {}
        listeners.append(
            _Listener(
                index=index,
                number=port["number"],
                bind=server.get("bind") or "",
                protocol=protocol,
                port_name=str(port.get("name", "")),
                hosts=tuple(str(host) for host in hosts),
                terminating=protocol == "HTTPS" and tls.get("mode") not in (None, "PASSTHROUGH", "AUTO_PASSTHROUGH"),
            )
        )
    return listeners


@dataclass
class _PortGroup:
    """Earlier listeners on one (port, bind), split by what they can clash with, in index order."""

    tls: list[_Listener] = dataclasses.field(default_factory=list)
    tls_by_host: dict[str, list[_Listener]] = dataclasses.field(default_factory=dict)
    plain_http: list[_Listener] = dataclasses.field(default_factory=list)
    plain_other: list[_Listener] = dataclasses.field(default_factory=list)

    def candidates(self, current: _Listener) -> list[_Listener]:
        """The earlier listeners `_merge_reason` may object to; every other pairing on this port merges."""
        if current.protocol in TLS_BEARING:
            sharing = {id(e): e for host in dict.fromkeys(current.hosts) for e in self.tls_by_host.get(host, [])}
            found = [*self.plain_http, *self.plain_other, *sharing.values()]
        elif current.protocol in HTTP_FAMILY:
            found = [*self.tls, *self.plain_other]
        else:
            found = [*self.tls, *self.plain_http, *self.plain_other]
        return sorted(found, key=lambda listener: listener.index)

    def add(self, listener: _Listener) -> None:
        if listener.protocol in TLS_BEARING:
            self.tls.append(listener)
            for host in dict.fromkeys(listener.hosts):
                self.tls_by_host.setdefault(host, []).append(listener)
        elif listener.protocol in HTTP_FAMILY:
            self.plain_http.append(listener)
        else:
            self.plain_other.append(listener)


def merge_clashes(servers: list, *, gateway_name: str, namespace: str) -> list[Issue]:
    """§7: servers istiod admits but silently skips when it merges them onto one listener (warnings).

    Earlier listeners are indexed by (port, bind) and TLS hosts, so the work grows with the clashes found
    rather than with every pair of servers on a port (a gateway may hold thousands on 443).
    """
    issues: list[Issue] = []
    route_names: dict[str, int] = {}
    groups: dict[tuple[int, str], _PortGroup] = {}
    for current in _listeners(servers):
        where = f"spec.servers[{current.index}]"
        group = groups.setdefault((current.number, current.bind), _PortGroup())
        for earlier in group.candidates(current):
            reason = _merge_reason(earlier, current)
            if reason:
                issues.append(Issue(where, f"{reason}; istiod will skip this server at runtime", "warning"))
        if current.terminating:
            route = f"https.{current.number}.{current.port_name}.{gateway_name}.{namespace}"
            route += f".{current.bind}" if current.bind else ""
            if route in route_names:
                issues.append(
                    Issue(
                        where,
                        f"HTTPS route name {route!r} duplicates spec.servers[{route_names[route]}]; "
                        "istiod will skip this server at runtime. Give it a distinct port name",
                        "warning",
                    )
                )
            route_names.setdefault(route, current.index)
        group.add(current)
    return issues


def _merge_reason(earlier: _Listener, current: _Listener) -> str | None:
    other = f"spec.servers[{earlier.index}]"
    port = current.number
    earlier_tls, current_tls = earlier.protocol in TLS_BEARING, current.protocol in TLS_BEARING
    if earlier_tls and current_tls:
        shared = sorted(set(earlier.hosts) & set(current.hosts))
        if shared:
            return f"TLS server on port {port} shares host {shared[0]!r} with {other}; use distinct hosts"
        return None
    if earlier_tls != current_tls:
        return f"plain-text and TLS servers cannot share port {port} (see {other}); use another port"
    if earlier.protocol in HTTP_FAMILY and current.protocol in HTTP_FAMILY:
        return None
    return (
        f"plain-text {current.protocol} cannot share port {port} with {earlier.protocol} ({other}); "
        "only HTTP-family servers (HTTP, HTTP2, GRPC) merge on one port"
    )


# --- The portal's spec rules (snake_case, seed semantics) ----------------------------------------------------------


def _add(errors: dict, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def portal_host_problem(host: Any) -> str | None:
    """Istio's rules for the plain dnsName part: the portal adds the `namespace/` prefix itself."""
    if not isinstance(host, str):
        return f"{host!r} is not a host name; give a string such as 'app.example.com'"
    if "/" in host:
        return (
            f"'{host}' contains '/'; give the plain host name (e.g. 'app.example.com'): the portal adds the "
            "'<namespace>/' prefix itself"
        )
    return dns_name_problem(host)


def validate_spec(spec: dict, *, has_tls_material: bool) -> dict:
    """The portal's rules on a normalised snake_case spec; DRF-shaped errors, empty when valid.

    `has_tls_material` says whether certificate and key for a `tls_secret` were supplied (they are stored
    apart from the spec). The CA of a MUTUAL `tls_secret` is checked here only when the material is inline in
    `tls_options.tls_secret`; otherwise `certificates.check_tls_material` requires it.
    """
    errors: dict = {}
    _check_identity(spec, errors)
    _check_hosts(spec.get("hosts"), errors)
    protocol = spec.get("protocol")
    _check_protocol_and_mode(spec, errors)
    if protocol in PORTAL_PLAINTEXT:
        _check_plaintext(spec, errors)
    elif protocol in TLS_BEARING and spec.get("mode") in PORTAL_TLS_MODES:
        tls_errors = _tls_options_errors(spec, has_tls_material=has_tls_material)
        if tls_errors:
            errors["tls_options"] = tls_errors
    _check_versions(spec, errors)
    return errors


def _check_identity(spec: dict, errors: dict) -> None:
    for field in ("name", "namespace"):
        value = spec.get(field)
        if not isinstance(value, str) or len(value) > 63 or not _DNS1123_LOWER_LABEL.match(value):
            _add(
                errors,
                field,
                f"{value!r} is not a valid {field}; use a DNS-1123 label: at most 63 lower-case letters, digits or "
                "'-', starting and ending with a letter or digit",
            )
    port = spec.get("port")
    if not _is_int(port) or not 1 <= port <= 65535:
        _add(errors, "port", f"{port!r} is not a valid port; use an integer from 1 to 65535")
    if spec.get("traffic_type") not in TRAFFIC_TYPES:
        _add(errors, "traffic_type", f"{spec.get('traffic_type')!r} is not a traffic type; use 'ingress' or 'egress'")


def _check_hosts(hosts: Any, errors: dict) -> None:
    if not isinstance(hosts, list) or not hosts:
        _add(errors, "hosts", "at least one host is required, e.g. ['app.example.com']")
        return
    seen: set[str] = set()
    for host in hosts:
        problem = portal_host_problem(host)
        if problem:
            _add(errors, "hosts", problem)
            continue
        key = host.lower().rstrip(".")
        if key in seen:
            _add(errors, "hosts", f"'{host}' is listed more than once (host names are case-insensitive); list it once")
        seen.add(key)


def _check_protocol_and_mode(spec: dict, errors: dict) -> None:
    protocol, mode = spec.get("protocol"), spec.get("mode")
    if protocol not in PORTAL_PROTOCOLS:
        _add(errors, "protocol", f"{protocol!r} is not a supported protocol; use one of {', '.join(PORTAL_PROTOCOLS)}")
    if mode is not None and mode not in PORTAL_TLS_MODES:
        _add(errors, "mode", f"{mode!r} is not a supported TLS mode; use one of {', '.join(PORTAL_TLS_MODES)}")
    elif protocol in TLS_BEARING and mode is None:
        _add(errors, "mode", f"protocol {protocol} needs a TLS mode; use one of {', '.join(PORTAL_TLS_MODES)}")
    redirect = spec.get("https_redirect", False)
    if not isinstance(redirect, bool):
        _add(errors, "https_redirect", f"{redirect!r} is not a boolean; use true or false")
    elif redirect and protocol in PORTAL_PROTOCOLS and protocol not in PORTAL_HTTP_FAMILY:
        _add(
            errors,
            "https_redirect",
            f"https_redirect does not apply to protocol {protocol}; it is accepted only with HTTP, HTTP2 or GRPC",
        )


def _check_plaintext(spec: dict, errors: dict) -> None:
    protocol = spec["protocol"]
    if spec.get("mode") is not None:
        _add(errors, "mode", f"protocol {protocol} is plain text and takes no TLS mode; omit it or use HTTPS or TLS")
    if spec.get("tls_options"):
        _add(
            errors,
            "tls_options",
            f"protocol {protocol} is plain text and takes no tls_options; omit them or use HTTPS or TLS",
        )
    for field in ("min_protocol_version", "max_protocol_version"):
        if spec.get(field) is not None:
            _add(errors, field, f"protocol {protocol} is plain text and takes no {field}; omit it or use HTTPS or TLS")


def _tls_options_errors(spec: dict, *, has_tls_material: bool) -> dict:
    mode = spec["mode"]
    options = spec.get("tls_options") or {}
    if not isinstance(options, dict):
        return {"non_field_errors": ["tls_options must be an object with one of " + ", ".join(TLS_SOURCES)]}
    errors: dict = {}
    unknown = sorted(set(options) - set(TLS_SOURCES))
    if unknown:
        _add(
            errors, "non_field_errors", f"unknown tls_options {', '.join(unknown)}; accepted: {', '.join(TLS_SOURCES)}"
        )
    present = [source for source in TLS_SOURCES if options.get(source) is not None]
    if mode in ("SIMPLE", "MUTUAL") and len(present) != 1:
        _add(
            errors,
            "non_field_errors",
            f"mode {mode} needs exactly one of {', '.join(TLS_SOURCES)}; got {', '.join(present) or 'none'}",
        )
    if mode == "PASSTHROUGH":
        for source in ("tls_secret_ref", "tls_secret_path"):
            if source in present:
                _add(
                    errors,
                    source,
                    f"mode PASSTHROUGH does not terminate TLS, so it takes no {source}; remove it "
                    "(only tls_secret is accepted, to create the secret in the service's namespace)",
                )
    if "tls_secret_ref" in present and mode != "SIMPLE":
        _add(errors, "tls_secret_ref", f"tls_secret_ref is supported only with mode SIMPLE, not {mode}")
    _merge_source_errors(errors, options, present, mode, has_tls_material)
    return errors


def _merge_source_errors(errors: dict, options: dict, present: list[str], mode: str, has_material: bool) -> None:
    checks = {"tls_secret": _tls_secret_errors, "tls_secret_ref": _secret_ref_errors, "tls_secret_path": _path_errors}
    for source in present:
        value = options[source]
        if not isinstance(value, dict):
            _add(errors, source, f"{source} must be an object")
            continue
        nested = checks[source](value, mode, has_material)
        if nested and isinstance(errors.get(source), list):
            nested.setdefault("non_field_errors", []).extend(errors.pop(source))
        if nested:
            errors[source] = nested


def _tls_secret_errors(secret: dict, mode: str, has_material: bool) -> dict:
    errors: dict = {}
    inline = bool(secret.get("cert") or secret.get("key"))
    if not has_material and not inline:
        _add(errors, "cert", "a certificate is required: the PEM chain (leaf first), or base64 of it")
        _add(errors, "key", "a private key is required: PEM (PKCS#1 or PKCS#8, unencrypted), or base64 of it")
        return errors
    if inline:
        if not secret.get("cert"):
            _add(errors, "cert", "a certificate is required: the PEM chain (leaf first), or base64 of it")
        if not secret.get("key"):
            _add(errors, "key", "a private key is required: PEM (PKCS#1 or PKCS#8, unencrypted), or base64 of it")
        if mode == "MUTUAL" and not secret.get("ca_cert"):
            _add(errors, "ca_cert", "mode MUTUAL needs ca_cert: the PEM CA bundle used to verify client certificates")
    return errors


def _secret_ref_errors(ref: dict, mode: str, has_material: bool) -> dict:
    name = ref.get("secret_name")
    if isinstance(name, str) and len(name) <= 253 and _DNS1123_SUBDOMAIN.match(name):
        return {}
    return {
        "secret_name": [
            f"{name!r} is not a valid Secret name; use a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', "
            "at most 253 characters"
        ]
    }


def _path_errors(paths: dict, mode: str, has_material: bool) -> dict:
    errors: dict = {}
    for field in ("cert_path", "key_path", "ca_cert_path"):
        value = paths.get(field)
        if value is None and field == "ca_cert_path":
            if mode == "MUTUAL":
                _add(errors, field, "mode MUTUAL needs ca_cert_path: the CA bundle path mounted in the gateway pod")
            continue
        if not isinstance(value, str) or not value.startswith("/") or value.endswith("/"):
            _add(
                errors, field, f"{value!r} is not a file path; give an absolute path such as '/etc/istio/certs/tls.crt'"
            )
    return errors


def _check_versions(spec: dict, errors: dict) -> None:
    low, high = spec.get("min_protocol_version"), spec.get("max_protocol_version")
    bad = False
    for field, value in (("min_protocol_version", low), ("max_protocol_version", high)):
        if value is not None and value not in TLS_VERSIONS:
            _add(errors, field, f"{value!r} is not a TLS version; use one of {', '.join(TLS_VERSIONS)}")
            bad = True
    if not bad and tls_version_greater(low, high):
        _add(
            errors,
            "min_protocol_version",
            f"min_protocol_version {low} is above max_protocol_version {high}; "
            "choose a minimum at or below the maximum",
        )


# --- Tenancy -------------------------------------------------------------------------------------------------------


def _normal(host: str) -> str:
    return host.lower().rstrip(".")


def host_in_domains(host: str, domains: Iterable[str]) -> bool:
    """A host is inside a domain when it equals it or ends with '.' + it (case-insensitive, trailing dot ignored)."""
    name = _normal(host)
    return any(name == _normal(d) or name.endswith("." + _normal(d)) for d in domains)


def validate_tenancy(
    spec: dict, *, namespaces: list[str], allowed_domains: list[str], allow_wildcards: bool, is_platform: bool
) -> dict:
    """The team policy: its namespaces and domains; DRF-shaped errors, empty when allowed."""
    errors: dict = {}
    namespace = spec.get("namespace")
    if namespace not in namespaces:
        _add(
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
            _add(errors, "hosts", problem)
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


# --- Host overlap ---------------------------------------------------------------------------------------------------


def hosts_overlap(a: str, b: str) -> bool:
    """Whether two gateway hosts can match a common name (case-insensitive; any `namespace/` prefix ignored)."""
    a, b = _normal(a.rpartition("/")[2]), _normal(b.rpartition("/")[2])
    if a == "*" or b == "*" or a == b:
        return True
    a_wild, b_wild = a.startswith("*."), b.startswith("*.")
    if a_wild and b_wild:
        a_suffix, b_suffix = a[1:], b[1:]
        return a_suffix.endswith(b_suffix) or b_suffix.endswith(a_suffix)
    if a_wild:
        return b.endswith(a[1:])
    if b_wild:
        return a.endswith(b[1:])
    return False
