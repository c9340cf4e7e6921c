"""Whatever JSON a ticketing system signs, the webhook answers 200 or a clear 400, never a 5xx.

Hypothesis posts validly signed bodies to a source of each kind (generic, Jira, ServiceNow): arbitrary JSON, and
realistic deliveries with any one part replaced by arbitrary JSON (wrong types anywhere: an ADF `content` that is a
number, a `text` that is an object, nodes that are strings or null, a ServiceNow pair holding a list), with NUL
characters, unpaired surrogates and numbers beyond a float in the mix. The cases each found a 500 before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.factories import http_service, make_cluster, make_team
from tests.ticketing.helpers import GENERIC_SECRET, JIRA_SECRET, SERVICENOW_TOKEN, make_pending_revision, url
from ticketing import parsers
from ticketing.models import TicketingSource

pytestmark = pytest.mark.django_db
SETTINGS = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True
)
REFERENCE = "gpr-0123456789abcdef"

STRINGS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff", "gateway-service", "Approved", "codeBlock", "text"]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=False),  # ±inf is written as 1e999, which Python reads back as inf
    STRINGS,
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(STRINGS, children, max_size=4),
    max_leaves=16,
)
# What put in place of a part of a real delivery: as often one of the values that broke something as anything else.
HOSTILE = st.sampled_from(["\x00", "OPS-\x00", "\ud800", 10**400, -(10**400), 7, None, "", [], {}, [None], {"x": 1}])
REPLACEMENTS = st.one_of(HOSTILE, JSON)


def _adf(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(nodes)}


def _now_ms() -> int:
    return int(time.time() * 1000)


def generic_delivery() -> dict[str, Any]:
    return {
        "event": "ticket.created",
        "ticket": "OPS-9",
        "actor": "ops",
        "comment": "filed",
        "revisions": [REFERENCE],
        "gateway_service": http_service(name="filed"),
    }


def jira_created() -> dict[str, Any]:
    code = {"type": "codeBlock", "attrs": {"language": "json"}, "content": [{"type": "text", "text": '{"name": "a"}'}]}
    return {
        "timestamp": _now_ms(),
        "webhookEvent": "jira:issue_created",
        "user": {"emailAddress": "alice@example.com", "displayName": "Alice"},
        "issue": {
            "key": "OPS-124",
            "fields": {
                "labels": ["gateway-service"],
                "description": _adf({"type": "paragraph", "content": [{"type": "text", "text": "Please:"}]}, code),
            },
        },
    }


def jira_updated() -> dict[str, Any]:
    return {
        "timestamp": _now_ms(),
        "webhookEvent": "jira:issue_updated",
        "user": {"emailAddress": "carol@example.com"},
        "issue": {"key": "OPS-123", "fields": {"description": f"{{code}}approve {REFERENCE}{{code}}"}},
        "changelog": {"items": [{"field": "status", "fromString": "Open", "toString": "Approved"}]},
        "comment": {"body": _adf({"type": "paragraph", "content": [{"type": "text", "text": "ok"}]})},
    }


def servicenow_record() -> dict[str, Any]:
    return {
        "result": {
            "number": {"value": "OPS-123", "display_value": "OPS-123"},
            "state": {"value": "3", "display_value": "approved"},
            "approval": "approved",
            "sys_updated_by": "bob",
            "sys_class_name": "change_request",
            "comments": "fine",
            "description": f"approves {REFERENCE}",
        }
    }


TEMPLATES = {"generic": [generic_delivery], "jira": [jira_created, jira_updated], "servicenow": [servicenow_record]}


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a document: the root, each key of an object and each item of a list."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def replaced(document: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    document = json.loads(json.dumps(document))
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


def signed(kind: str, body: bytes, msg_id: str) -> dict[str, str]:
    """Headers each kind's sender would add (tests/ticketing/helpers.py signs the same way)."""
    if kind == "generic":
        key = base64.b64decode(GENERIC_SECRET.removeprefix("whsec_"))
        stamp = str(int(time.time()))
        digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }
    if kind == "jira":
        return {"X-Hub-Signature": "sha256=" + hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()}
    return {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}


