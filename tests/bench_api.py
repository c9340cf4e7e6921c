"""API latency under 20 concurrent clients against gunicorn on Postgres (run by `make bench` after tests.bench).

Lists a team's services with 10,000 rows in the table, creates services, and calls /healthz (a bare
JsonResponse) in the same run for the ratio. Queries per request are counted in-process with the Django test
client. Appends its section to docs/benchmarks.md (tests.bench writes the file first). Uses its own database
(`gp_bench_api`, recreated) and a Celery queue nobody consumes (purged at the end).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = os.environ.get("BENCH_API_DATABASE_NAME", "gp_bench_api")
QUEUE = f"bench-api-{uuid.uuid4().hex[:8]}"
ENV = {
    "DJANGO_SETTINGS_MODULE": "tests.settings",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "CELERY_TASK_ALWAYS_EAGER": "false",
    "CELERY_QUEUE": QUEUE,
    "LOG_LEVEL": "WARNING",
    "DEBUG": "false",
}
os.environ.update(ENV)

import django  # noqa: E402
import psycopg2  # noqa: E402

SERVICES = 10_000
CLIENTS = 20
REQUESTS_PER_CLIENT = 25
# A create scans every service on its port (services.actions._conflicts): seconds each at 10,000, so fewer.
CREATES_PER_CLIENT = 3
GUNICORN_WORKERS = 2 * (os.cpu_count() or 1)
URL = "/api/v1/gateway-services/"


def recreate_database() -> None:
    connection = psycopg2.connect("postgres://postgres@127.0.0.1:5432/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{DB_NAME}"')
    connection.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def seed() -> str:
    """10,000 services of one team (as tests.bench builds them), a cluster, and a member's API token."""
    from services.models import GatewayService, GatewayServiceRevision
    from tests.bench import create_services  # importing tests.bench after setup leaves these settings alone
    from tests.factories import api_token, make_cluster, make_team, make_user

    user = make_user("bench")
    team = make_team("payments", members=[user])
    make_cluster("prod-eu-1")
    create_services(team, "prod-eu-1", SERVICES, GatewayService, GatewayServiceRevision)
    return api_token(user)


def start_gunicorn(port: int) -> subprocess.Popen:
    log = open(ROOT / "var" / "bench-gunicorn.log", "w")  # noqa: SIM115 - kept open for gunicorn's lifetime
    command = [sys.executable, "-m", "gunicorn", "gatewayportal.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(GUNICORN_WORKERS), "--timeout", "120"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **ENV}, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            call(port, "GET", "/healthz", {})
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start; see var/bench-gunicorn.log") from None
            time.sleep(0.2)


def call(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def load(port: int, token: str, kind: str) -> dict[str, Any]:
    """CLIENTS threads, each making REQUESTS_PER_CLIENT requests one after another; latency of each."""
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        for i in range(CREATES_PER_CLIENT if kind == "create" else REQUESTS_PER_CLIENT):
            body = None
            if kind == "healthz":
                method, path = "GET", "/healthz"
            elif kind == "list":
                method, path = "GET", URL
            else:
                name = f"c{number}-{i}-{uuid.uuid4().hex[:6]}"
                method, path = "POST", URL
                body = json.dumps(
                    {
                        "name": name,
                        "namespace": "payments",
                        "hosts": [f"{name}.payments.example.com"],
                        "port": 80,
                        "protocol": "HTTP",
                        "traffic_type": "ingress",
                        "clusters": ["prod-eu-1"],
                    }
                ).encode()
            start = time.perf_counter()
            status = call(port, method, path, headers, body)
            with lock:
                latencies.append(time.perf_counter() - start)
                statuses.append(status)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": sum(1 for s in statuses if s >= 400),
        "p50": percentile(latencies, 0.50),
        "p95": percentile(latencies, 0.95),
        "mean": statistics.mean(latencies),
        "throughput": len(latencies) / elapsed,
    }


def queries_per_request(token: str) -> dict[str, int]:
    """The same requests through the Django test client, in-process, with every query captured."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    counts = {}
    body = {
        "name": "counted",
        "namespace": "payments",
        "hosts": ["counted.payments.example.com"],
        "port": 80,
        "protocol": "HTTP",
        "traffic_type": "ingress",
        "clusters": ["prod-eu-1"],
    }
    for kind, send in (
        ("healthz", lambda: client.get("/healthz")),
        ("list", lambda: client.get(URL)),
        ("create", lambda: client.post(URL, body, format="json")),
    ):
        with CaptureQueriesContext(connection) as captured:
            response = send()
        assert response.status_code < 400, response.content
        counts[kind] = len(captured.captured_queries)
    return counts


def render(results: dict[str, Any]) -> str:
    def ms(value: float) -> str:
        return f"{value * 1000:.1f} ms"

    lines = [
        "",
        f"## API latency under {CLIENTS} concurrent clients (gunicorn on Postgres)",
        "",
        f"Measured by `make bench` (`python -m tests.bench_api`) on {results['when']}: gunicorn with "
        f"{GUNICORN_WORKERS} sync workers on loopback, Postgres 15, {SERVICES:,} services of one team in the table.",
        f"{CLIENTS} client threads each make {REQUESTS_PER_CLIENT} requests ({CREATES_PER_CLIENT} creates) one after "
        "another (new connection each);",
        "`list` is the team's first page (50 services, with `count`); `create` POSTs a new HTTP service (validated,",
        "audited, a reconcile enqueued). `/healthz` is a bare Django `JsonResponse`, measured in the same run.",
        "Queries per request are counted in-process with the Django test client (BEGIN/COMMIT/SAVEPOINT included).",
        "",
        "| request | p50 | p95 | mean | throughput | errors | queries per request |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind in ("healthz", "list", "create"):
        row = results[kind]
        lines.append(
            f"| {kind} | {ms(row['p50'])} | {ms(row['p95'])} | {ms(row['mean'])} | {row['throughput']:.0f}/s "
            f"| {row['errors']} of {row['requests']} | {results['queries'][kind]} |"
        )
    ratio = results["list"]["p50"] / results["healthz"]["p50"]
    lines += [
        "",
        f"List p50 is {ratio:.1f}× the bare JSON view's p50 in the same run "
        f"(p95: {results['list']['p95'] / results['healthz']['p95']:.1f}×).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    (ROOT / "var").mkdir(exist_ok=True)
    recreate_database()
    django.setup()
    from django.core.management import call_command

    from gatewayportal.celery import app
    from tests.faults.helpers import free_port

    call_command("migrate", verbosity=0)
    token = seed()
    results: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results["queries"] = queries_per_request(token)
    port = free_port()
    gunicorn = start_gunicorn(port)
    try:
        load(port, token, "healthz")  # every gunicorn worker has answered once before anything is measured
        for kind in ("healthz", "list", "create"):
            results[kind] = load(port, token, kind)
            print(kind, results[kind], flush=True)
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(QUEUE)
    text = render(results)
    with open(ROOT / "docs" / "benchmarks.md", "a") as out:
        out.write(text)
    print(text)


if __name__ == "__main__":
    main()
