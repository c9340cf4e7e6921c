"""Pure: turn an authenticated delivery of any kind into one normalised `TicketEvent`.

No ORM, no network. A body the kind cannot be read from raises `MalformedPayload` with DRF-shaped errors
(answered 400); a well-formed delivery that asks for nothing becomes an `ignored` event.

Jira issue creation (our mapping): an issue is a gateway-service request when it carries the label
`gateway-service`. Its description holds the request in YAML or JSON — the same fields as the API — either
as the whole description or inside the first code block (`{code:yaml}…{code}`, `{noformat}…{noformat}`,
a Markdown fence, or an Atlassian Document Format codeBlock). The issue key becomes the request's ticket.

Approval references (`services.references`): a generic delivery lists them in `revisions`; a Jira or ServiceNow
delivery carries them in the text of the ticket's description, or of the field the source names instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from gatewayportal import jsonsafe, yamlsafe
from services.references import references_in
from ticketing.signatures import body_digest

APPROVED, REJECTED, CREATED, IGNORED = "approved", "rejected", "created", "ignored"
GENERIC_EVENTS = {"ticket.approved": APPROVED, "ticket.rejected": REJECTED, "ticket.created": CREATED}
JIRA_REQUEST_LABEL = "gateway-service"
MAX_TICKET_CHARS = 100  # GatewayServiceRevision.ticket
MAX_ACTOR_CHARS = 150  # AuditEvent.actor
MAX_COMMENT_CHARS = 4000
MAX_REFERENCES = 500
MAX_REFERENCE_CHARS = 100
DESCRIPTION = "description"


class MalformedPayload(Exception):
    def __init__(self, errors: dict[str, Any]):
        self.errors = errors
        super().__init__(str(errors))


@dataclass(frozen=True)
class TicketEvent:
    kind: str  # approved | rejected | created | ignored
    ticket: str
    delivery_id: str
    actor: str = ""
    comment: str = ""
    gateway_service: dict[str, Any] | None = None
    # Why an event is ignored, or why a creation request could not even be read (kind stays `created`).
    reason: str = ""
    errors: dict[str, Any] = field(default_factory=dict)
    # The approval references the delivery carries (what a source that requires references approves).
    references: tuple[str, ...] = ()


def load_json(body: bytes) -> Any:
    """The delivery's JSON, bounded (`gatewayportal.jsonsafe`): no NaN, no nesting deeper than 64 levels, no NUL
    or unpaired surrogate in any string. Everything after this may walk the body without meeting those."""
    try:
        return jsonsafe.loads(body)
    except jsonsafe.JSONLimitError as exc:
        raise MalformedPayload({"non_field_errors": [f"The body must be a JSON document: {exc}"]}) from exc


# --- generic ------------------------------------------------------------------------------------------


def parse_generic(payload: Any, *, delivery_id: str) -> TicketEvent:
    """`{"event": "ticket.approved|rejected|created", "ticket", "actor"?, "comment"?, "revisions"?,
    "gateway_service"?}`; `revisions` lists approval references."""
    body = _require_object(payload)
    event = body.get("event")
    if not isinstance(event, str) or event not in GENERIC_EVENTS:
        raise MalformedPayload({"event": [f"Unknown event {event!r}; accepted: {', '.join(sorted(GENERIC_EVENTS))}."]})
    kind = GENERIC_EVENTS[event]
    ticket = _ticket(body.get("ticket"), "ticket")
    actor = _optional_text(body, "actor", MAX_ACTOR_CHARS)
    comment = _optional_text(body, "comment", MAX_COMMENT_CHARS)
    service = None
    if kind == CREATED:
        service = body.get("gateway_service")
        if not isinstance(service, dict):
            raise MalformedPayload(
                {"gateway_service": ["ticket.created needs an object with the API's gateway service fields."]}
            )
        service = _with_ticket(service, ticket)
    references = _reference_list(body.get("revisions"))
    return TicketEvent(
        kind, ticket, delivery_id, actor=actor, comment=comment, gateway_service=service, references=references
    )


def _reference_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if (
        not isinstance(value, list)
        or len(value) > MAX_REFERENCES
        or not all(isinstance(v, str) and 0 < len(v.strip()) <= MAX_REFERENCE_CHARS for v in value)
    ):
        raise MalformedPayload(
            {
                "revisions": [
                    f"A list of at most {MAX_REFERENCES} approval references (the `approval_reference` of each "
                    "revision the ticket approves)."
                ]
            }
        )
    return tuple(dict.fromkeys(v.strip().lower() for v in value))


# --- jira ---------------------------------------------------------------------------------------------


def parse_jira(
    payload: Any,
    *,
    body: bytes,
    approved: Iterable[str],
    rejected: Iterable[str],
    reference_field: str = DESCRIPTION,
) -> TicketEvent:
    """Jira Cloud `jira:issue_updated` (a status transition) and `jira:issue_created` (a filed request)."""
    data = _require_object(payload)
    delivery_id = body_digest(body)
    event = data.get("webhookEvent")
    issue = data.get("issue")
    if not isinstance(issue, dict) or not isinstance(issue.get("fields", {}), dict):
        raise MalformedPayload({"issue": ["A Jira webhook body needs an `issue` object with `key` and `fields`."]})
    ticket = _ticket(issue.get("key"), "issue.key")
    actor = _jira_actor(data.get("user"))
    if event == "jira:issue_updated":
        references = _references_in(issue.get("fields", {}).get(reference_field or DESCRIPTION))
        return _jira_transition(
            data,
            ticket=ticket,
            actor=actor,
            delivery_id=delivery_id,
            approved=approved,
            rejected=rejected,
            references=references,
        )
    if event == "jira:issue_created":
        return _jira_request(issue, ticket=ticket, actor=actor, delivery_id=delivery_id)
    return TicketEvent(IGNORED, ticket, delivery_id, actor=actor, reason=f"Jira event {event!r} is not acted on.")


def _jira_transition(
    data: dict[str, Any],
    *,
    ticket: str,
    actor: str,
    delivery_id: str,
    approved: Iterable[str],
    rejected: Iterable[str],
    references: tuple[str, ...],
) -> TicketEvent:
    changelog = data.get("changelog")
    items = changelog.get("items") if isinstance(changelog, dict) else None
    items = items if isinstance(items, list) else []
    statuses = [i.get("toString") for i in items if isinstance(i, dict) and i.get("field") == "status"]
    if not statuses or not isinstance(statuses[-1], str):
        return TicketEvent(IGNORED, ticket, delivery_id, actor=actor, reason="The update changes no status.")
    status = statuses[-1]
    kind = match_status([status], approved=approved, rejected=rejected)
    comment = _jira_comment(data.get("comment")) or f"Jira {ticket} moved to {status!r}."
    reason = "" if kind != IGNORED else f"Status {status!r} is mapped neither to approved nor to rejected."
    return TicketEvent(kind, ticket, delivery_id, actor=actor, comment=comment, reason=reason, references=references)


def _jira_request(issue: dict[str, Any], *, ticket: str, actor: str, delivery_id: str) -> TicketEvent:
    fields = issue.get("fields") or {}
    labels = fields.get("labels")
    if not isinstance(labels, list) or JIRA_REQUEST_LABEL not in labels:
        return TicketEvent(
            IGNORED, ticket, delivery_id, actor=actor, reason=f"Issue has no {JIRA_REQUEST_LABEL!r} label."
        )
    comment = f"Filed from Jira {ticket}."
    try:
        service = _request_from_description(fields.get("description"))
    except ValueError as exc:
        return TicketEvent(
            CREATED, ticket, delivery_id, actor=actor, comment=comment, errors={"description": [str(exc)]}
        )
    return TicketEvent(
        CREATED, ticket, delivery_id, actor=actor, comment=comment, gateway_service=_with_ticket(service, ticket)
    )


# Openers of the code blocks a description may hold, and the closer each one needs.
_CODE_OPENER = re.compile(r"\{code(?::[^}\n]{0,200})?\}|\{noformat\}|```[\w-]{0,50}\n")


def _closer(opener: str) -> str:
    return "{code}" if opener.startswith("{code") else "{noformat}" if opener.startswith("{noformat") else "```"


def first_code_block(text: str) -> str | None:
    """The text of the first closed code block (`{code[:lang]}…{code}`, `{noformat}…{noformat}`, a Markdown
    fence), or None.

    In linear time: an opener without its closer means no later opener of that kind has one either, so each kind
    is searched to the end at most once. (The regular expression this replaces rescanned the rest of the text
    for every unclosed opener: 160 KB of `{code:x}` took 30 s of a web worker, 1 MiB about 20 minutes.)
    """
    unclosed: set[str] = set()
    for opener in _CODE_OPENER.finditer(text):
        closer = _closer(opener.group())
        if closer in unclosed:
            continue
        end = _find_closer(text, closer, opener.end())
        if end < 0:
            unclosed.add(closer)
            if len(unclosed) == 3:
                return None
            continue
        return text[opener.end() : end]
    return None


def _find_closer(text: str, closer: str, start: int) -> int:
    return text.find(closer, start)


def _request_from_description(description: Any) -> dict[str, Any]:
    text = _adf_code(description) if isinstance(description, dict) else description
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The description must hold the gateway service request in YAML or JSON.")
    block = first_code_block(text)
    if block is not None:
        text = block
    try:
        service = yamlsafe.load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"The description's gateway service request is not valid YAML or JSON: {exc}") from exc
    if not isinstance(service, dict):
        raise ValueError(
            "The description must hold a mapping of the API's gateway service fields (name, hosts, port, …)."
        )
    return service


def _adf_code(node: dict[str, Any]) -> str:
    """Text of the first codeBlock of an Atlassian Document Format tree, else all of its text.

    Walked without recursion, and forgiving of any shape: a node that is not an object, a `content` that is not a
    list and a `text` that is not a string add nothing (they were a `TypeError`, a 500, before).
    """
    code = next((n for n in _adf_nodes(node) if n.get("type") == "codeBlock"), None)
    if code is not None:
        return "".join(_adf_texts(code))
    return "\n".join(_adf_texts(node))


def _adf_nodes(root: Any) -> Iterator[dict[str, Any]]:
    """The object nodes of an ADF tree in document order (depth first)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield node
        content = node.get("content")
        if isinstance(content, list):
            stack.extend(reversed(content))


