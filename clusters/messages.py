"""What team members read of a cluster's own words: never its address, never its credentials.

Pure. The Kubernetes client's errors name the API server (`HTTPSConnectionPool(host='10.0.0.1', port=6443)`,
`https://10.0.0.1:6443/apis/…`), and the worker records them as they are: in a cluster's health, a gateway's
last message, a dry run's live diff and the status rows of gateway services. Platform engineers read them whole,
like the cluster's `api_server` itself; everyone else reads what these functions make of them. Every answer that
carries such text picks one of them by the caller's role (`clusters.api.serializers`, `services.selectors`).
"""

from __future__ import annotations

import re

from gatewayportal.redaction import redact_text
from services.choices import State

ERROR = "error; platform engineers see the details"
ADDRESS = "[address]"

_TLS = ("ssl", "tls", "certificate", "x509")
_UNAUTHORIZED = (" 401 ", " 403 ", "unauthorized", "forbidden", "token")
_UNREACHABLE = ("cannot reach", "timed out", "timeout", "refused", "connection", "resolve")

# Anything that can name where a cluster is: URLs, urllib3's `host='…'` / `port=…`, resolver messages, IP
# literals (with or without a port, IPv6 bracketed or bare) and `name.domain:port`.
_ADDRESSES = re.compile(
    r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()]*"
    r"|\b(?:host|hostname|server|proxy)=(?:'[^']*'|\"[^\"]*\"|[^\s,)]*)"
    r"|\bport=\d*"
    r"|(?i:resolve)\s+(?:'[^']*'|\"[^\"]*\"|\S+)"
    r"|\[[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\](?::\d+)?"
    r"|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"
    r"|\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7}\b"
    r"|\b(?:[a-zA-Z0-9-]+\.)+[a-zA-Z0-9-]+:\d{1,5}\b"
)


def summary_for_teams(message: str) -> str:
    """The kind of a connection or cluster error, never its address or details.

    For text that is wholly the cluster's error: a health message, a gateway's or a dry run's live read, a
    failed status row.
    """
    if not message:
        return ""
    text = message.lower()
    if any(word in text for word in _TLS):
        return "TLS error"
    if any(word in text for word in _UNAUTHORIZED):
        return "unauthorized"
    if any(word in text for word in _UNREACHABLE):
        return "unreachable"
    return ERROR


def without_addresses(message: str) -> str:
    """The text with every address (and credential) in it replaced: for the portal's own words about a block
    and the API server's refusal of it, which the team needs in order to fix the block."""
    return _ADDRESSES.sub(ADDRESS, redact_text(message))


def status_message_for_teams(state: str, message: str) -> str:
    """A gateway service's status message as team members read it.

    A failed row holds the cluster's error (unreachable, TLS, credentials, a 5xx): its kind only. Every other row
    holds the portal's words (waiting for approval, a clash, left out for size) or the API server's refusal of
    the block (an admission webhook's reason): kept, without addresses.
    """
    if state == State.FAILED:
        return summary_for_teams(message)
    return without_addresses(message)


def for_viewer(message: str, *, platform: bool, state: str = State.FAILED) -> str:
    """The one switch: platform engineers read the text whole, everyone else `status_message_for_teams`."""
    return message if platform else status_message_for_teams(state, message)
