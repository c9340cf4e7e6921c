"""Host names: Istio's syntax for a Gateway host (istio-gateway-rules.md §4) and when two hosts overlap.

How hosts are compared (case, trailing dot, `namespace/` prefix) is `services.listeners.normal_host`; when two
overlap is `hosts_overlap`, which `HostIndex` applies to many hosts at once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from services.listeners import normal_host

_DNS1123_LABEL = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?")
_ALL_DIGITS = re.compile(r"[0-9]+")
# Every name check matches the whole string (`fullmatch`): `$` would also match before a trailing newline.
LABEL_RULE = "at most 63 letters, digits or '-', starting and ending with a letter or digit"


def is_dns1123_label(value: str) -> bool:
    """Istio's IsDNS1123Label: upper case letters are accepted, dots are not."""
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


_IPV4_CHARACTERS = frozenset("0123456789.")


def is_ip(value: str) -> bool:
    # An IPv4 address has only ASCII digits and dots, an IPv6 address has a ':': anything else is no address, known
    # without parsing (most hosts are names, and a refused parse raises).
    if ":" not in value and not _IPV4_CHARACTERS.issuperset(value):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# A name every check below accepts, in one match: labels of at most 63 letters, digits or '-' (not at either end), the
# first one possibly '*', at least two, and one trailing dot allowed. Most hosts are such names.
_PLAIN_LABEL = r"[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_PLAIN_NAME = re.compile(rf"(?:\*|{_PLAIN_LABEL})(?:\.{_PLAIN_LABEL})+\.?")


def dns_name_problem(name: str) -> str | None:
    """Why Istio refuses the dnsName part of a Gateway host, or None when it is accepted."""
    if len(name) <= 255 and _PLAIN_NAME.fullmatch(name):
        # Accepted unless its top-level label is all digits (an IPv4 address, or refused): the full checks decide.
        if not (name[:-1] if name.endswith(".") else name).rpartition(".")[2].isdigit():
            return None
    return _dns_name_problem(name)


def _dns_name_problem(name: str) -> str | None:
    """`dns_name_problem`, every rule checked in turn."""
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
    if is_ip(name):
        return None
    if len(name) > 255:
        return f"host name is {len(name)} characters long; at most 255 are accepted"
    first, _, rest = name.partition(".")
    if first != "*" and not is_dns1123_label(first):
        return f"label '{first}' of '{name}' is invalid; each label must be '*' (left-most only) or {LABEL_RULE}"
    labels = rest.split(".")
    if _ALL_DIGITS.fullmatch(labels[-1]):
        return f"the last label of '{name}' is all digits; a top-level domain must contain a letter"
    for index, label in enumerate(labels):
        # Istio allows exactly one trailing dot (a fully qualified `istio.io.`).
        if index == len(labels) - 1 and label == "":
            continue
        if not is_dns1123_label(label):
            shown = label or "(empty)"
            return f"label '{shown}' of '{name}' is invalid; each label must be {LABEL_RULE} (no '_', no empty label)"
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
            f"or a namespace name of {LABEL_RULE}"
        )
    return dns_name_problem(dns_name)


def hosts_overlap(a: str, b: str) -> bool:
    """Whether two gateway hosts can match a common name (case-insensitive; any `namespace/` prefix ignored)."""
    a, b = normal_host(a), normal_host(b)
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


def _domains(name: str) -> list[str]:
    """The domains a name lies under: 'a.b.example.com' -> ['b.example.com', 'example.com', 'com']."""
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels))]


def stored_overlap_keys(hosts: Iterable[str]) -> tuple[frozenset[str], frozenset[str]] | None:
    """What a stored, normalized host must be to possibly overlap one of `hosts`: (names it may equal, domains it
    may lie under). These are `HostIndex`'s keys of `hosts`, read from the database's side: a stored host is a
    candidate when it is '*', one of the names, or under one of the domains (a superset; `hosts_overlap` decides).
    None when a host is '*': every host overlaps it."""
    names, suffixes = {"*"}, set()
    for host in hosts:
        name = normal_host(host)
        if name == "*":
            return None
        for kind, key in HostIndex._keys(name):
            (names if kind == "name" else suffixes).add(key)
    return frozenset(names), frozenset(suffixes)


class HostIndex:
    """Hosts, indexed so that the ones overlapping another host are found with a few lookups (one per label of that
    host) instead of a `hosts_overlap` with each: `overlaps(host)` is `any(hosts_overlap(h, host) for h in hosts)`.

    Each host is filed under the keys an overlapping host looks up (see `_keys` and `_lookups`); the candidates found
    are then decided by `hosts_overlap` itself, so the index narrows and the one rule decides.
    """

    def __init__(self, hosts: Iterable[str] = ()) -> None:
        self._by_key: dict[tuple[str, str], list[str]] = {}
        for host in hosts:
            for key in self._keys(normal_host(host)):
                self._by_key.setdefault(key, []).append(host)

    @property
    def overlaps_every_host(self) -> bool:
        """'*' is among the hosts: every host overlaps one of them."""
        return ("name", "*") in self._by_key

    def overlaps(self, host: str) -> bool:
        name = normal_host(host)
        if name == "*":
            return bool(self._by_key)
        return any(hosts_overlap(ours, host) for key in self._lookups(name) for ours in self._by_key.get(key, ()))

    @staticmethod
    def _keys(name: str) -> set[tuple[str, str]]:
        # The same name, or '*'; a wildcard covering this name (or, for a wildcard, a wildcard of a parent domain);
        # for a wildcard `*.d`, a name under d (or a wildcard under it: see `_lookups`).
        keys = {("name", name), *(("name", "*." + domain) for domain in _domains(name))}
        if name.startswith("*."):
            keys.add(("under", name[2:]))
        return keys

    @staticmethod
    def _lookups(name: str) -> list[tuple[str, str]]:
        return [("name", "*"), ("name", name), *(("under", domain) for domain in _domains(name))]
