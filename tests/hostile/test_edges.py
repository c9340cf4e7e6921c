"""Hostile input at the edges: error pages, refusals that leak, unbounded lists, many hosts, TLS file paths."""

from __future__ import annotations

import pytest

from clusters.models import Cluster
from services.models import GatewayService
from tests.factories import api_client, http_service, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def member():
    user = make_user("alice")
    make_team("payments", members=[user], allow_wildcards=True)
    make_cluster()
    return api_client(user)


# --- An unexpected error under /api/ answers a generic JSON 500, even with DEBUG ---------------------------------


def test_an_api_500_never_echoes_the_request_even_with_debug(member, settings, monkeypatch):
    settings.DEBUG = True
    secret = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-very-secret\n-----END PRIVATE KEY-----"

    def boom(*args, **kwargs):
        raise RuntimeError("forced failure")

    monkeypatch.setattr("services.specs.parse", boom)
    member.raise_request_exception = False
    payload = http_service(tls_options={"tls_secret": {"cert": "x", "key": secret}})

    answer = member.post("/api/v1/gateway-services/", payload, format="json", HTTP_X_REQUEST_ID="req-1")

    assert answer.status_code == 500
    assert answer["Content-Type"] == "application/json"
    assert answer.json() == {
        "detail": "Internal server error; it is logged under this request id.",
        "request_id": "req-1",
    }
    assert b"very-secret" not in answer.content and b"forced failure" not in answer.content


# --- Refusals never tell what exists in another team's namespaces ---------------------------------------------------


def test_a_taken_name_in_another_teams_namespace_answers_the_tenancy_refusal(member):
    make_team("ledger")
    root = api_client(make_user("root", platform=True))
    other = http_service(name="books", namespace="ledger", team="ledger", hosts=["books.ledger.example.com"])
    assert root.post("/api/v1/gateway-services/", other, format="json").status_code == 201

    taken = member.post("/api/v1/gateway-services/", http_service(name="books", namespace="ledger"), format="json")
    free = member.post("/api/v1/gateway-services/", http_service(name="nothing", namespace="ledger"), format="json")

    assert taken.status_code == free.status_code == 400
    assert "already exists" not in taken.content.decode()
    assert set(taken.json()) == set(free.json()) == {"namespace"}


def test_a_taken_name_in_the_callers_namespace_still_says_so(member):
    assert member.post("/api/v1/gateway-services/", http_service(), format="json").status_code == 201
    again = member.post("/api/v1/gateway-services/", http_service(), format="json")
    assert again.status_code == 400
    assert "already exists" in again.json()["name"][0]


def test_team_members_see_no_cluster_address_in_health_or_dry_run(member):
    cluster = Cluster.objects.get(name="prod-eu-1")
    cluster.api_server = "https://10.20.30.40:6443"
    cluster.health_message = (
        "reading the server version: cannot reach the API server: HTTPSConnectionPool(host='10.20.30.40', "
        "port=6443): Max retries exceeded"
    )
    cluster.save()
    root = api_client(make_user("root", platform=True))

    health = member.get("/api/v1/clusters/prod-eu-1/").json()["health"]
    full = root.get("/api/v1/clusters/prod-eu-1/").json()["health"]
    dry = member.post("/api/v1/gateway-services/?dry_run=true", http_service(), format="json").json()

    assert health["message"] == "unreachable"
    assert "10.20.30.40" in full["message"]
    assert dry["diff"] and all("10.20.30.40" not in d["message"] for d in dry["diff"])
    assert dry["diff"][0]["message"] in {"unreachable", "TLS error", "unauthorized"}


# --- Bounded lists and label syntax ------------------------------------------------------------------------------


def test_a_huge_clusters_list_is_refused_and_duplicates_are_dropped(member):
    huge = member.post("/api/v1/gateway-services/", http_service(clusters=["prod-eu-1"] * 100_000), format="json")
    many = member.post("/api/v1/gateway-services/", http_service(clusters=["prod-eu-1"] * 1_000), format="json")
    twice = member.post("/api/v1/gateway-services/", http_service(clusters=["prod-eu-1"] * 3), format="json")

    assert huge.status_code == 413  # over the body size limit before anything parses it
    assert many.status_code == 400
    assert many.json() == {"clusters": ["Ensure this field has no more than 100 elements."]}
    assert twice.status_code == 201
    assert GatewayService.objects.get().current_revision.spec["clusters"] == ["prod-eu-1"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hosts", [f"h{i}.payments.example.com" for i in range(101)]),
        ("cluster_selector", {f"k{i}": "v" for i in range(33)}),
        ("cluster_selector", {"bad key!": "prod"}),
        ("cluster_selector", {"env": "not a value"}),
        ("cluster_selector", {"-x.io/env": "prod"}),
    ],
)
def test_lists_and_selectors_are_bounded_and_use_label_syntax(member, field, value):
    answer = member.post("/api/v1/gateway-services/", http_service(**{field: value}), format="json")
    assert answer.status_code == 400
    assert set(answer.json()) == {field}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("labels", {f"k{i}": "v" for i in range(33)}),
        ("labels", {"env": "prod eu"}),
        ("labels", {"": "x"}),
    ],
)
def test_cluster_labels_are_bounded_and_use_label_syntax(field, value):
    root = api_client(make_user("root", platform=True))
    make_cluster()
    answer = root.patch("/api/v1/clusters/prod-eu-1/", {field: value}, format="json")
    assert answer.status_code == 400
    assert set(answer.json()) == {field}


