"""Approval references: the short string a change board quotes to approve exactly one revision.

A reference is an HMAC (keyed from SECRET_KEY by Django's `salted_hmac`) of the service, the revision number
and a digest of the revision's spec. It is stored on the revision when the revision is made, so rotating
SECRET_KEY never changes a reference already shown to a reviewer. Nobody can work out the reference of a
revision that has not been written yet, and a revision with another spec always gets another reference.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from django.utils.crypto import salted_hmac

PREFIX = "gpr-"
HEX_CHARS = 16  # 64 bits: short enough to paste into a ticket, far too many to guess
# How a reference is found in a ticket's free text (a description or a configured field).
PATTERN = re.compile(rf"(?<![0-9a-z-]){PREFIX}[0-9a-f]{{{HEX_CHARS}}}(?![0-9a-z])", re.IGNORECASE)
_SALT = "gatewayportal.services.approval_reference"


def spec_digest(spec: dict[str, Any]) -> str:
    """SHA-256 of the spec in canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def approval_reference(*, service_id: Any, number: int, spec: dict[str, Any]) -> str:
    mac = salted_hmac(_SALT, f"{service_id}:{number}:{spec_digest(spec)}", algorithm="sha256")
    return PREFIX + mac.hexdigest()[:HEX_CHARS]


def references_in(text: str) -> list[str]:
    """Every approval reference written in `text`, in order, without repeats."""
    return list(dict.fromkeys(found.lower() for found in PATTERN.findall(text)))