@pytest.fixture
def sources(settings):
    settings.TICKETING_RATE_LIMIT = settings.TICKETING_UNAUTHENTICATED_RATE_LIMIT = "100000/min"
    team = make_team("payments")
    make_cluster("prod-eu-1", requires_approval=True)
    make_pending_revision(team, ticket="OPS-123")
    statuses = {"approved_statuses": ["Approved", "approved"], "rejected_statuses": ["Declined", "rejected"]}
    TicketingSource.objects.create(name="generic", kind="generic", team=team, secret=GENERIC_SECRET)
    TicketingSource.objects.create(name="jira", kind="jira", team=team, secret=JIRA_SECRET, **statuses)
    TicketingSource.objects.create(name="servicenow", kind="servicenow", team=team, secret=SERVICENOW_TOKEN, **statuses)
    return iter(range(1_000_000))


def deliver(kind: str, body: bytes, msg_id: str, headers: dict[str, str] | None = None):
    """One delivery, rolled back afterwards (each example starts from the same world)."""
    client = Client(raise_request_exception=False)
    with transaction.atomic():
        answer = client.post(
            url(kind), data=body, content_type="application/json", headers=headers or signed(kind, body, msg_id)
        )
        transaction.set_rollback(True)
    return answer


def assert_clear(answer, what: Any) -> None:
    assert answer.status_code in (200, 400), (what, answer.status_code, answer.content[:300])
    content = answer.json()
    assert isinstance(content, dict) and content, (what, content)
    if answer.status_code == 200:
        assert "outcome" in content, content


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_any_signed_json_gets_a_clear_answer(sources, kind):
    @SETTINGS
    @example([])
    @example("x")
    @example({"issue": None, "result": []})
    @given(JSON)
    def attack(document):
        body = json.dumps(document).encode()
        assert_clear(deliver(kind, body, f"msg_{next(sources)}"), document)

    attack()


@pytest.mark.parametrize(("kind", "template"), [(k, t) for k, ts in sorted(TEMPLATES.items()) for t in ts])
def test_a_delivery_with_any_part_of_the_wrong_type_gets_a_clear_answer(sources, kind, template):
    places = paths(template())

    @settings(SETTINGS, max_examples=60)
    @given(st.sampled_from(places), REPLACEMENTS)
    def attack(path, value):
        document = replaced(template(), path, value)
        body = json.dumps(document).encode()
        assert_clear(deliver(kind, body, f"msg_{next(sources)}"), (path, value))

    attack()


ADF_SHAPES = {
    "content a number": {"type": "doc", "content": 5},
    "codeBlock content a number": _adf({"type": "codeBlock", "content": 7}),
    "content a string": {"type": "doc", "content": "abc"},
    "content an object": {"type": "doc", "content": {"type": "text", "text": "x"}},
    "text an object": _adf({"type": "paragraph", "content": [{"type": "text", "text": {"a": [1]}}]}),
    "nodes of every type": _adf("x", 1, None, True, [], {"type": "text", "text": "ok"}),
}


@pytest.mark.parametrize("shape", sorted(ADF_SHAPES))
def test_jira_adf_of_any_shape_is_read_or_refused(sources, shape):
    document = jira_created()
    document["issue"]["fields"]["description"] = ADF_SHAPES[shape]
    answer = deliver("jira", json.dumps(document).encode(), "x")

    assert answer.status_code == 200, answer.content[:300]
    assert answer.json()["outcome"] == "rejected"  # a filed request that cannot be read: no service


def _nested_adf(depth: int) -> dict[str, Any]:
    request = json.dumps(http_service(name="nested", hosts=["nested.payments.example.com"]))
    node: dict[str, Any] = {"type": "codeBlock", "content": [{"type": "text", "text": request}]}
    for _ in range(depth):
        node = {"type": "bulletList", "content": [node]}
    return node


