from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from gatewayportal import metrics
from services import metrics as services_metrics
from services.models import GatewayService, GatewayServiceRevision, Team


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def make_service(team: Team, name: str, *, approval: str = "not_required", not_after: datetime | None = None):
    service = GatewayService.objects.create(name=name, team=team, namespace="payments", traffic_type="ingress")
    certificate = {"subject": "CN=x", "not_after": not_after.isoformat()} if not_after else None
    revision = GatewayServiceRevision.objects.create(
        service=service, number=1, spec={}, approval=approval, certificate=certificate
    )
    service.current_revision = revision
    service.save(update_fields=["current_revision"])
    return service


@pytest.fixture
def team(db):
    return Team.objects.create(slug="payments", name="Payments", namespaces=["payments"])


def test_metrics_exposes_django_prometheus_and_portal_metrics(client, db):
    metrics.observe_reconcile("prod-eu-1", "ingress", 0.3)
    metrics.count_apply_failure("conflict")
    metrics.set_queue_lag(4.5)

    samples = scrape(client)

    labels = (("cluster", "prod-eu-1"), ("traffic_type", "ingress"))
    assert samples[("gatewayportal_reconcile_duration_seconds_count", labels)] >= 1
    assert samples[("gatewayportal_reconcile_duration_seconds_bucket", tuple(sorted((*labels, ("le", "0.5")))))] >= 1
    assert samples[("gatewayportal_apply_failures_total", (("reason", "conflict"),))] >= 1
    assert samples[("gatewayportal_queue_lag_seconds", ())] == 4.5
    assert any(name.startswith("django_http_requests") for name, _ in samples)


def test_queue_lag_is_never_negative(client, db):
    metrics.set_queue_lag(-2)  # clock skew between the enqueuing host and the worker

    assert scrape(client)[("gatewayportal_queue_lag_seconds", ())] == 0


def test_pending_approvals_counts_only_current_pending_revisions(client, team):
    make_service(team, "pending-one", approval="pending")
    make_service(team, "approved-one", approval="approved")
    superseded = make_service(team, "superseded", approval="pending")
    newer = GatewayServiceRevision.objects.create(service=superseded, number=2, spec={}, approval="approved")
    superseded.current_revision = newer
    superseded.save(update_fields=["current_revision"])
    deleting = make_service(team, "deleting", approval="pending")
    deleting.deleting_at = timezone.now()
    deleting.save(update_fields=["deleting_at"])

    assert scrape(client)[("gatewayportal_pending_approvals", ())] == 1


def test_certificate_gauges_split_expiring_and_expired(client, team, settings):
    settings.CERT_EXPIRY_WARNING_DAYS = 30
    now = timezone.now()
    make_service(team, "soon", not_after=now + timedelta(days=10))
    make_service(team, "later", not_after=now + timedelta(days=90))
    make_service(team, "gone", not_after=now - timedelta(days=1))
    make_service(team, "plain")

    samples = scrape(client)

    assert samples[("gatewayportal_certificates_expiring", ())] == 1
    assert samples[("gatewayportal_certificates_expired", ())] == 1


def test_count_certificates_ignores_unparseable_values_and_reads_naive_times_as_utc():
    now = datetime(2030, 1, 1, tzinfo=UTC)

    counts = services_metrics.count_certificates(
        ["2030-01-05T00:00:00", "2030-01-05T00:00:00Z", "not a date", None, "2029-12-31T00:00:00+00:00"],
        now=now,
        window=timedelta(days=30),
    )

    assert counts == (2, 1)


def test_multiprocess_mode_aggregates_files_from_the_directory(client, db, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    samples = scrape(client)

    # No process has written to the empty directory: only the database gauges are there.
    assert ("gatewayportal_pending_approvals", ()) in samples
    assert not any(name.startswith("python_gc") for name, _ in samples)


def test_collectors_registered_by_an_app_are_read_on_every_scrape(client, db, monkeypatch):
    from prometheus_client.core import GaugeMetricFamily

    class Widgets:
        def collect(self):
            yield GaugeMetricFamily("gatewayportal_test_widgets", "Widgets.", value=3)

    monkeypatch.setattr(metrics, "_state_collectors", dict(metrics._state_collectors))
    metrics.register_state_collector(Widgets)
    metrics.register_state_collector(Widgets)  # registering twice is harmless

    samples = scrape(client)

    assert samples[("gatewayportal_test_widgets", ())] == 3
    assert ("gatewayportal_pending_approvals", ()) in samples  # the services app registered its own at start-up
