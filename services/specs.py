"""A request payload -> the input of a gateway service, checked for shape only (no ORM, no DRF).

Every door that files a gateway service goes through `parse`: the API's serializer, the ticketing webhook and
the YAML import. The domain rules (Istio, tenancy, certificates, conflicts) run afterwards in `services.actions`
(`_prepare`, then `_check_others` under the port's lock). A refusal is a `DomainError` whose `errors` have the
API's 400 shape: a list of messages per field, nested for nested fields (list items by index, mapping entries by
key). The messages are those the public API has always answered with, so callers cannot tell which door they
used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gatewayportal.exceptions import DomainError
from services.choices import Protocol, TLSMode, TLSProtocolVersion, TrafficType

# Patterns are searched (as DRF's RegexField does): `\Z`, not `$` (which also matches before a trailing
# newline), anchors the whole string.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z"
DOMAIN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+")
SECRET_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z"
ABSOLUTE_PATH = r"^/\S+\Z"
SLUG = r"^[-a-zA-Z0-9_]+\Z"
# A Kubernetes label name or value (value also may be empty, but the portal asks for one): at most 63 characters.
LABEL_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z"
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

# Bounds on lists and maps: a request is never stored big.
MAX_HOSTS = 100
MAX_CLUSTERS = 100
MAX_LABELS = 32

REQUIRED = "This field is required."
NULL = "This field may not be null."
BLANK = "This field may not be blank."
NO_DATA = "No data provided"

_MISSING = object()  # the key is absent from the payload
_SKIP = object()  # absent and without a default: left out of the result


class _Invalid(Exception):
    def __init__(self, detail: list[str] | dict[Any, Any]):
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True)
class Field:
    required: bool = True
    allow_null: bool = False
    default: Any = _MISSING  # a value, or a callable giving one

    def run(self, data: Any, partial: bool) -> Any:
        if data is _MISSING:
            if partial:
                return _SKIP  # a partial update leaves absent fields as they are
            if self.required:
                raise _Invalid([REQUIRED])
            if self.default is _MISSING:
                return _SKIP
            return self.default() if callable(self.default) else self.default
        if data is None:
            if not self.allow_null:
                raise _Invalid([NULL])
            return None
        return self.convert(data, partial)

    def convert(self, data: Any, partial: bool) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Text(Field):
    max_length: int | None = None
    allow_blank: bool = False
    trim: bool = True
    pattern: str | None = None
    invalid: str = "Not a valid string."

    def convert(self, data: Any, partial: bool) -> str:
        if data == "" or (self.trim and str(data).strip() == ""):
            if not self.allow_blank:
                raise _Invalid([BLANK])
            return ""
        # Numbers are taken as their text; booleans and composites are a mistake.
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            raise _Invalid([self.invalid])
        value = str(data).strip() if self.trim else str(data)
        errors = []
        if self.max_length is not None and len(value) > self.max_length:
            errors.append(f"Ensure this field has no more than {self.max_length} characters.")
        if "\x00" in value:
            errors.append("Null characters are not allowed.")
        surrogate = next((ch for ch in value if 0xD800 <= ord(ch) <= 0xDFFF), None)
        if surrogate is not None:
            errors.append(f"Surrogate characters are not allowed: U+{ord(surrogate):X}.")
        if self.pattern is not None and not re.search(self.pattern, value):
            errors.append(self.invalid)
        if errors:
            raise _Invalid(errors)
        return value


@dataclass(frozen=True)
class Integer(Field):
    invalid: str = "A valid integer is required."

    def convert(self, data: Any, partial: bool) -> int:
        if isinstance(data, str) and len(data) > 1000:
            raise _Invalid(["String value too large."])
        try:
            return int(re.sub(r"\.0*\s*$", "", str(data)))  # "443" and 443.0 are 443
        except (ValueError, TypeError):
            raise _Invalid([self.invalid])


@dataclass(frozen=True)
class Boolean(Field):
    TRUE = frozenset({"true", "yes", "y", "on", "t", "1", 1})
    FALSE = frozenset({"false", "no", "n", "off", "f", "0", 0})

    def convert(self, data: Any, partial: bool) -> bool:
        value = data.lower() if isinstance(data, str) else data
        try:
            if value in self.TRUE:
                return True
            if value in self.FALSE:
                return False
        except TypeError:
            pass
        raise _Invalid(["Must be a valid boolean."])


@dataclass(frozen=True)
class Choice(Field):
    """One of `choices`, accepted in any case and returned in its canonical case."""

    choices: tuple[str, ...] = ()
    canonical: Callable[[str], str] = str.upper

    def convert(self, data: Any, partial: bool) -> str:
        if isinstance(data, str):
            data = self.canonical(data.strip())
        if not (isinstance(data, str) and data in self.choices):
            raise _Invalid([f'"{data}" is not accepted. Accepted values: {", ".join(self.choices)}, in any case.'])
        return data


@dataclass(frozen=True)
class List(Field):
    child: Field = field(default_factory=Text)
    allow_empty: bool = True
    max_length: int | None = None

    unique: bool = False  # duplicates are dropped (first one kept)

    def convert(self, data: Any, partial: bool) -> list[Any]:
        if isinstance(data, str | Mapping) or not hasattr(data, "__iter__"):
            raise _Invalid([f'Expected a list of items but got type "{type(data).__name__}".'])
        data = list(data)
        if not self.allow_empty and not data:
            raise _Invalid(["This list may not be empty."])
        if self.max_length is not None and len(data) > self.max_length:
            # Before the items are looked at: a list of 100,000 costs no more than one of 101.
            raise _Invalid([f"Ensure this field has no more than {self.max_length} elements."])
        result, errors = [], {}
        for index, item in enumerate(data):
            try:
                result.append(self.child.run(item, partial))
            except _Invalid as exc:
                errors[index] = exc.detail
        if errors:
            raise _Invalid(errors)
        return list(dict.fromkeys(result)) if self.unique else result


@dataclass(frozen=True)
class Dict(Field):
    child: Field = field(default_factory=Text)

    def convert(self, data: Any, partial: bool) -> dict[str, Any]:
        result, errors = self.items(data, partial)
        if errors:
            raise _Invalid(errors)
        return result

    def items(self, data: Any, partial: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """The items the child accepts, and the errors of the others."""
        if not isinstance(data, dict):
            raise _Invalid([f'Expected a dictionary of items but got type "{type(data).__name__}".'])
        result, errors = {}, {}
        for key, value in data.items():
            try:
                result[str(key)] = self.child.run(value, partial)
            except _Invalid as exc:
                errors[str(key)] = exc.detail
        return result, errors


def label_problem(key: str, value: str) -> str | None:
    """Kubernetes label syntax: `[prefix/]name` keys (prefix a DNS subdomain) and values of at most 63 characters
    of letters, digits, '-', '_' and '.', starting and ending with a letter or digit."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and _LABEL_PREFIX.fullmatch(prefix)):
        return "The key's prefix (before '/') must be a DNS subdomain of at most 253 characters."
    if len(name) > 63 or not re.match(LABEL_NAME, name):
        return (
            "Not a Kubernetes label key: at most 63 letters, digits, '-', '_' or '.', starting and ending with a "
            "letter or digit, optionally after a DNS subdomain and '/'."
        )
    if not re.match(LABEL_NAME, value):
        return (
            "Not a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a "
            "letter or digit."
        )
    return None


