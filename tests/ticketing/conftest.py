"""Fixtures for the ticketing tests: a team with a pending revision on a gated cluster, and three sources."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from services.models import GatewayServiceRevision
from tests.factories import make_cluster, make_team
from tests.ticketing.helpers import GENERIC_SECRET, JIRA_SECRET, SERVICENOW_TOKEN, make_pending_revision
from ticketing.models import TicketingSource


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # DRF throttles keep their history in the cache; tests must not inherit each other's deliveries.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def team(db):
    return make_team("payments")


@pytest.fixture
def gated_cluster(db):
    return make_cluster("prod-eu-1", requires_approval=True)


@pytest.fixture
def pending(team, gated_cluster) -> GatewayServiceRevision:
    return make_pending_revision(team)


@pytest.fixture
def generic_source(team) -> TicketingSource:
    return TicketingSource.objects.create(name="ops-generic", kind="generic", team=team, secret=GENERIC_SECRET)


@pytest.fixture
def jira_source(team) -> TicketingSource:
    return TicketingSource.objects.create(
        name="jira-prod",
        kind="jira",
        team=team,
        secret=JIRA_SECRET,
        approved_statuses=["Approved"],
        rejected_statuses=["Declined"],
    )


@pytest.fixture
def servicenow_source(team) -> TicketingSource:
    return TicketingSource.objects.create(
        name="snow",
        kind="servicenow",
        team=team,
        secret=SERVICENOW_TOKEN,
        approved_statuses=["approved"],
        rejected_statuses=["rejected"],
    )
