"""The request's Postgres connection is killed in the middle of a create: a clean failure, nothing written."""

from __future__ import annotations

import psycopg2
import pytest
from django.conf import settings as django_settings
from django.db import connection

from audit.models import AuditEvent
from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus
from tests.factories import api_client, http_service, make_cluster, make_team, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/gateway-services/"


def terminate(pid: int) -> None:
    """What a failover or a network cut does to the request's session, from another connection."""
    db = django_settings.DATABASES["default"]
    other = psycopg2.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"])
    try:
        other.autocommit = True
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


@pytest.mark.parametrize("table", ["services_gatewayservicerevision", "services_gatewayservicestatus", "audit_"])
def test_a_connection_killed_mid_create_leaves_nothing_behind(table):
    alice = make_user("alice")
    make_team("payments", members=[alice])
    make_cluster("prod-eu-1")
    client = api_client(alice)
    client.raise_request_exception = False
    killed: list[str] = []

    def kill_before(execute, sql, params, many, context):
        if not killed and sql.lstrip().upper().startswith("INSERT") and f'"{table}' in sql:
            killed.append(sql)
            terminate(context["connection"].connection.get_backend_pid())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(kill_before):
        response = client.post(URL, http_service(), format="json")

    assert killed, f"the create never wrote to {table}"
    assert response.status_code == 500
    assert "Traceback" not in response.content.decode() and "psycopg2" not in response.content.decode()
    connection.close()  # the killed session is gone; the next query opens a new one
    assert GatewayService.objects.count() == 0
    assert GatewayServiceRevision.objects.count() == 0
    assert GatewayServiceStatus.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="gateway_service").exists()
