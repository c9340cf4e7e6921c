"""Redis (broker, coalescing markers) crashes and comes back empty while API writes arrive."""

from __future__ import annotations

import time

import pytest
from kombu.exceptions import OperationalError

from clusters import coalescer, enqueue
from clusters.tasks import reconcile_gateway
from gatewayportal.redis import redis_client
from services.models import GatewayService
from tests.clusters.builders import sim_cluster
from tests.factories import api_client, http_service, make_team, make_user
from tests.faults.helpers import SOAK, broker, report, scaled, server_names, wait_applied

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/gateway-services/"
SWEEP_SECONDS = 2


def create(client, name: str) -> GatewayService:
    response = client.post(
        URL, http_service(name=name, hosts=[f"{name}.payments.example.com"], clusters=["c1"]), format="json"
    )
    assert response.status_code == 201, response.content
    return GatewayService.objects.get(pk=response.json()["id"])


def test_api_writes_commit_while_redis_is_down_and_the_sweep_converges(
    worker_factory, kubesim, redis_server, settings, tmp_path
):
    sim_cluster(kubesim, "c1")
    alice = make_user("alice")
    make_team("payments", members=[alice])
    client = api_client(alice)
    settings.REDIS_URL = redis_server.url
    with broker(redis_server.url):
        env = {"CELERY_BROKER_URL": redis_server.url, "SWEEP_INTERVAL_SECONDS": str(SWEEP_SECONDS)}
        # Supervised like the deployment's worker: kombu can exit the worker when the broker dies under it.
        worker = worker_factory(
            env=env, args=("--beat", "--schedule", str(tmp_path / "beat-schedule")), supervised=True
        )
        before = create(client, "before")
        wait_applied([before], "c1")

        redis_server.stop()
        during = [create(client, f"during-{i}") for i in range(int(scaled(5, 50)))]
        assert GatewayService.objects.count() == len(during) + 1

        restarted = time.monotonic()
        redis_server.start()
        wait_applied([before, *during], "c1")
        took = time.monotonic() - restarted

    assert sorted(server_names(kubesim)) == sorted(["http", *(f"http-{s.name}-payments" for s in [before, *during])])
    report(
        f"redis crash: {len(during)} services created while Redis was down (all 201); every block applied "
        f"{took:.1f} s after Redis came back empty (sweep every {SWEEP_SECONDS} s; the worker was restarted "
        f"{worker.restarts} time(s)){' [soak]' if SOAK else ''}"
    )


@pytest.mark.django_db
def test_a_failed_publish_leaves_no_pending_marker_behind(settings, redis_server, monkeypatch):
    """Broker down, marker store up: the marker is cleared, so the next write enqueues instead of being skipped."""
    settings.REDIS_URL = redis_server.url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    published: list[tuple] = []

    def broker_down(*args, **kwargs):
        raise OperationalError("broker unreachable")

    monkeypatch.setattr(reconcile_gateway, "apply_async", broker_down)
    enqueue._enqueue([7], "ingress")  # logged, not raised
    assert not redis_client().exists(coalescer.queued_key(7, "ingress"))

    monkeypatch.setattr(reconcile_gateway, "apply_async", lambda *args, **kwargs: published.append(args))
    enqueue._enqueue([7], "ingress")
    assert published == [((7, "ingress"),)]
