"""Anyone can reach the ticketing webhook: they must not silence a source, nor flood the audit chain.

The signature (or bearer token) is checked before any throttle; unknown sources leave no audit event; refusals to a
known source are audited at most once a minute per (source, reason) with a count; unauthenticated requests have a
per-client budget of their own.
"""

from __future__ import annotations

import json
import logging

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from audit.models import AuditEvent
from tests.factories import make_team
from tests.ticketing.helpers import GENERIC_SECRET, post_generic, standard_headers, url
from ticketing import actions
from ticketing.models import TicketingSource

pytestmark = pytest.mark.django_db
EVENT = {"event": "ticket.approved", "ticket": "OPS-404", "actor": "carol@example.com"}


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def source():
    return TicketingSource.objects.create(
        name="ops-generic", kind="generic", team=make_team("payments"), secret=GENERIC_SECRET
    )


def unsigned(name: str, *, ip: str = "203.0.113.7", **headers: str):
    return Client(REMOTE_ADDR=ip).post(url(name), data=json.dumps(EVENT), content_type="application/json", **headers)


def refusals() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="webhook.refused").order_by("id"))


@override_settings(TICKETING_RATE_LIMIT="5/min", TICKETING_UNAUTHENTICATED_RATE_LIMIT="1000/min")
def test_unsigned_floods_do_not_use_up_a_sources_budget(source):
    for _ in range(20):
        assert unsigned("ops-generic").status_code == 401
    response = post_generic("ops-generic", EVENT, msg_id="genuine")
    assert response.status_code == 200, response.content


def test_unknown_sources_answer_404_are_logged_and_never_audited(source, caplog):
    caplog.set_level(logging.INFO, logger="ticketing")
    before = AuditEvent.objects.count()
    for i in range(20):
        assert unsigned(f"=cmd|calc-{i}").status_code == 404
    assert AuditEvent.objects.count() == before
    logged = [r for r in caplog.records if "unknown_source" in r.getMessage()]
    assert len(logged) == 20


def test_refusals_to_a_known_source_are_audited_once_a_minute_per_reason_with_a_count(source, caplog):
    caplog.set_level(logging.INFO, logger="ticketing")
    for _ in range(20):
        assert unsigned("ops-generic").status_code in (401, 429)
    [first] = refusals()
    assert (first.data["reason"], first.data["count"]) == ("bad_signature", 1)
    assert len([r for r in caplog.records if "bad_signature" in r.getMessage()]) == 20

    # Another reason has its own minute.
    body = json.dumps(EVENT).encode()
    stale = standard_headers(GENERIC_SECRET, "old", body, timestamp=1)
    Client().post(url("ops-generic"), data=body, content_type="application/json", headers=stale)
    assert [e.data["reason"] for e in refusals()] == ["bad_signature", "stale_timestamp"]

    # A minute later the next refusal is audited with everything refused since the last event.
    cache.delete(actions.refusal_gate_key(source, "bad_signature"))
    unsigned("ops-generic")
    last = refusals()[-1]
    assert (last.data["reason"], last.data["count"]) == ("bad_signature", 20)


@override_settings(TICKETING_RATE_LIMIT="1000/min", TICKETING_UNAUTHENTICATED_RATE_LIMIT="3/min")
def test_unauthenticated_requests_have_their_own_per_client_limit(source):
    answers = [unsigned("ops-generic").status_code for _ in range(6)]
    assert answers == [401, 401, 401, 429, 429, 429]
    # Another client is not affected, nor is a genuine delivery from the flooding address.
    assert unsigned("ops-generic", ip="198.51.100.9").status_code == 401
    body = json.dumps(EVENT).encode()
    signed = Client(REMOTE_ADDR="203.0.113.7").post(
        url("ops-generic"),
        data=body,
        content_type="application/json",
        headers=standard_headers(GENERIC_SECRET, "g", body),
    )
    assert signed.status_code == 200


@override_settings(TICKETING_RATE_LIMIT="1000/min", TICKETING_UNAUTHENTICATED_RATE_LIMIT="3/min")
def test_a_forged_forwarded_for_header_does_not_reset_the_client_limit(source):
    answers = [unsigned("ops-generic", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}").status_code for i in range(5)]
    assert answers == [401, 401, 401, 429, 429]
