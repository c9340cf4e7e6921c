"""The worker feeds the Prometheus metrics: reconcile durations, apply failures by reason, queue lag."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from clusters.converge import gateway_converge
from clusters.kube import TransientError
from tests.clusters.builders import make_service, sim_cluster

pytestmark = pytest.mark.django_db


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_reconcile_is_timed_per_gateway(kubesim):
    cluster = sim_cluster(kubesim, "timed")
    make_service(clusters=["timed"])
    before = sample("gatewayportal_reconcile_duration_seconds_count", cluster="timed", traffic_type="ingress")

    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    after = sample("gatewayportal_reconcile_duration_seconds_count", cluster="timed", traffic_type="ingress")
    assert after == before + 1


def test_a_failed_apply_is_counted_by_reason(kubesim):
    cluster = sim_cluster(kubesim, "down")
    cluster.api_server = "http://127.0.0.1:9"  # nothing listens there
    cluster.save()
    make_service(clusters=["down"])
    before = sample("gatewayportal_apply_failures_total", reason="TransientError")

    with pytest.raises(TransientError):
        gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")

    assert sample("gatewayportal_apply_failures_total", reason="TransientError") == before + 1


def test_queue_lag_is_measured_from_publish_time():
    from gatewayportal.celery import _observe_queue_lag

    request = SimpleNamespace(is_eager=False, eta=None, published_at=None)
    _observe_queue_lag(request, {"published_at": time.time() - 3})

    assert sample("gatewayportal_queue_lag_seconds") >= 3
