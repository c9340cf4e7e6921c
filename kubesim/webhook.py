"""An emulation of Istio's validating webhook (`validation.istio.io`) for Gateways.

Deliberately small: only the refusals tests need, written from `istio-gateway-rules.md` (§1 servers, §3 port
name, §4 hosts), and no code of the portal. Like the real webhook it runs after the CRD schema has accepted
the object, on create and update (PATCH included), never on delete. A denial reaches the client the way the
apiserver wraps any webhook denial (k8s.io/apiserver admission `ToStatusErr`): a 400 `Status` whose message
is `admission webhook "validation.istio.io" denied the request: configuration is invalid: …`, with no
`reason` (Istio's answer sets none) and no `details`.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
from collections.abc import Callable
from typing import Any

from kubesim.errors import ApiError

WEBHOOK_NAME = "validation.istio.io"
_LABEL = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?")
MAX_HOST_LENGTH = 255
MAX_LABEL_LENGTH = 63
_IPV4_CHARACTERS = frozenset("0123456789.")


def webhook_denied(message: str) -> ApiError:
    """The apiserver's answer when a validating webhook denies a request (no reason, no details)."""
    return ApiError(400, "", f'admission webhook "{WEBHOOK_NAME}" denied the request: {message}')


def _quote(value: str) -> str:
    # Go's %q: double quotes, control characters escaped.
    return json.dumps(value, ensure_ascii=False)


# The label and IP checks mirror services.validation.hosts on purpose: kubesim stands in for Istio's webhook and
# imports no app (the kubesim-standalone contract), so that the portal's own checks are tested against an
# independent copy of Istio's.
def _is_label(value: str) -> bool:
    return len(value) <= MAX_LABEL_LENGTH and _LABEL.fullmatch(value) is not None


def _is_ip(value: str) -> bool:
    # Only digits and dots (IPv4) or a ':' (IPv6) can parse: a name is known without raising.
    if ":" not in value and not _IPV4_CHARACTERS.issuperset(value):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def host_errors(host: Any) -> list[str]:
    """Istio's `[namespace/]dnsName` check for Gateway server hosts (rules §4)."""
    if not isinstance(host, str):
        return [f"invalid host {host!r}"]
    namespace, slash, name = host.partition("/")
    if not slash:
        namespace, name = "*", host
    errors = []
    if slash and (not namespace or not name):
        return [f"namespace and name must be set in {_quote(host)}"]
    if namespace not in ("*", ".") and not _is_label(namespace):
        errors.append(f"invalid namespace value {_quote(namespace)} in gateway")
    if name == "*":
        return errors
    if "." not in name:
        return [*errors, f"short names (non FQDN) are not allowed in gateway hosts: {_quote(name)}"]
    if "*" in name and not name.startswith("*."):
        return [*errors, f"partial wildcard {_quote(name)} not allowed"]
    if _is_ip(name):
        return errors
    return errors + _domain_errors(name)


# A domain the checks below accept, in one match (labels, a leading '*' label, one trailing dot), unless its
# top-level label is all digits.
_DOMAIN_LABEL = r"[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?:\*|{_DOMAIN_LABEL})(?:\.{_DOMAIN_LABEL})*\.?")


def _domain_errors(name: str) -> list[str]:
    if len(name) <= MAX_HOST_LENGTH and _DOMAIN.fullmatch(name):
        labels = name[:-1] if name.endswith(".") else name
        if "." not in labels or not labels.rpartition(".")[2].isdigit():
            return []
    return _all_domain_errors(name)


def _all_domain_errors(name: str) -> list[str]:
    if len(name) > MAX_HOST_LENGTH:
        return [f"domain name {_quote(name)} too long (max {MAX_HOST_LENGTH})"]
    labels = (name[:-1] if name.endswith(".") else name).split(".")
    first, rest = labels[0], labels[1:]
    if first != "*" and not _is_label(first):
        return [f"domain name {_quote(name)} invalid (label {_quote(first)} invalid)"]
    for label in rest:
        if not _is_label(label):
            return [f"domain name {_quote(name)} invalid (label {_quote(label)} invalid)"]
    if rest and rest[-1].isdigit():
        return [f"domain name {_quote(name)} invalid (top level domain {_quote(rest[-1])} cannot be all-numeric)"]
    return []


def gateway_errors(gateway: dict[str, Any], denied_hosts: frozenset[str] = frozenset()) -> list[str]:
    """Why the webhook refuses this Gateway: empty `servers`, bad hosts, unset or duplicate port names."""
    servers = (gateway.get("spec") or {}).get("servers") or []
    if not servers:
        return ["gateway must have at least one server"]
    errors: list[str] = []
    seen: set[str] = set()
    for server in servers:
        if not isinstance(server, dict):
            errors.append("server may not be nil")
            continue
        hosts = server.get("hosts") or []
        if not hosts:
            errors.append("server config must contain at least one host")
        for host in hosts:
            errors += host_errors(host)
            if isinstance(host, str) and host.rpartition("/")[2].lower() in denied_hosts:
                errors.append(f"host {_quote(host)} is denied (kubesim fault deny_hosts)")
        name = (server.get("port") or {}).get("name", "")
        if not name:
            errors.append("port name must be set")
        elif name in seen:
            errors.append(f"port names in servers must be unique: duplicate name {name}")
        seen.add(name)
    return errors


def _format(errors: list[str]) -> str:
    # Istio's multierror format: one error as is; several as a bulleted count.
    if len(errors) == 1:
        return errors[0]
    points = "\n\t".join(f"* {error}" for error in errors)
    return f"{len(errors)} errors occurred:\n\t{points}\n\n"


class IstioWebhook:
    """Reviews Gateway writes; remembers every denial (message) for tests to inspect."""

    def __init__(self, denied_hosts: Callable[[], frozenset[str]] = frozenset) -> None:
        self._denied_hosts = denied_hosts
        self._lock = threading.Lock()
        self.denials: list[str] = []

    def review(self, gateway: dict[str, Any]) -> None:
        errors = gateway_errors(gateway, self._denied_hosts())
        if errors:
            denial = webhook_denied(f"configuration is invalid: {_format(errors)}")
            with self._lock:
                self.denials.append(denial.message)
            raise denial

    def reset(self) -> None:
        with self._lock:
            self.denials.clear()