def test_deep_documents_are_refused_and_reasonable_ones_read(sources):
    shallow, deep = jira_created(), jira_created()
    shallow["issue"]["fields"]["description"] = _nested_adf(25)  # 4 + 2 * 25 levels: within the bound of 64
    deep["issue"]["fields"]["description"] = _nested_adf(300)  # below Python's JSON limit, above the portal's
    brackets = b"[" * 100_000  # Python's JSON decoder raised RecursionError

    read = deliver("jira", json.dumps(shallow).encode(), "x")
    refused = deliver("jira", json.dumps(deep).encode(), "x")

    assert read.status_code == 200 and read.json()["outcome"] == "created", read.content[:300]
    assert refused.status_code == 400 and "nested deeper than 64" in json.dumps(refused.json())
    for kind in sorted(TEMPLATES):
        answer = deliver(kind, brackets, f"deep-{kind}")
        assert answer.status_code == 400, (kind, answer.content[:200])


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("generic", {"actor": "a\x00b"}),
        ("generic", {"comment": "a\x00b"}),
        ("generic", {"ticket": "OPS-\x001"}),
        ("generic", {"ticket": "OPS-\ud8001"}),
        ("generic", {"revisions": ["gpr-\x00"]}),
        ("generic", {"gateway_service": {"\x00": 1}}),
        ("generic", {"gateway_service": {"\ud800": 1}}),
        ("jira", {"user": {"emailAddress": "a\x00"}}),
        ("jira", {"timestamp": 10**400}),
        ("jira", {"timestamp": -(10**400)}),
        ("servicenow", {"result": {"number": "CHG\x001", "state": "approved"}}),
        ("servicenow", {"result": {"number": "OPS-123", "state": "approved", "comments": "\ud800"}}),
    ],
    ids=[
        "generic-actor-NUL",
        "generic-comment-NUL",
        "generic-ticket-NUL",
        "generic-ticket-surrogate",
        "generic-reference-NUL",
        "generic-field-NUL",
        "generic-field-surrogate",
        "jira-actor-NUL",
        "jira-timestamp-huge",
        "jira-timestamp-huge-negative",
        "servicenow-number-NUL",
        "servicenow-comment-surrogate",
    ],
)
def test_text_the_database_cannot_store_and_numbers_beyond_a_float_are_refused(sources, kind, change):
    template = {"generic": generic_delivery, "jira": jira_updated, "servicenow": servicenow_record}[kind]
    document = {**template(), **change}

    answer = deliver(kind, json.dumps(document).encode(), "x")

    assert answer.status_code == 400, answer.content[:300]


def test_a_servicenow_pair_holding_a_list_or_object_is_no_ticket_number(sources):
    document = servicenow_record()
    document["result"]["number"] = {"value": {"a": [1]}, "display_value": ["OPS-123"]}

    answer = deliver("servicenow", json.dumps(document).encode(), "x")

    assert answer.status_code == 400
    assert set(answer.json()) == {"number"}


def test_a_generic_timestamp_beyond_a_float_is_a_clear_refusal(sources):
    body = json.dumps({"event": "ticket.approved", "ticket": "OPS-123"}).encode()
    key = base64.b64decode(GENERIC_SECRET.removeprefix("whsec_"))
    for stamp in ("9" * 400, "9" * 5000):
        digest = hmac.new(key, f"m.{stamp}.".encode() + body, hashlib.sha256).digest()
        headers = {
            "webhook-id": "m",
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }
        answer = deliver("generic", body, "m", headers=headers)
        assert answer.status_code == 400, (len(stamp), answer.content[:200])


def test_the_signature_is_checked_before_the_body_is_read(sources):
    """An unsigned body of any shape is a 401, never a parse error: nobody learns how bodies are read."""
    for kind in sorted(TEMPLATES):
        for body in (b"[" * 100_000, b'{"a": "\\u0000"}', b"not json"):
            answer = deliver(kind, body, "x", headers={"X-Hub-Signature": "sha256=00", "Authorization": "Bearer x"})
            assert answer.status_code == 401, (kind, body[:10], answer.status_code)


def test_a_source_name_no_source_can_have_is_unknown():
    answer = Client(raise_request_exception=False).post(url("a\x00b"), data=b"{}", content_type="application/json")

    assert answer.status_code == 404


def test_an_unclosed_code_block_is_searched_once(monkeypatch):
    """Unclosed `{code:x}` openers each made the regular expression rescan the rest of the description (quadratic:
    160 KB took 30 s of a web worker). Each kind of block is now searched to the end at most once."""
    searches = []
    find = parsers._find_closer
    monkeypatch.setattr(parsers, "_find_closer", lambda *args: searches.append(args[1]) or find(*args))
    hostile = "{code:x}" * 100_000 + "{noformat}" * 3 + "```\n" * 3

    assert parsers.first_code_block(hostile + "{noformat}") == ""  # the second of four {noformat} closes the first
    assert len(searches) <= 3
    searches.clear()
    assert parsers.first_code_block("{code:x}" * 100_000) is None
    assert searches == ["{code}"]


@pytest.mark.parametrize(
    ("text", "block"),
    [
        ("before {code:yaml}\nname: a\n{code} after {code}b{code}", "\nname: a\n"),
        ("{noformat}x{noformat}", "x"),
        ("```yaml\nname: a\n```", "name: a\n"),
        ("{code:yaml} unclosed, then {noformat}n{noformat}", "n"),
        ("```\nfirst``` {code}second{code}", "first"),
        ("{code}{code}", ""),
        ("no block", None),
    ],
)
def test_code_blocks_are_found_as_before(text, block):
    assert parsers.first_code_block(text) == block
