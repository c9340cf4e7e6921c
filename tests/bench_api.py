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
CREATES_PER_CLIENT = 10
RUNS = int(os.environ.get("BENCH_RUNS", "1" if os.environ.get("BENCH_QUICK", "") not in ("", "0") else "3"))
RESULTS = ROOT / "var" / "bench-results.json"
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
    # A table loaded in bulk has no planner statistics until autovacuum's analyze; a live one has them.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
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

    runs = results["runs"]

    def spread(values: list[float]) -> tuple[float, float, float]:
        return min(values), statistics.median(values), max(values)

    def summary(measure, values, fmt, goal, ok):
        low, mid, high = spread(values)
        met = "yes" if all(ok(v) for v in values) else "no"
        return f"| {measure} | {fmt(low)} | {fmt(mid)} | {fmt(high)} | {goal} | {met} |"

    ratio = [run["list"]["p50"] / run["healthz"]["p50"] for run in runs]
    loads = ", ".join(f"{run['load']:.1f}" for run in runs)
    lines = [
        "",
        f"## API under {CLIENTS} concurrent clients (gunicorn on Postgres)",
        "",
        f"Measured by `python -m tests.bench_api` on {results['when']}: gunicorn with {GUNICORN_WORKERS} sync "
        f"workers on loopback, Postgres, {SERVICES:,} services of one team in the table; {len(runs)} run(s) in a row.",
        f"{CLIENTS} client threads each make {REQUESTS_PER_CLIENT} requests ({CREATES_PER_CLIENT} creates) one after "
        "another (new connection each);",
        "`list` is the team's first page (50 services, with `count`); `create` POSTs a new HTTP service on the port",
        "all 10,000 use (validated, conflict-scanned, audited, a reconcile enqueued). `/healthz` is a bare Django",
        "`JsonResponse`, measured in the same run; the ratios are taken run by run.",
        f"Load average (1 min) at the start of each run: {loads}.",
        "",
        "| measure | min | median | max | goal | met in every run |",
        "| --- | --- | --- | --- | --- | --- |",
        summary(
            "list throughput",
            [r["list"]["throughput"] for r in runs],
            lambda v: f"{v:.0f}/s",
            "≥ 300/s",
            lambda v: v >= 300,
        ),
        summary("list p50 ÷ /healthz p50 (same run)", ratio, lambda v: f"{v:.1f}×", "≤ 5×", lambda v: v <= 5),
        summary(
            "create throughput",
            [r["create"]["throughput"] for r in runs],
            lambda v: f"{v:.0f}/s",
            "≥ 100/s",
            lambda v: v >= 100,
        ),
        summary("create p95", [r["create"]["p95"] for r in runs], ms, "≤ 250 ms", lambda v: v <= 0.25),
        "",
        "| run | request | p50 | p95 | mean | throughput | errors | queries per request |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for number, run in enumerate(runs, 1):
        for kind in ("healthz", "list", "create"):
            row = run[kind]
            lines.append(
                f"| {number} | {kind} | {ms(row['p50'])} | {ms(row['p95'])} | {ms(row['mean'])} "
                f"| {row['throughput']:.0f}/s | {row['errors']} of {row['requests']} | {results['queries'][kind]} |"
            )
    lines += [
        "",
        "Queries per request are counted in-process with the Django test client (BEGIN/COMMIT/SAVEPOINT included).",
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
    results: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": []}
    results["queries"] = queries_per_request(token)
    port = free_port()
    gunicorn = start_gunicorn(port)
    try:
        load(port, token, "healthz")  # every gunicorn worker has answered once before anything is measured
        for _ in range(RUNS):
            run: dict[str, Any] = {"load": os.getloadavg()[0]}
            for kind in ("healthz", "list", "create"):
                run[kind] = load(port, token, kind)
                print(kind, run[kind], flush=True)
            results["runs"].append(run)
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(QUEUE)
    if RESULTS.exists():
        combined = json.loads(RESULTS.read_text())
        combined["api"] = results
        RESULTS.write_text(json.dumps(combined, default=str, indent=1))
    text = render(results)
    with open(ROOT / "docs" / "benchmarks.md", "a") as out:
        out.write(text)
    print(text)


if __name__ == "__main__":
    main()