@dataclass(frozen=True)
class Labels(Dict):
    """A map of Kubernetes labels (a cluster's labels, a selector): at most `max_items`, label syntax."""

    child: Field = field(default_factory=lambda: Text(max_length=63))
    max_items: int = MAX_LABELS

    def convert(self, data: Any, partial: bool) -> dict[str, Any]:
        if isinstance(data, dict) and len(data) > self.max_items:
            raise _Invalid([f"Ensure this field has no more than {self.max_items} labels."])
        result, errors = self.items(data, partial)
        errors.update({key: [problem] for key, value in result.items() if (problem := label_problem(key, value))})
        # A string refused for another reason (a null character, its length) also hears its label syntax first,
        # as the API serializer's validators answer it.
        for key, value in data.items():
            detail = errors.get(str(key))
            if isinstance(value, str) and value.strip() and isinstance(detail, list) and str(key) not in result:
                if problem := label_problem(str(key), value.strip()):
                    errors[str(key)] = [problem, *detail]
        if errors:
            raise _Invalid(errors)
        return result


def check_labels(data: Any) -> dict[str, Any]:
    """`Labels` for callers outside this module (the clusters API); DomainError with the API's 400 shape."""
    try:
        return Labels().convert(data, partial=False)
    except _Invalid as exc:
        raise DomainError(exc.detail)