@pytest.mark.parametrize("field", ["namespaces", "allowed_domains"])
def test_team_lists_are_bounded(field):
    root = api_client(make_user("root", platform=True))
    values = [f"ns{i}" for i in range(101)] if field == "namespaces" else [f"d{i}.example.com" for i in range(101)]
    body = {"slug": "shop", "name": "Shop", "namespaces": ["shop"], "allowed_domains": [], field: values}
    answer = root.post("/api/v1/teams/", body, format="json")
    assert answer.status_code == 400
    assert answer.json() == {field: ["Ensure this field has no more than 100 elements."]}


# --- TLS file paths ---------------------------------------------------------------------------------------------


def _path_service(cert_path: str) -> dict:
    return http_service(
        name="secure",
        hosts=["secure.payments.example.com"],
        port=443,
        protocol="HTTPS",
        mode="SIMPLE",
        tls_options={"tls_secret_path": {"cert_path": cert_path, "key_path": "/etc/istio/certs/tls.key"}},
    )


@pytest.mark.parametrize(
    "path", ["/etc/istio/../shadow", "/etc/istio/certs/../../passwd", "/etc//istio/x.crt", "/root/x.crt", "/etc/istio"]
)
def test_tls_secret_path_must_be_normalized_and_under_the_prefix(member, path):
    answer = member.post("/api/v1/gateway-services/", _path_service(path), format="json")
    assert answer.status_code == 400
    assert list(answer.json()["tls_options"]["tls_secret_path"]) == ["cert_path"]


def test_tls_secret_path_prefix_is_the_platforms(member, settings):
    assert (
        member.post(
            "/api/v1/gateway-services/?dry_run=true", _path_service("/etc/istio/certs/tls.crt"), format="json"
        ).status_code
        == 200
    )
    settings.TLS_SECRET_PATH_PREFIX = "/var/run/certs/"
    answer = member.post(
        "/api/v1/gateway-services/?dry_run=true", _path_service("/etc/istio/certs/tls.crt"), format="json"
    )
    assert answer.status_code == 400
    assert "/var/run/certs/" in answer.json()["tls_options"]["tls_secret_path"]["cert_path"][0]


# --- Conflict queries for 100 hosts of six labels, on Postgres and SQLite ------------------------------------------

MANY_HOSTS = [f"h{i}.a.b.c.payments.example.com" for i in range(100)]


def test_one_hundred_long_hosts_on_postgres(member):
    assert (
        member.post(
            "/api/v1/gateway-services/", http_service(name="first", hosts=MANY_HOSTS[:50]), format="json"
        ).status_code
        == 201
    )
    answer = member.post("/api/v1/gateway-services/", http_service(hosts=MANY_HOSTS), format="json")
    assert answer.status_code == 400  # the clash with the first is still found
    assert "hosts" in answer.json()


SQLITE_SCRIPT = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from services.actions import conflict_candidates
from services.models import GatewayService
from tests.factories import make_team, service_spec
team = make_team("payments")
hosts = [f"h{i}.a.b.c.payments.example.com" for i in range(100)]
GatewayService.objects.create(name="old", team=team, namespace="payments", traffic_type="ingress", port=80,
                              protocol="HTTP", mode="", hosts_index="|h7.a.b.c.payments.example.com|")
for tls in (None, "SIMPLE"):
    spec = service_spec("new", hosts=hosts + ["*.x.y.z.payments.example.com"], mode=tls)
    branches = conflict_candidates(spec, GatewayService.objects.order_by().values_list("name", flat=True))
    print(sorted(set(branches[0].union(*branches[1:], all=True))))
"""


def test_one_hundred_long_hosts_on_sqlite(tmp_path):
    from tests.sqlite import run_on_sqlite

    output = run_on_sqlite(SQLITE_SCRIPT, tmp_path)
    assert output.split("\n")[:2] == ["['old']", "['old']"]
