"""`make bench`: the push pipeline measured on loopback with a real Celery worker, Redis, Postgres and kubesim.

Prints the figures and writes them to docs/benchmarks.md. Not part of `make test`: it takes minutes and
measures, it does not assert. Uses its own database (`gp_bench`, recreated) and its own Celery queue.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = os.environ.get("BENCH_DATABASE_NAME", "gp_bench")
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
QUEUE = f"bench-{uuid.uuid4().hex[:8]}"
BASE_ENV = {
    "DJANGO_SETTINGS_MODULE": "tests.settings",
    "DATABASE_URL": DB_URL,
    "CELERY_TASK_ALWAYS_EAGER": "false",
    "CELERY_QUEUE": QUEUE,
    "LOG_LEVEL": "WARNING",
}
os.environ.update(BASE_ENV)

import django  # noqa: E402
import psycopg2  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
RUNS = int(os.environ.get("BENCH_RUNS", "1" if QUICK else "3"))
CLUSTERS = 10
LATENCY_SAMPLES = 20
BURST = 500
SIZES = (10, 100, 1000) if QUICK else (10, 100, 1000, 5000)
SWEEP_SERVICES = 10_000
WORKER_CONCURRENCY = 8
RESULTS = ROOT / "var" / "bench-results.json"


def recreate_database() -> None:
    connection = psycopg2.connect("postgres://postgres@127.0.0.1:5432/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{DB_NAME}"')
    connection.close()


def start_worker() -> subprocess.Popen:
    log = open(ROOT / "var" / "bench-worker.log", "w")  # noqa: SIM115 - kept open for the worker's lifetime
    command = [sys.executable, "-m", "celery", "-A", "gatewayportal", "worker", "-Q", QUEUE]
    command += ["-c", str(WORKER_CONCURRENCY), "-l", "warning", "--without-gossip", "--without-mingle"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **BASE_ENV}, stdout=log, stderr=subprocess.STDOUT)
    from gatewayportal.celery import app

    deadline = time.monotonic() + 60
    while not app.control.ping(destination=None, timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the Celery worker did not start; see var/bench-worker.log")
    return process


def peak_rss_kib(pid: int) -> int:
    """The highest VmHWM (peak resident set) among the worker's main process and its pool children."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    peak = 0
    for each in pids:
        status = Path(f"/proc/{each}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak


def wait_until(condition, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latency_clusters(sims) -> None:
    from clusters.models import Cluster

    for index, sim in enumerate(sims):
        Cluster.objects.create(
            name=f"lat-{index}",
            api_server=sim.url,
            token=sim.token,
            labels={"bench": "latency"},
            istio_api_version="networking.istio.io/v1",
        )


def bench_post_to_applied(client, run: int) -> dict[str, Any]:
    from clusters import coalescer
    from services.models import GatewayServiceStatus

    samples = []
    # Sample 0 is the cold start (first request through the API, first task on each worker process).
    for index in range(LATENCY_SAMPLES + 1):
        # Each sample is a change on its own: the gateways' previous run started at least the coalescer's
        # minimum interval ago (a person or a pipeline applying one change; bursts are measured below).
        time.sleep(coalescer.timing().min_interval)
        body = {
            "name": f"lat{run}-{index}",
            "team": "payments",
            "namespace": "payments",
            "port": 80,
            "protocol": "HTTP",
            "hosts": [f"lat{run}-{index}.payments.example.com"],
            "traffic_type": "ingress",
            "cluster_selector": {"bench": "latency"},
        }
        started = time.monotonic()
        response = client.post("/api/v1/gateway-services/", body, format="json")
        if response.status_code != 201:
            raise RuntimeError(f"POST failed: {response.status_code} {response.content[:500]!r}")
        service_id = response.json()["id"]
        done = wait_until(
            lambda sid=service_id: (
                GatewayServiceStatus.objects.filter(service_id=sid, state="applied").count() == CLUSTERS
            )
        )
        if done:
            samples.append(time.monotonic() - started)
    cold, samples = samples[0], samples[1:]
    return {
        "cold": cold,
        "samples": len(samples),
        "p50": percentile(samples, 0.5) if samples else None,
        "p95": percentile(samples, 0.95) if samples else None,
        "mean": statistics.mean(samples) if samples else None,
        "max": max(samples) if samples else None,
    }


def bench_burst(client, sim, run: int) -> dict[str, Any]:
    from clusters.models import Cluster
    from services.models import GatewayServiceStatus

    cluster = Cluster.objects.create(
        name=f"burst-{run}", api_server=sim.url, token=sim.token, istio_api_version="networking.istio.io/v1"
    )
    sim.requests.reset()
    started = time.monotonic()
    for index in range(BURST):
        body = {
            "name": f"burst{run}-{index}",
            "team": "payments",
            "namespace": "payments",
            "port": 80,
            "protocol": "HTTP",
            "hosts": [f"burst{run}-{index}.payments.example.com"],
            "traffic_type": "ingress",
            "clusters": [cluster.name],
        }
        response = client.post("/api/v1/gateway-services/", body, format="json")
        if response.status_code != 201:
            raise RuntimeError(f"POST failed: {response.status_code} {response.content[:500]!r}")
    posted = time.monotonic() - started
    converged = wait_until(
        lambda: GatewayServiceStatus.objects.filter(cluster=cluster, state="applied").count() == BURST, timeout=300
    )
    return {
        "services": BURST,
        "post_seconds": posted,
        "converged": converged,
        "seconds_to_converge": time.monotonic() - started,
        "gateway_writes": sim.requests.gateway_writes("istio-system", "ingress-gateway"),
    }


def bench_scaling(sim_factory, run: int) -> list[dict[str, Any]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from clusters.converge import gateway_converge
    from clusters.models import Cluster
    from services.models import GatewayService, GatewayServiceRevision, Team

    team = Team.objects.get(slug="payments")
    rows = []
    for size in SIZES:
        sim = sim_factory()
        cluster = Cluster.objects.create(
            name=f"scale-{run}-{size}", api_server=sim.url, token=sim.token, istio_api_version="networking.istio.io/v1"
        )
        create_services(team, cluster.name, size, GatewayService, GatewayServiceRevision)
        row: dict[str, Any] = {"services": size}
        for phase in ("first", "idle"):
            sim.requests.reset()
            started = time.monotonic()
            with CaptureQueriesContext(connection) as queries:
                plan = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
            row[f"{phase}_seconds"] = time.monotonic() - started
            row[f"{phase}_queries"] = len(queries)
            row[f"{phase}_k8s_requests"] = len(sim.requests.all())
            row[f"{phase}_k8s_writes"] = len(sim.requests.writes())
            row[f"{phase}_applied"] = sum(1 for o in plan.outcomes.values() if o.state == "applied") if plan else 0
        rows.append(row)
        GatewayService.objects.filter(name__startswith=f"s{size}-").delete()
    return rows


def create_services(
    team, cluster_name: str, size: int, service_model, revision_model, *, prefix: str = "", typical=None
) -> None:
    """`size` services on one cluster in bulk: plain HTTP on port 80, or `typical(name)` -> (spec, tls_material)."""
    services = [
        service_model(name=f"{prefix}s{size}-{i}", team=team, namespace="payments", traffic_type="ingress")
        for i in range(size)
    ]
    service_model.objects.bulk_create(services, batch_size=1000)
    revisions = [
        revision_model(service=service, number=1, spec=typical(service.name)[0], tls_material=typical(service.name)[1])
        if typical
        else revision_model(
            service=service,
            number=1,
            spec={
                "name": service.name,
                "namespace": "payments",
                "traffic_type": "ingress",
                "hosts": [f"{service.name}.payments.example.com"],
                "port": 80,
                "protocol": "HTTP",
                "mode": None,
                "tls_options": {},
                "https_redirect": False,
                "min_protocol_version": None,
                "max_protocol_version": None,
                "clusters": [cluster_name],
                "cluster_selector": None,
                "ticket": "",
            },
        )
        for service in services
    ]
    from services.actions import render_revision

    for revision in revisions:
        render_revision(revision)  # as the services actions do when they write a revision
    revision_model.objects.bulk_create(revisions, batch_size=1000)
    for service, revision in zip(services, revisions, strict=True):
        service.current_revision = service.approved_revision = revision
        service.port, service.protocol = revision.spec["port"], revision.spec["protocol"]
        service.mode = revision.spec.get("mode") or ""
        service.hosts_index = "|" + "|".join(revision.spec["hosts"]) + "|"
    service_model.objects.bulk_update(
        services,
        ["current_revision", "approved_revision", "port", "protocol", "mode", "hosts_index"],
        batch_size=1000,
    )


def typical_https(cert):
    """The typical service of the capacity row: one HTTPS server, two hosts, SIMPLE TLS with its own Secret."""
    import hashlib

    material = {"cert": cert.cert_pem, "key": cert.key_pem, "ca_cert": None}
    fingerprint = hashlib.sha256(cert.cert_pem.encode()).hexdigest()

    def spec(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return {
            "name": name,
            "namespace": "payments",
            "traffic_type": "ingress",
            "hosts": [f"{name}.payments.example.com", f"www.{name}.payments.example.com"],
            "port": 443,
            "protocol": "HTTPS",
            "mode": "SIMPLE",
            "tls_options": {"tls_secret": {"sha256_fingerprint": fingerprint}},
            "https_redirect": False,
            "min_protocol_version": None,
            "max_protocol_version": None,
            "clusters": ["capacity"],
            "cluster_selector": None,
            "ticket": "",
        }, material

    return spec


def configured_budget() -> tuple[int | None, str]:
    """The default per-Gateway size budget, if the portal configures one (settings, or the Team model's default)."""
    from django.conf import settings

    from services.models import Team

    for name in ("GATEWAY_BUDGET_BYTES", "GATEWAY_SIZE_BUDGET_BYTES", "DEFAULT_GATEWAY_BUDGET_BYTES"):
        if isinstance(getattr(settings, name, None), int):
            return getattr(settings, name), f"settings.{name}"
    for field in Team._meta.get_fields():
        if "budget" in field.name and isinstance(getattr(field, "default", None), int):
            return field.default, f"Team.{field.name} default"
    return None, "none configured"


def bench_capacity(sim_factory) -> dict[str, Any]:
    """Bytes per typical server block; how many fit the budget (or 1 MiB); one reconcile at that size."""
    from clusters.converge import gateway_converge
    from clusters.models import Cluster
    from services.models import GatewayService, GatewayServiceRevision, Team
    from services.rendering import GatewaySettings, render_server
    from tests.certs import make_cert

    cert = make_cert(common_name="*.payments.example.com", dns_names=["*.payments.example.com"])
    typical = typical_https(cert)
    block = json.dumps(render_server(typical("checkout-0001")[0], GatewaySettings()), separators=(",", ":"))
    budget, source = configured_budget()
    per_mib = (1024 * 1024) // len(block.encode())
    size = budget // len(block.encode()) if budget else per_mib
    row: dict[str, Any] = {
        "block_bytes": len(block.encode()),
        "per_mib": per_mib,
        "budget": budget,
        "budget_source": source,
        "services": size,
    }
    if QUICK:
        return row  # the reconcile at that size takes minutes (one Secret per service): full runs only
    sim = sim_factory()
    cluster = Cluster.objects.create(
        name="capacity", api_server=sim.url, token=sim.token, istio_api_version="networking.istio.io/v1"
    )
    team = Team.objects.get(slug="payments")
    create_services(team, cluster.name, size, GatewayService, GatewayServiceRevision, prefix="cap", typical=typical)
    for phase in ("first", "idle"):
        sim.requests.reset()
        started = time.monotonic()
        gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
        row[f"{phase}_seconds"] = time.monotonic() - started
        row[f"{phase}_k8s_writes"] = len(sim.requests.writes())
    GatewayService.objects.filter(name__startswith="caps").delete()
    return row


def prepare_sweep(sim_factory) -> int:
    """SWEEP_SERVICES services on one gateway, converged once in-process; the worker's sweeps are measured."""
    from clusters.converge import gateway_converge
    from clusters.models import Cluster
    from services.models import GatewayService, GatewayServiceRevision, Team

    sim = sim_factory()
    cluster = Cluster.objects.create(
        name="sweep", api_server=sim.url, token=sim.token, istio_api_version="networking.istio.io/v1"
    )
    create_services(
        Team.objects.get(slug="payments"),
        cluster.name,
        SWEEP_SERVICES,
        GatewayService,
        GatewayServiceRevision,
        prefix="w",
    )
    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    return cluster.pk


def bench_sweep_memory(worker_pid: int, cluster_id: int) -> dict[str, Any]:
    """The worker runs a sweep's reconcile (verifying every secret) of the 10,000-service gateway; its peak RSS."""
    from clusters.models import GatewayState
    from clusters.tasks import reconcile_gateway

    since = _aware(time.time())
    started = time.monotonic()
    reconcile_gateway.delay(cluster_id, "ingress", True, False)
    done = wait_until(
        lambda: GatewayState.objects.filter(cluster_id=cluster_id, last_reconciled_at__gte=since).exists(), timeout=120
    )
    return {"seconds": time.monotonic() - started if done else None, "peak_rss_kib": peak_rss_kib(worker_pid)}


def _aware(timestamp: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)


def spread(values: list[float | None]) -> tuple[float | None, float | None, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None, None
    return min(present), statistics.median(present), max(present)


def quick_scaling(sizes: tuple[int, ...]) -> None:
    """`python -m tests.bench --reconcile [N ...]`: only the reconcile rows, printed; docs are not written."""
    global SIZES
    SIZES = sizes or (5000,)
    recreate_database()
    django.setup()
    from django.core.management import call_command

    from kubesim.server import KubeSim
    from tests.factories import make_team

    call_command("migrate", verbosity=0)
    make_team("payments")
    sims: list[KubeSim] = []

    def sim_factory() -> KubeSim:
        sim = KubeSim(token="bench-token")
        sim.seed_demo(("payments",))
        sims.append(sim.start())
        return sim

    try:
        for row in bench_scaling(sim_factory, 0):
            print(row, flush=True)
    finally:
        for sim in sims:
            sim.stop()


def main() -> None:
    if sys.argv[1:2] == ["--reconcile"]:
        quick_scaling(tuple(int(n) for n in sys.argv[2:]))
        return
    (ROOT / "var").mkdir(exist_ok=True)
    recreate_database()
    django.setup()
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from kubesim.server import KubeSim
    from tests.factories import make_team, make_user

    call_command("migrate", verbosity=0)
    logging.getLogger("gatewayportal.audit").setLevel(logging.WARNING)
    user = make_user("bench", platform=True)
    make_team("payments")
    client = APIClient()
    client.force_authenticate(user)

    sims: list[KubeSim] = []

    def sim_factory() -> KubeSim:
        sim = KubeSim(token="bench-token")
        sim.seed_demo(("payments",))
        sims.append(sim.start())
        return sim

    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": [],
        "quick": QUICK,
        "loadavg_before": os.getloadavg(),
    }
    worker = start_worker()
    try:
        latency_clusters([sim_factory() for _ in range(CLUSTERS)])
        print(f"sweep gateway of {SWEEP_SERVICES} services ...", flush=True)
        sweep_cluster = prepare_sweep(sim_factory)
        for run in range(RUNS):
            row: dict[str, Any] = {"run": run + 1, "loadavg": os.getloadavg()}
            print(f"run {run + 1}/{RUNS}: POST → applied on {CLUSTERS} clusters ...", flush=True)
            row["latency"] = bench_post_to_applied(client, run)
            print(f"run {run + 1}/{RUNS}: burst of {BURST} services ...", flush=True)
            row["burst"] = bench_burst(client, sim_factory(), run)
            print(f"run {run + 1}/{RUNS}: worker sweep of {SWEEP_SERVICES} services ...", flush=True)
            row["sweep"] = bench_sweep_memory(worker.pid, sweep_cluster)
            print(f"run {run + 1}/{RUNS}: reconcile scaling ...", flush=True)
            row["scaling"] = bench_scaling(sim_factory, run)
            print(json.dumps(row, default=str), flush=True)
            results["runs"].append(row)
        print("capacity ...", flush=True)
        try:
            results["capacity"] = bench_capacity(sim_factory)
        except Exception as exc:  # noqa: BLE001 - the bench reports what it could not measure, keeps the rest
            results["capacity"] = {"error": f"{type(exc).__name__}: {exc}"}
        print(results["capacity"], flush=True)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        for sim in sims:
            sim.stop()
    results["loadavg_after"] = os.getloadavg()
    RESULTS.write_text(json.dumps(results, default=str, indent=1))
    text = render(results)
    (ROOT / "docs" / "benchmarks.md").write_text(text)
    print(text)


def render(results: dict[str, Any]) -> str:
    from clusters import coalescer

    runs = results["runs"]
    timing = coalescer.timing()

    def secs(value):
        return "n/a" if value is None else f"{value:.3f} s"

    def row(measure, values, fmt, goal, ok):
        low, mid, high = spread(values)
        met = "n/a" if low is None else ("yes" if all(v is not None and ok(v) for v in values) else "no")

        def show(v):
            return "n/a" if v is None else fmt(v)

        return f"| {measure} | {show(low)} | {show(mid)} | {show(high)} | {goal} | {met} |"

    def at(size, key):
        return [next((r[key] for r in run["scaling"] if r["services"] == size), None) for run in runs]

    big = max(SIZES)
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` (`python -m tests.bench`, then `python -m tests.bench_api`) on {results['when']}",
        f"on loopback: one Celery worker (prefork, concurrency {WORKER_CONCURRENCY}), Redis, Postgres and in-process",
        f"kubesim clusters over HTTP. {len(runs)} run(s) in a row{' (quick mode)' if results['quick'] else ''}; "
        "min / median / max over the runs.",
        f"Load average (1, 5, 15 min) before: {_load(results['loadavg_before'])}; after: "
        f"{_load(results['loadavg_after'])} — a shared 2-core machine, so figures vary from run to run.",
        "",
        "## Summary (push pipeline)",
        "",
        "| measure | min | median | max | goal | met in every run |",
        "| --- | --- | --- | --- | --- | --- |",
        row(f"idle reconcile, N = {big:,}", at(big, "idle_seconds"), secs, "≤ 0.100 s", lambda v: v <= 0.1),
        row(f"first reconcile, N = {big:,}", at(big, "first_seconds"), secs, "≤ 0.500 s", lambda v: v <= 0.5),
        row(
            "SQL statements per reconcile, first (all N)",
            [max(r["first_queries"] for r in run["scaling"]) for run in runs],
            str,
            "≤ 10, constant in N",
            lambda v: v <= 10,
        ),
        row(
            "SQL statements per reconcile, idle (all N)",
            [max(r["idle_queries"] for r in run["scaling"]) for run in runs],
            str,
            "≤ 5, constant in N",
            lambda v: v <= 5,
        ),
        row(
            f"POST → applied on {CLUSTERS} clusters, p95",
            [run["latency"]["p95"] for run in runs],
            secs,
            "≤ 1 s",
            lambda v: v <= 1.0,
        ),
        row(
            f"Gateway writes for a {BURST}-change burst",
            [run["burst"]["gateway_writes"] for run in runs],
            str,
            "≤ 10",
            lambda v: v <= 10,
        ),
        row(
            f"worker peak RSS during a sweep of {SWEEP_SERVICES:,} services (MiB)",
            [run["sweep"]["peak_rss_kib"] / 1024 for run in runs],
            lambda v: f"{v:.1f}",
            "≤ 250",
            lambda v: v <= 250,
        ),
        "",
        "Constant in N: the SQL counts per size, run by run: "
        + "; ".join(
            ", ".join(f"{r['services']}: {r['first_queries']}/{r['idle_queries']}" for r in run["scaling"])
            for run in runs
        )
        + " (first/idle; Django counts BEGIN, COMMIT and SAVEPOINT too).",
        "",
        "## Capacity of one Gateway",
        "",
    ]
    cap = results.get("capacity", {})
    if "error" in cap:
        lines.append(f"Not measured: {cap['error']}.")
    elif "first_seconds" not in cap:
        lines.append(
            f"A typical service (one HTTPS server, two hosts, SIMPLE TLS) renders to {cap['block_bytes']} bytes; "
            f"1 MiB holds {cap['per_mib']:,} (budget: {cap['budget_source']}). Reconcile at that size: full runs only."
        )
    else:
        budget = (
            f"the default budget of {cap['budget']:,} bytes ({cap['budget_source']}) holds {cap['services']:,}"
            if cap["budget"]
            else f"no per-Gateway budget is configured; 1 MiB holds {cap['per_mib']:,}"
        )
        lines += [
            "A typical service (one HTTPS server, two hosts, SIMPLE TLS with its own Secret) renders to a server",
            f"block of {cap['block_bytes']} bytes (compact JSON); {budget} of them (goal ≥ 3,000).",
            f"One reconcile at that size, in-process: first (writes the Gateway and {cap['first_k8s_writes'] - 1:,} "
            f"Secrets) {secs(cap['first_seconds'])}; idle {secs(cap['idle_seconds'])} "
            f"({cap['idle_k8s_writes']} writes).",
        ]
    lines += [
        "",
        "## Per run",
        "",
        f"POST → applied: {LATENCY_SAMPLES} services, each POSTed through the API with a label selector matching "
        f"{CLUSTERS} clusters,",
        "time until all statuses read `applied`; each sample starts at least the coalescer's minimum interval",
        f"({timing.min_interval} s) after the previous one, so it measures a change on its own (bursts are the next "
        "columns).",
        f"Burst: {BURST} POSTs one after another to one cluster. Coalescing (`clusters/coalescer.py`): one run per "
        "gateway at a time,",
        f"a change during a run marks the gateway dirty (one more run follows); a run starts after {timing.quiet} s "
        f"without changes, at the latest {timing.max_delay} s",
        f"after the first change it serves, and at least {timing.min_interval} s after the previous run started. "
        "No rate threshold, no burst mode.",
        "",
        "| run | load avg | latency p50 | p95 | max | cold | burst POSTs took | converged after | Gateway writes "
        "| sweep run | worker peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        lat, burst, sweep = run["latency"], run["burst"], run["sweep"]
        lines.append(
            f"| {run['run']} | {run['loadavg'][0]:.1f} | {secs(lat['p50'])} | {secs(lat['p95'])} | {secs(lat['max'])} "
            f"| {secs(lat['cold'])} | {secs(burst['post_seconds'])} "
            f"| {secs(burst['seconds_to_converge']) if burst['converged'] else 'not converged'} "
            f"| {burst['gateway_writes']} | {secs(sweep['seconds'])} | {sweep['peak_rss_kib'] / 1024:.1f} MiB |"
        )
    lines += [
        "",
        "One reconcile by number of services (in-process, so queries are counted; `idle` runs again, nothing to do):",
        "",
        "| run | services | first: queries | first: k8s requests (writes) | first: wall time "
        "| idle: queries | idle: k8s requests (writes) | idle: wall time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        for r in run["scaling"]:
            lines.append(
                f"| {run['run']} | {r['services']} | {r['first_queries']} | {r['first_k8s_requests']} "
                f"({r['first_k8s_writes']}) | {secs(r['first_seconds'])} | {r['idle_queries']} "
                f"| {r['idle_k8s_requests']} ({r['idle_k8s_writes']}) | {secs(r['idle_seconds'])} |"
            )
    lines.append("")
    return "\n".join(lines)


def _load(values) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    main()