@dataclass(frozen=True)
class Object(Field):
    """A mapping of known fields; unknown ones are refused, not dropped (`ignored` are accepted and dropped)."""

    fields: Mapping[str, Field] = field(default_factory=dict)
    ignored: frozenset[str] = frozenset()

    def convert(self, data: Any, partial: bool) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise _Invalid(
                {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {type(data).__name__}."]}
            )
        unknown = sorted(set(data) - set(self.fields) - self.ignored, key=str)
        if unknown:
            accepted = ", ".join(sorted(self.fields))
            raise _Invalid({name: [f"Unknown field. Accepted fields: {accepted}."] for name in unknown})
        result, errors = {}, {}
        for name, spec_field in self.fields.items():
            try:
                value = spec_field.run(data.get(name, _MISSING), partial)
            except _Invalid as exc:
                errors[name] = exc.detail
                continue
            if value is not _SKIP:
                result[name] = value
        if errors:
            raise _Invalid(errors)
        return result


_PATH_INVALID = "An absolute file path."

TLS_OPTIONS = Object(
    required=False,
    allow_null=True,
    fields={
        "tls_secret": Object(
            required=False,
            fields={
                "cert": Text(trim=False),
                "key": Text(trim=False),
                "ca_cert": Text(required=False, allow_null=True, trim=False),
            },
        ),
        # Declarations of named text fields (here and in GATEWAY_SERVICE below): alike in shape, each its own rule.
        "tls_secret_ref": Object(
            required=False,
            fields={
                "secret_name": Text(
                    max_length=253,
                    pattern=SECRET_NAME,
                    invalid="A Kubernetes secret name: lower-case letters, digits, '-' and '.'.",
                )
            },
        ),
        "tls_secret_path": Object(
            required=False,
            fields={
                "cert_path": Text(pattern=ABSOLUTE_PATH, invalid=_PATH_INVALID),
                "key_path": Text(pattern=ABSOLUTE_PATH, invalid=_PATH_INVALID),
                "ca_cert_path": Text(required=False, allow_null=True, pattern=ABSOLUTE_PATH, invalid=_PATH_INVALID),
            },
        ),
    },
)

GATEWAY_SERVICE = Object(
    fields={
        "name": Text(
            max_length=63,
            pattern=DNS_LABEL,
            invalid="Use a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters.",
        ),
        "team": Text(
            required=False,
            pattern=SLUG,
            invalid='Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.',
        ),
        "namespace": Text(max_length=63),
        "hosts": List(child=Text(max_length=255, trim=False), allow_empty=False, max_length=MAX_HOSTS),
        "port": Integer(invalid="A port number between 1 and 65535."),
        "protocol": Choice(choices=tuple(Protocol.values)),
        "mode": Choice(required=False, allow_null=True, choices=tuple(TLSMode.values)),
        "traffic_type": Choice(choices=tuple(TrafficType.values), canonical=str.lower),
        "tls_options": TLS_OPTIONS,
        "https_redirect": Boolean(required=False, default=False),
        "min_protocol_version": Choice(required=False, allow_null=True, choices=tuple(TLSProtocolVersion.values)),
        "max_protocol_version": Choice(required=False, allow_null=True, choices=tuple(TLSProtocolVersion.values)),
        "clusters": List(required=False, default=list, child=Text(max_length=63), max_length=MAX_CLUSTERS, unique=True),
        "cluster_selector": Labels(required=False, allow_null=True, default=None),
        "ticket": Text(required=False, max_length=100, allow_blank=True, default=""),
    },
    # What the API answers with may be sent back as it is: these read-only fields are dropped.
    ignored=frozenset(
        {
            "id",
            "revision",
            "approval",
            "approval_reference",
            "server_block",
            "credential_name",
            "certificate",
            "status",
            "created_at",
            "updated_at",
            "created_by",
        }
    ),
)


def parse(payload: Any, *, partial: bool = False) -> dict[str, Any]:
    """A gateway service's input from a payload (JSON/YAML-shaped), or DomainError with every field's problem.

    With `partial`, absent fields are left out (a PATCH) instead of being required or defaulted.
    """
    if payload is None:
        raise DomainError({"non_field_errors": [NO_DATA]})
    try:
        return GATEWAY_SERVICE.convert(payload, partial)
    except _Invalid as exc:
        raise DomainError(exc.detail)
