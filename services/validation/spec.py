"""The portal's own rules on a service spec (snake_case, seed semantics); DRF-shaped error dicts.

The vocabulary (protocols, TLS modes, traffic types, TLS versions) is `services.choices`.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from services.choices import (
    PORTAL_HTTP_FAMILY,
    PORTAL_PLAINTEXT,
    PORTAL_PROTOCOLS,
    PORTAL_TLS_MODES,
    TLS_VERSIONS,
    TRAFFIC_TYPES,
)
from services.listeners import TLS_BEARING, normal_host
from services.validation.hosts import dns_name_problem
from services.validation.istio import is_int, tls_version_greater

TLS_SOURCES = ("tls_secret", "tls_secret_ref", "tls_secret_path")

_DNS1123_LOWER_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def add_error(errors: dict, field: str, message: str) -> None:
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


def validate_spec(spec: dict, *, has_tls_material: bool, tls_path_prefix: str = "/") -> dict:
    """The portal's rules on a normalised snake_case spec; DRF-shaped errors, empty when valid.

    `has_tls_material` says whether certificate and key for a `tls_secret` were supplied (they are stored
    apart from the spec). The CA of a MUTUAL `tls_secret` is checked here only when the material is inline in
    `tls_options.tls_secret`; otherwise `certificates.check_tls_material` requires it. `tls_path_prefix` is the
    directory every `tls_secret_path` file must sit under (the platform's TLS_SECRET_PATH_PREFIX).
    """
    errors: dict = {}
    _check_identity(spec, errors)
    _check_hosts(spec.get("hosts"), errors)
    protocol = spec.get("protocol")
    _check_protocol_and_mode(spec, errors)
    if protocol in PORTAL_PLAINTEXT:
        _check_plaintext(spec, errors)
    elif protocol in TLS_BEARING and spec.get("mode") in PORTAL_TLS_MODES:
        tls_errors = _tls_options_errors(spec, has_tls_material=has_tls_material, path_prefix=tls_path_prefix)
        if tls_errors:
            errors["tls_options"] = tls_errors
    _check_versions(spec, errors)
    return errors


def _check_identity(spec: dict, errors: dict) -> None:
    for field in ("name", "namespace"):
        value = spec.get(field)
        if not isinstance(value, str) or len(value) > 63 or not _DNS1123_LOWER_LABEL.fullmatch(value):
            add_error(
                errors,
                field,
                f"{value!r} is not a valid {field}; use a DNS-1123 label: at most 63 lower-case letters, digits or "
                "'-', starting and ending with a letter or digit",
            )
    port = spec.get("port")
    if not is_int(port) or not 1 <= port <= 65535:
        add_error(errors, "port", f"{port!r} is not a valid port; use an integer from 1 to 65535")
    if spec.get("traffic_type") not in TRAFFIC_TYPES:
        add_error(
            errors, "traffic_type", f"{spec.get('traffic_type')!r} is not a traffic type; use 'ingress' or 'egress'"
        )


def _check_hosts(hosts: Any, errors: dict) -> None:
    if not isinstance(hosts, list) or not hosts:
        add_error(errors, "hosts", "at least one host is required, e.g. ['app.example.com']")
        return
    seen: set[str] = set()
    for host in hosts:
        problem = portal_host_problem(host)
        if problem:
            add_error(errors, "hosts", problem)
            continue
        key = normal_host(host)
        if key in seen:
            add_error(
                errors, "hosts", f"'{host}' is listed more than once (host names are case-insensitive); list it once"
            )
        seen.add(key)


def _check_protocol_and_mode(spec: dict, errors: dict) -> None:
    protocol, mode = spec.get("protocol"), spec.get("mode")
    if protocol not in PORTAL_PROTOCOLS:
        add_error(
            errors, "protocol", f"{protocol!r} is not a supported protocol; use one of {', '.join(PORTAL_PROTOCOLS)}"
        )
    if mode is not None and mode not in PORTAL_TLS_MODES:
        add_error(errors, "mode", f"{mode!r} is not a supported TLS mode; use one of {', '.join(PORTAL_TLS_MODES)}")
    elif protocol in TLS_BEARING and mode is None:
        add_error(errors, "mode", f"protocol {protocol} needs a TLS mode; use one of {', '.join(PORTAL_TLS_MODES)}")
    redirect = spec.get("https_redirect", False)
    if not isinstance(redirect, bool):
        add_error(errors, "https_redirect", f"{redirect!r} is not a boolean; use true or false")
    elif redirect and protocol in PORTAL_PROTOCOLS and protocol not in PORTAL_HTTP_FAMILY:
        add_error(
            errors,
            "https_redirect",
            f"https_redirect does not apply to protocol {protocol}; it is accepted only with HTTP, HTTP2 or GRPC",
        )


def _check_plaintext(spec: dict, errors: dict) -> None:
    protocol = spec["protocol"]
    if spec.get("mode") is not None:
        add_error(
            errors, "mode", f"protocol {protocol} is plain text and takes no TLS mode; omit it or use HTTPS or TLS"
        )
    if spec.get("tls_options"):
        add_error(
            errors,
            "tls_options",
            f"protocol {protocol} is plain text and takes no tls_options; omit them or use HTTPS or TLS",
        )
    for field in ("min_protocol_version", "max_protocol_version"):
        if spec.get(field) is not None:
            add_error(
                errors, field, f"protocol {protocol} is plain text and takes no {field}; omit it or use HTTPS or TLS"
            )


def _tls_options_errors(spec: dict, *, has_tls_material: bool, path_prefix: str) -> dict:
    mode = spec["mode"]
    options = spec.get("tls_options") or {}
    if not isinstance(options, dict):
        return {"non_field_errors": ["tls_options must be an object with one of " + ", ".join(TLS_SOURCES)]}
    errors: dict = {}
    unknown = sorted(set(options) - set(TLS_SOURCES))
    if unknown:
        add_error(
            errors, "non_field_errors", f"unknown tls_options {', '.join(unknown)}; accepted: {', '.join(TLS_SOURCES)}"
        )
    present = [source for source in TLS_SOURCES if options.get(source) is not None]
    if mode in ("SIMPLE", "MUTUAL") and len(present) != 1:
        add_error(
            errors,
            "non_field_errors",
            f"mode {mode} needs exactly one of {', '.join(TLS_SOURCES)}; got {', '.join(present) or 'none'}",
        )
    if mode == "PASSTHROUGH":
        for source in ("tls_secret_ref", "tls_secret_path"):
            if source in present:
                add_error(
                    errors,
                    source,
                    f"mode PASSTHROUGH does not terminate TLS, so it takes no {source}; remove it "
                    "(only tls_secret is accepted, to create the secret in the service's namespace)",
                )
    if "tls_secret_ref" in present and mode != "SIMPLE":
        add_error(errors, "tls_secret_ref", f"tls_secret_ref is supported only with mode SIMPLE, not {mode}")
    _merge_source_errors(errors, options, present, mode, has_tls_material, path_prefix)
    return errors


def _merge_source_errors(
    errors: dict, options: dict, present: list[str], mode: str, has_material: bool, path_prefix: str
) -> None:
    checks = {
        "tls_secret": _tls_secret_errors,
        "tls_secret_ref": _secret_ref_errors,
        "tls_secret_path": lambda paths, mode, _: _path_errors(paths, mode, path_prefix),
    }
    for source in present:
        value = options[source]
        if not isinstance(value, dict):
            add_error(errors, source, f"{source} must be an object")
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
        add_error(errors, "cert", "a certificate is required: the PEM chain (leaf first), or base64 of it")
        add_error(errors, "key", "a private key is required: PEM (PKCS#1 or PKCS#8, unencrypted), or base64 of it")
        return errors
    if inline:
        if not secret.get("cert"):
            add_error(errors, "cert", "a certificate is required: the PEM chain (leaf first), or base64 of it")
        if not secret.get("key"):
            add_error(errors, "key", "a private key is required: PEM (PKCS#1 or PKCS#8, unencrypted), or base64 of it")
        if mode == "MUTUAL" and not secret.get("ca_cert"):
            add_error(
                errors, "ca_cert", "mode MUTUAL needs ca_cert: the PEM CA bundle used to verify client certificates"
            )
    return errors


def _secret_ref_errors(ref: dict, mode: str, has_material: bool) -> dict:
    name = ref.get("secret_name")
    if isinstance(name, str) and len(name) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(name):
        return {}
    return {
        "secret_name": [
            f"{name!r} is not a valid Secret name; use a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', "
            "at most 253 characters"
        ]
    }


def _path_errors(paths: dict, mode: str, prefix: str) -> dict:
    errors: dict = {}
    for field in ("cert_path", "key_path", "ca_cert_path"):
        value = paths.get(field)
        if value is None and field == "ca_cert_path":
            if mode == "MUTUAL":
                add_error(
                    errors, field, "mode MUTUAL needs ca_cert_path: the CA bundle path mounted in the gateway pod"
                )
            continue
        problem = tls_path_problem(value, prefix)
        if problem:
            add_error(errors, field, problem)
    return errors


def tls_path_problem(value: Any, prefix: str) -> str | None:
    """A file the gateway pod reads: absolute, normalized, no '..', under the platform's `prefix` directory."""
    example = posixpath.join(prefix, "certs/tls.crt")
    if not isinstance(value, str) or not value.startswith("/") or value.endswith("/"):
        return f"{value!r} is not a file path; give an absolute path such as {example!r}"
    if ".." in value.split("/") or posixpath.normpath(value) != value:
        return f"{value!r} is not a normalized path; give it without '..', '.' or '//', such as {example!r}"
    directory = prefix.rstrip("/") + "/"
    if not value.startswith(directory):
        return f"{value!r} is outside {directory}; TLS files must sit under it, such as {example!r}"
    return None


def _check_versions(spec: dict, errors: dict) -> None:
    low, high = spec.get("min_protocol_version"), spec.get("max_protocol_version")
    bad = False
    for field, value in (("min_protocol_version", low), ("max_protocol_version", high)):
        if value is not None and value not in TLS_VERSIONS:
            add_error(errors, field, f"{value!r} is not a TLS version; use one of {', '.join(TLS_VERSIONS)}")
            bad = True
    if not bad and tls_version_greater(low, high):
        add_error(
            errors,
            "min_protocol_version",
            f"min_protocol_version {low} is above max_protocol_version {high}; "
            "choose a minimum at or below the maximum",
        )