def _adf_texts(root: Any) -> list[str]:
    return [n["text"] for n in _adf_nodes(root) if n.get("type") == "text" and isinstance(n.get("text"), str)]


def _jira_actor(user: Any) -> str:
    if not isinstance(user, dict):
        return ""
    for key in ("emailAddress", "displayName", "name", "accountId"):
        if isinstance(user.get(key), str) and user[key]:
            return user[key][:MAX_ACTOR_CHARS]
    return ""


def _jira_comment(comment: Any) -> str:
    if isinstance(comment, dict):
        body = comment.get("body")
        text = _adf_code(body) if isinstance(body, dict) else body
        if isinstance(text, str):
            return text[:MAX_COMMENT_CHARS]
    return ""


# --- servicenow ---------------------------------------------------------------------------------------


# The same keywords as parse_jira on purpose: ticketing.actions passes one status mapping to either.
def parse_servicenow(
    payload: Any,
    *,
    body: bytes,
    approved: Iterable[str],
    rejected: Iterable[str],
    reference_field: str = DESCRIPTION,
) -> TicketEvent:
    """A change_request record (`number`, `state`, `approval`), top level or under `result` as the Table API sends it.

    Field values may be plain strings or `{"value", "display_value"}` pairs; either matches the status mapping.
    """
    data = _require_object(payload)
    record = data["result"] if isinstance(data.get("result"), dict) else data
    delivery_id = body_digest(body)
    numbers = _sn_values(record.get("number"))
    ticket = _ticket(numbers[0] if numbers else None, "number")
    actor = next(iter(_sn_values(record.get("sys_updated_by"))), "")[:MAX_ACTOR_CHARS]
    table = next(iter(_sn_values(record.get("sys_class_name"))), "change_request")
    if table != "change_request":
        return TicketEvent(IGNORED, ticket, delivery_id, actor=actor, reason=f"Records of {table!r} are not acted on.")
    approval, state = _sn_values(record.get("approval")), _sn_values(record.get("state"))
    if not approval and not state:
        raise MalformedPayload({"non_field_errors": ["A change_request needs `state` or `approval`."]})
    kind = match_status(approval + state, approved=approved, rejected=rejected)
    shown = "/".join(approval[-1:] + state[-1:])
    comment = next(iter(_sn_values(record.get("comments"))), "") or f"ServiceNow {ticket}: {shown}."
    reason = "" if kind != IGNORED else f"approval/state {shown!r} is mapped neither to approved nor to rejected."
    references = _references_in(record.get(reference_field or DESCRIPTION))
    return TicketEvent(
        kind,
        ticket,
        delivery_id,
        actor=actor,
        comment=comment[:MAX_COMMENT_CHARS],
        reason=reason,
        references=references,
    )


