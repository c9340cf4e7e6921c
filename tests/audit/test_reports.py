import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit import reports
from audit.models import AuditEvent
from services.choices import State
from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus, Team
from tests.factories import api_client, make_cluster, make_team, make_user

JAN = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday


@pytest.fixture
def alice():
    user = make_user("alice")
    make_team("payments", members=[user])
    make_team("search")
    return user


@pytest.fixture
def platform():
    return make_user("root", platform=True)


@pytest.fixture
def history(bulk_events):
    bulk_events(3, start=JAN, team="payments", actor="alice", step=timedelta(days=1))
    bulk_events(2, start=JAN + timedelta(weeks=1), team="search", actor="bob", cluster="prod-eu-1")
    bulk_events(1, start=JAN + timedelta(weeks=1), team="payments", action="gateway_service.created")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [{"team": "payments", "count": 4}, {"team": "search", "count": 2}]),
        ("group_by=actor", [{"actor": "alice", "count": 4}, {"actor": "bob", "count": 2}]),
        ("group_by=cluster", [{"cluster": None, "count": 4}, {"cluster": "prod-eu-1", "count": 2}]),
        (
            "group_by=action",
            [{"action": "gateway_service.updated", "count": 5}, {"action": "gateway_service.created", "count": 1}],
        ),
        ("since=2025-01-13T00:00:00Z", [{"team": "search", "count": 2}, {"team": "payments", "count": 1}]),
        ("until=2025-01-07T00:00:00Z", [{"team": "payments", "count": 1}]),
    ],
)
def test_changes_report_counts(platform, history, query, expected):
    body = api_client(platform).get(f"/api/v1/reports/changes/?{query}").json()

    assert body["results"] == expected
    assert body["total"] == sum(row["count"] for row in expected)


@pytest.mark.django_db
def test_changes_report_is_team_scoped(alice, history):
    body = api_client(alice).get("/api/v1/reports/changes/").json()

    assert body["results"] == [{"team": "payments", "count": 4}]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("group_by=week", "group_by", "accepted: team, cluster, action, actor"),
        ("since=soon", "since", "Datetime has wrong format"),
        ("since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z", "until", "later than since"),
    ],
)
def test_changes_report_refuses_bad_input(platform, query, field, message):
    response = api_client(platform).get(f"/api/v1/reports/changes/?{query}")

    assert response.status_code == 400
    assert message in response.json()[field][0]


def make_service(team, name: str, not_after: datetime | None, clusters: dict) -> GatewayService:
    service = GatewayService.objects.create(name=name, team=team, namespace=team.slug, traffic_type="ingress")
    certificate = None
    if not_after:
        certificate = {
            "subject": f"CN={name}.example.com",
            "dns_names": [f"{name}.example.com"],
            "not_after": not_after.isoformat(),
            "sha256_fingerprint": "ab" * 32,
        }
    revision = GatewayServiceRevision.objects.create(service=service, number=1, spec={}, certificate=certificate)
    service.current_revision = revision
    service.save()
    for cluster, state in clusters.items():
        GatewayServiceStatus.objects.create(service=service, cluster=cluster, traffic_type="ingress", state=state)
    return service


@pytest.fixture
def certificates(alice):
    now = datetime.now(UTC)
    eu, us = make_cluster("prod-eu-1"), make_cluster("prod-us-1")
    payments, search = Team.objects.get(slug="payments"), Team.objects.get(slug="search")
    return {
        "later": make_service(payments, "later", now + timedelta(days=200), {eu: State.APPLIED}),
        "soon": make_service(payments, "soon", now + timedelta(days=10), {eu: State.APPLIED, us: State.FAILED}),
        "other": make_service(search, "other", now + timedelta(days=5), {us: State.APPLIED}),
        "plain": make_service(payments, "plain", None, {eu: State.APPLIED}),
    }


@pytest.mark.django_db
def test_certificates_report_soonest_first_with_applied_clusters(platform, certificates):
    body = api_client(platform).get("/api/v1/reports/certificates/").json()

    assert [row["name"] for row in body["results"]] == ["other", "soon", "later"]
    soon = body["results"][1]
    assert soon["clusters"] == ["prod-eu-1"]
    assert soon["service"] == str(certificates["soon"].id)
    assert (soon["team"], soon["namespace"], soon["subject"]) == ("payments", "payments", "CN=soon.example.com")
    assert soon["dns_names"] == ["soon.example.com"]
    assert 8 <= soon["days_left"] <= 10


@pytest.mark.django_db
def test_certificates_report_filters_by_expiry_and_team(alice, certificates):
    body = api_client(alice).get("/api/v1/reports/certificates/?expiring_within_days=30").json()

    assert [row["name"] for row in body["results"]] == ["soon"]
    assert body["count"] == 1


@pytest.mark.django_db
def test_certificates_report_refuses_bad_days(platform):
    response = api_client(platform).get("/api/v1/reports/certificates/?expiring_within_days=soon")

    assert response.status_code == 400
    assert "whole number of days" in response.json()["expiring_within_days"][0]


@pytest.mark.django_db
def test_weekly_counts_per_team(history):
    counts = reports.weekly_counts(AuditEvent.objects.all())

    assert [(c.week.isoformat(), c.team, c.count) for c in counts] == [
        ("2025-01-06", "payments", 3),
        ("2025-01-13", "payments", 1),
        ("2025-01-13", "search", 2),
    ]


def test_weekly_chart_is_self_contained_svg_with_escaped_labels():
    svg = reports.weekly_chart_svg(
        [
            reports.WeeklyCount(JAN.date(), "<script>", 3),
            reports.WeeklyCount((JAN + timedelta(weeks=2)).date(), "search", 1),
        ]
    )

    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count("<rect") == 2 + 2  # two bars, two legend keys
    assert "01-13" in svg  # the empty week in between still has its place


@pytest.mark.django_db
def test_audit_report_command_formats(history, tmp_path, capsys):
    args = ["--since", "2025-01-01", "--until", "2025-02-01"]
    call_command("audit_report", *args, "--format", "json")
    summary = json.loads(capsys.readouterr().out)
    call_command("audit_report", *args, "--format", "csv", "--output", str(tmp_path / "r.csv"))
    call_command("audit_report", *args, "--format", "html", "--output", str(tmp_path / "r.html"))

    assert summary["total"] == 6
    assert summary["by_team"] == [{"team": "payments", "count": 4}, {"team": "search", "count": 2}]
    assert {"week": "2025-01-13", "team": "search", "count": 2} in summary["per_week_per_team"]
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 7
    page = (tmp_path / "r.html").read_text()
    assert "<svg" in page and "<table>" in page
    assert "src=" not in page and "<link" not in page and "@import" not in page


@pytest.mark.django_db
def test_audit_report_command_refuses_bad_period():
    with pytest.raises(CommandError, match="--since 'last week' is not an ISO 8601"):
        call_command("audit_report", "--since", "last week", "--until", "2025-01-01")
    with pytest.raises(CommandError, match="must be later than --since"):
        call_command("audit_report", "--since", "2025-02-01", "--until", "2025-01-01")
