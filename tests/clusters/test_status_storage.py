"""How status rows are stored: a reconcile's update of a row stays on its page (migration services 0011)."""

from __future__ import annotations

import pytest
from django.db import connection

from clusters.converge import _update_statuses
from clusters.models import Cluster
from clusters.reconcile import Outcome
from services.choices import State
from services.models import GatewayService, GatewayServiceStatus
from tests.clusters.builders import team

pytestmark = pytest.mark.django_db


def test_a_reconcile_updates_status_rows_in_place_even_when_they_fill_many_pages():
    """Rows as the create action leaves them (pending), enough to fill several pages, then updated the way a first
    reconcile updates them: each new row version stays on its page and no index is touched (a HOT update). On
    pages filled to the brim, most versions would move, each adding an entry to all three of the table's indexes."""
    cluster = Cluster.objects.create(name="c1", api_server="https://c1.example.com")
    owner = team()
    services = GatewayService.objects.bulk_create(
        GatewayService(name=f"s{i}", team=owner, namespace="payments", traffic_type="ingress") for i in range(2000)
    )
    GatewayServiceStatus.objects.bulk_create(
        GatewayServiceStatus(service=service, cluster=cluster, traffic_type="ingress") for service in services
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size(%s) / current_setting('block_size')::int", [GatewayServiceStatus._meta.db_table]
        )
        assert cursor.fetchone()[0] >= 10  # many pages, each filled as far as the table lets inserts fill it
    rows = list(GatewayServiceStatus.objects.values_list("pk", flat=True))
    applied = Outcome(State.APPLIED, "", 1)
    _update_statuses([(pk, applied) for pk in rows])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_stat_get_xact_tuples_updated(%s::regclass), pg_stat_get_xact_tuples_hot_updated(%s::regclass)",
            [GatewayServiceStatus._meta.db_table] * 2,
        )
        updated, in_place = cursor.fetchone()
    assert updated == len(rows) == 2000
    assert in_place == updated
    assert set(GatewayServiceStatus.objects.values_list("state", "revision")) == {(State.APPLIED, 1)}