def _sn_values(value: Any) -> list[str]:
    """A field's plain value, or the `value` and `display_value` of a pair; strings and whole numbers only (a list
    or an object there is no status, number or name)."""
    pair = [value.get(k) for k in ("value", "display_value")] if isinstance(value, dict) else [value]
    return [str(v) for v in pair if _sn_scalar(v)]


def _sn_scalar(value: Any) -> bool:
    return (isinstance(value, str) and value != "") or (isinstance(value, int) and not isinstance(value, bool))


# --- shared -------------------------------------------------------------------------------------------


def text_of(value: Any) -> str:
    """Every string inside a field's value, one a line: plain text, an Atlassian Document Format tree, a
    ServiceNow `{value, display_value}` pair, a list of options. Walked without recursion (bodies may nest deep)."""
    texts: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return "\n".join(texts)


def _references_in(value: Any) -> tuple[str, ...]:
    """The approval references written in a field, the first `MAX_REFERENCES` of them (as a generic delivery's)."""
    return tuple(references_in(text_of(value))[:MAX_REFERENCES])


def match_status(values: Iterable[str], *, approved: Iterable[str], rejected: Iterable[str]) -> str:
    """Rejected wins over approved when a delivery matches both: a refusal must never be missed."""
    seen = {v.strip().casefold() for v in values}
    if seen & {s.strip().casefold() for s in rejected}:
        return REJECTED
    if seen & {s.strip().casefold() for s in approved}:
        return APPROVED
    return IGNORED


def _require_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise MalformedPayload({"non_field_errors": ["The body must be a JSON object."]})
    return payload


def _ticket(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_TICKET_CHARS:
        raise MalformedPayload(
            {name: [f"A ticket reference is required: a non-empty string of at most {MAX_TICKET_CHARS} characters."]}
        )
    return value.strip()


def _optional_text(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedPayload({name: ["Must be a string."]})
    return value[:limit]


def _with_ticket(service: dict[str, Any], ticket: str) -> dict[str, Any]:
    """The filing ticket is the request's ticket, so that same ticket later decides its approval."""
    return {**service, "ticket": ticket}
