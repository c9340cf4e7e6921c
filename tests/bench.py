"""`make bench`: the push pipeline measured on loopback with a real Celery worker, Redis, Postgres and kubesim.

Prints the figures and writes them to docs/benchmarks.md. Not part of `make test`: it takes minutes and
measures, it does not assert. Uses its own database (`gp_bench`, recreated) and its own Celery queue.
"""

from __future__ import annotations

import gc
import json
import logging
import math
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
BURST = int(os.environ.get("BENCH_BURST", "500"))
# BENCH_ONLY=latency,burst (any of PHASES): those phases only, printed and kept in var/; docs/benchmarks.md untouched.
PHASES = ("latency", "burst", "sweep", "scaling", "capacity")
ONLY = tuple(p for p in os.environ.get("BENCH_ONLY", "").split(",") if p)
SIZES = (10, 100, 1000) if QUICK else (10, 100, 1000, 5000)
# Quick mode: one gateway at the byte budget's capacity (so the capacity row is complete), not 10,000 services.
SWEEP_SERVICES = 0 if QUICK else 10_000
WORKER_CONCURRENCY = 8
RESULTS = ROOT / "var" / "bench-results.json"
SECRETS_PATH = "/api/v1/namespaces/istio-system/secrets/"


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


def stop_worker(worker: subprocess.Popen) -> None:
    """Warm shutdown (the tasks in progress finish), then a kill if that takes over a minute."""
    worker.terminate()
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=30)


def peak_rss_kib(pid: int) -> int:
    """The highest VmHWM (peak resident set) among the worker's main process and its pool children."""
    return max(_status_kib(pid, "VmHWM:"), default=0)


def _status_kib(pid: int, field: str) -> list[int]:
    """`field` of /proc/<pid>/status (in KiB) for the worker's main process and each pool child still running."""
    values = []
    for each in [pid, *_children(pid)]:
        status = Path(f"/proc/{each}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith(field):
                    values.append(int(line.split()[1]))
    return values


def machine_ms(repeats: int = 7) -> float:
    """How fast this machine is just now: the median milliseconds of a fixed pure-Python workload (a JSON round trip
    of 5,000 small servers, then a pass over them). On a shared virtual machine the same code runs up to twice as
    slowly from one minute to the next; the bench shows this figure beside the timings it measured just after, so
    that a slow run of the code can be told from a slow phase of the machine. Lower is faster."""
    servers = [
        {"port": {"number": 80, "name": f"http-{i}", "protocol": "HTTP"}, "hosts": [f"h{i}.example.com"]}
        for i in range(5000)
    ]
    times = []
    collecting = gc.isenabled()
    gc.disable()  # as a reconcile runs: the process's own heap is not part of the figure
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            sum(len(server["hosts"][0]) for server in json.loads(json.dumps(servers)))
            times.append((time.perf_counter() - started) * 1000)
    finally:
        if collecting:
            gc.enable()
    return statistics.median(times)


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


def latency_groups() -> int:
    """Latency samples take turns over groups of CLUSTERS clusters, so that each group's gateways last ran at least
    the coalescer's minimum interval before its next sample without the bench sleeping that long between samples."""
    from clusters import coalescer

    return max(1, math.ceil(coalescer.timing().min_interval / 3))


def latency_clusters(sim_factory) -> None:
    from clusters.models import Cluster

    for group in range(latency_groups()):
        for index in range(CLUSTERS):
            sim = sim_factory()
            Cluster.objects.create(
                name=f"lat-{group}-{index}",
                api_server=sim.url,
                token=sim.token,
                labels={"bench": f"latency-{group}"},
                istio_api_version="networking.istio.io/v1",
            )


def bench_post_to_applied(client, run: int) -> dict[str, Any]:
    from clusters import coalescer
    from services.models import GatewayServiceStatus

    samples, not_applied = [], 0
    groups, previous = latency_groups(), {}
    # Sample 0 is the cold start (first request through the API, first task on each worker process).
    for index in range(LATENCY_SAMPLES + 1):
        # Each sample is a change on its own: its gateways' previous run started at least the coalescer's minimum
        # interval ago, since it ended before the previous sample of its group was applied (a person or a pipeline
        # applying one change; bursts are measured below).
        group = index % groups
        if group in previous:
            time.sleep(max(0.0, previous[group] + coalescer.timing().min_interval - time.monotonic()))
        body = {
            "name": f"lat{run}-{index}",
            "team": "payments",
            "namespace": "payments",
            "port": 80,
            "protocol": "HTTP",
            "hosts": [f"lat{run}-{index}.payments.example.com"],
            "traffic_type": "ingress",
            "cluster_selector": {"bench": f"latency-{group}"},
        }
        started = time.monotonic()
        response = client.post("/api/v1/gateway-services/", body, format="json")
        if response.status_code != 201:
            raise RuntimeError(f"POST failed: {response.status_code} {response.content[:500]!r}")
        service_id = response.json()["id"]
        done = wait_until(
            lambda sid=service_id: (
                GatewayServiceStatus.objects.filter(service_id=sid, state="applied").count() == CLUSTERS
            ),
            timeout=60,
        )
        previous[group] = time.monotonic()  # its gateways' runs started before this
        not_applied += not done
        samples.append(time.monotonic() - started)  # a sample never applied counts as the 60 s it was given
    cold, samples = samples[0], samples[1:]
    return {
        "cold": cold,
        "samples": len(samples),
        "not_applied": not_applied,
        "groups": groups,
        "p50": percentile(samples, 0.5),
        "p95": percentile(samples, 0.95),
        "mean": statistics.mean(samples),
        "max": max(samples),
    }


def bench_burst(client, sim, run: int) -> dict[str, Any]:
    from clusters import coalescer
    from clusters.models import Cluster
    from services.models import GatewayService, GatewayServiceStatus

    cluster = Cluster.objects.create(
        name=f"burst-{run}", api_server=sim.url, token=sim.token, istio_api_version="networking.istio.io/v1"
    )
    sim.requests.reset()
    started = time.monotonic()
    sent: list[float] = []
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
        sent.append(time.monotonic())
    posted = time.monotonic() - started
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    converged = wait_until(
        lambda: GatewayServiceStatus.objects.filter(cluster=cluster, state="applied").count() == BURST, timeout=300
    )
    measured = {
        "services": BURST,
        "post_seconds": posted,
        "converged": converged,
        "seconds_to_converge": time.monotonic() - started,
        "gateway_writes": sim.requests.gateway_writes("istio-system", "ingress-gateway"),
        # The time between one POST's answer and the next's: the machine's jitter, as the coalescer sees it.
        "gap_p50": percentile(gaps, 0.5),
        "gap_p95": percentile(gaps, 0.95),
        "gap_max": max(gaps),
        "gaps_over_quiet": sum(1 for gap in gaps if gap > coalescer.timing().quiet),
    }
    # Measured: the cluster is disabled (a follow-up run left queued does nothing) and its services leave the
    # database, where every later POST's checks would read them.
    Cluster.objects.filter(pk=cluster.pk).update(enabled=False)
    GatewayService.objects.filter(name__startswith=f"burst{run}-").delete()
    return measured


def bench_scaling(sim_factory, run: int) -> list[dict[str, Any]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from clusters.converge import gateway_converge
    from clusters.models import Cluster
    from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus, Team

    team = Team.objects.get(slug="payments")
    rows = []
    for size in SIZES:
        sim = sim_factory()
        cluster = Cluster.objects.create(
            name=f"scale-{run}-{size}", api_server=sim.url, token=sim.token, istio_api_version="networking.istio.io/v1"
        )
        create_services(team, cluster.name, size, GatewayService, GatewayServiceRevision)
        # Each with the pending status row the create action writes, which the first reconcile updates (services
        # loaded in bulk have none, and an insert of thousands costs a reconcile less than as many updates).
        GatewayServiceStatus.objects.bulk_create(
            (
                GatewayServiceStatus(service=service, cluster=cluster, traffic_type="ingress")
                for service in GatewayService.objects.filter(name__startswith=f"s{size}-")
            ),
            batch_size=2000,
        )
        with connection.cursor() as cursor:  # the planner's statistics, as a live table has them
            cursor.execute(f"ANALYZE {GatewayServiceStatus._meta.db_table}")
        row: dict[str, Any] = {"services": size, "machine_ms": machine_ms()}
        for phase in ("first", "idle"):
            sim.requests.reset()
            started = time.monotonic()
            with CaptureQueriesContext(connection) as queries:
                plan = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
            row[f"{phase}_seconds"] = time.monotonic() - started
            row[f"{phase}_queries"] = len(queries)
            row[f"{phase}_k8s_requests"] = len(sim.requests.all())
            row[f"{phase}_k8s_writes"] = len(sim.requests.writes("gateways")) + len(sim.requests.writes("secrets"))
            row[f"{phase}_applied"] = sum(1 for o in plan.outcomes.values() if o.state == "applied") if plan else 0
        rows.append(row)
        GatewayService.objects.filter(name__startswith=f"s{size}-").delete()
    return rows


def create_services(
    team, cluster_name: str, size: int, service_model, revision_model, *, prefix: str = "", typical=None, names=None
) -> None:
    """`size` services on one cluster in bulk, named `names` (or `{prefix}s{size}-{i}`): plain HTTP on port 80, or
    `typical(name, cluster_name)` -> (spec, tls_material)."""
    names = names or [f"{prefix}s{size}-{i}" for i in range(size)]
    services = [service_model(name=name, team=team, namespace="payments", traffic_type="ingress") for name in names]
    service_model.objects.bulk_create(services, batch_size=1000)
    revisions = []
    for service in services:
        spec, material = (
            typical(service.name, cluster_name) if typical else (plain_http(service.name, cluster_name), None)
        )
        revisions.append(revision_model(service=service, number=1, spec=spec, tls_material=material))
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
    # Written around the services actions: index their hosts, and let every Gateway tally be counted afresh.
    from services.models import GatewayServiceHost, GatewayTally

    GatewayServiceHost.rebuild(service_model.objects.filter(pk__in=[service.pk for service in services]))
    GatewayTally.objects.all().delete()
    # A table loaded in bulk has no planner statistics until autovacuum's analyze runs; a live one has them.
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def _plain(name: str, cluster_name: str) -> tuple[dict[str, Any], None]:
    return plain_http(name, cluster_name), None


def plain_http(name: str, cluster_name: str) -> dict[str, Any]:
    from tests.factories import service_spec

    return service_spec(name, clusters=[cluster_name])


def typical_https(cert):
    """The typical service of the capacity row: one HTTPS server, two hosts, SIMPLE TLS with its own Secret."""
    import hashlib

    material = {"cert": cert.cert_pem, "key": cert.key_pem, "ca_cert": None}
    fingerprint = hashlib.sha256(cert.cert_pem.encode()).hexdigest()

    def spec(name: str, cluster_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
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
            "clusters": [cluster_name],
            "cluster_selector": None,
            "ticket": "",
        }, material

    return spec


def typical_names(gateway: int, size: int) -> list[str]:
    """Names of one width, so that every gateway's blocks weigh what the capacity count assumed."""
    return [f"t{gateway}-{i:05d}" for i in range(size)]


def capacity(typical) -> dict[str, Any]:
    """How many typical services the portal lets into one Gateway: the request-time byte check (`services.quotas`)
    adds each block's `block_bytes` and refuses the one that would pass GATEWAY_BYTE_BUDGET."""
    from django.conf import settings

    from services.rendering import block_bytes

    budget = settings.GATEWAY_BYTE_BUDGET
    total, count = 0, 0
    for name in typical_names(0, 100_000):
        weight = block_bytes(typical(name, "capacity")[0])
        if total + weight > budget:
            break
        total, count = total + weight, count + 1
    return {"budget": budget, "block_bytes": round(total / count), "services": count, "bytes": total}


def prepare_sweep(sim_factory, total: int) -> dict[str, Any]:
    """`total` typical services on as many gateways as the byte budget needs, the first one full; each converged
    once in-process (every Secret and the Gateway written). The first one's reconciles are the capacity row."""
    from clusters.converge import gateway_converge
    from clusters.models import Cluster
    from services.models import GatewayService, GatewayServiceRevision, Team
    from tests.certs import make_cert

    cert = make_cert(common_name="*.payments.example.com", dns_names=["*.payments.example.com"])
    typical = typical_https(cert)
    cap = capacity(typical)
    team = Team.objects.get(slug="payments")
    total = total or cap["services"]
    sizes = [min(cap["services"], total - done) for done in range(0, total, cap["services"])]
    clusters, sims = [], []
    for gateway, size in enumerate(sizes):
        sim = sim_factory()
        cluster = Cluster.objects.create(
            name=f"sweep-{gateway}", api_server=sim.url, token=sim.token, istio_api_version="networking.istio.io/v1"
        )
        names = typical_names(gateway, size)
        create_services(team, cluster.name, size, GatewayService, GatewayServiceRevision, typical=typical, names=names)
        for phase in ("first", "idle"):
            sim.requests.reset()
            started = time.monotonic()
            plan = gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
            if gateway == 0:
                cap[f"{phase}_seconds"] = time.monotonic() - started
                cap[f"{phase}_secret_writes"] = len(sim.requests.writes("secrets"))
                cap[f"{phase}_gateway_writes"] = len(sim.requests.writes("gateways"))
                if phase == "first":
                    cap["applied"] = sum(1 for o in plan.outcomes.values() if o.state == "applied")
            print(f"  gateway {gateway}: {size} services, {phase} reconcile done", flush=True)
        clusters.append(cluster.pk)
        sims.append(sim)
    cap["measured_services"] = sizes[0]
    return {"clusters": clusters, "sims": sims, "sizes": sizes, "capacity": cap}


def bench_sweep_memory(worker_pid: int, sweep: dict[str, Any]) -> dict[str, Any]:
    """The worker runs the sweep's reconciles (verifying every Secret) of the sweep gateways at once, as beat's
    `sweep_gateways` queues them. Peak RSS of its largest process (VmHWM) and of all its processes together
    (VmRSS summed, sampled every 50 ms)."""
    from clusters.models import GatewayState
    from clusters.tasks import reconcile_gateway

    for sim in sweep["sims"]:
        sim.requests.reset()
    since = _aware(time.time())
    started = time.monotonic()
    for cluster_id in sweep["clusters"]:
        reconcile_gateway.delay(cluster_id, "ingress", True, False)
    total_peak = 0

    def swept() -> bool:
        nonlocal total_peak
        total_peak = max(total_peak, worker_rss_kib(worker_pid))
        done = GatewayState.objects.filter(cluster_id__in=sweep["clusters"], last_reconciled_at__gte=since).count()
        return done == len(sweep["clusters"])

    done = wait_until(swept, timeout=900)
    return {
        "services": sum(sweep["sizes"]),
        "gateways": len(sweep["clusters"]),
        "seconds": time.monotonic() - started if done else None,
        "secret_reads": sum(sim.requests.count("GET", SECRETS_PATH) for sim in sweep["sims"]),
        "peak_rss_kib": peak_rss_kib(worker_pid),
        "worker_total_rss_kib": total_peak,
    }


def worker_rss_kib(pid: int) -> int:
    """The resident set of the worker's main process and its pool children, now."""
    return sum(_status_kib(pid, "VmRSS:"))


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


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
    # One team owns every service of the bench (tens of thousands, gateways at the byte budget): no team quota in
    # the way of what is measured.
    team = make_team("payments")
    team.max_services, team.max_hosts_per_gateway, team.gateway_budget_share = 1_000_000, 1_000_000, 1.0
    team.save()
    client = APIClient()
    client.force_authenticate(user)

    sims: list[KubeSim] = []

    def sim_factory() -> KubeSim:
        sim = KubeSim(token="bench-token")
        sim.seed_demo(("payments",))
        sims.append(sim.start())
        return sim

    started = time.monotonic()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": [],
        "quick": QUICK,
        "loadavg_before": os.getloadavg(),
    }
    worker = start_worker()

    def wanted(phase: str) -> bool:
        return not ONLY or phase in ONLY

    try:
        if wanted("latency"):
            latency_clusters(sim_factory)
        # Phase by phase, each 3 runs in a row: the push pipeline's runs (latency and burst in the same run), then
        # the reconcile scaling, on a database holding only what they create (the API's checks on a POST read every
        # service, and so does a reconcile's scan of the services table: they would measure the 10,000 services the
        # sweep needs, not the N of the row); then the sweep's gateways, the capacity and the sweep's runs.
        rows: list[dict[str, Any]] = [{"run": run + 1} for run in range(RUNS)]
        for row in rows:
            row["loadavg"] = os.getloadavg()
            if wanted("latency"):
                print(f"run {row['run']}/{RUNS}: POST → applied on {CLUSTERS} clusters ...", flush=True)
                row["latency"] = bench_post_to_applied(client, row["run"])
            if wanted("burst"):
                print(f"run {row['run']}/{RUNS}: burst of {BURST} services ...", flush=True)
                row["burst"] = bench_burst(client, sim_factory(), row["run"])
            print(json.dumps(row, default=str), flush=True)
        for row in rows:
            if wanted("scaling"):
                print(f"run {row['run']}/{RUNS}: reconcile scaling ...", flush=True)
                row["scaling"] = bench_scaling(sim_factory, row["run"])
                print(row["scaling"], flush=True)
        if wanted("sweep") or wanted("capacity"):
            print(f"capacity, and the sweep's gateways ({SWEEP_SERVICES or 'one at capacity'}) ...", flush=True)
            sweep = prepare_sweep(sim_factory, SWEEP_SERVICES if wanted("sweep") else 0)
            results["capacity"] = sweep["capacity"]
            print(results["capacity"], flush=True)
        for row in rows:
            if wanted("sweep"):
                print(f"run {row['run']}/{RUNS}: worker sweep of {sum(sweep['sizes']):,} services ...", flush=True)
                row["sweep"] = bench_sweep_memory(worker.pid, sweep)
                print(row["sweep"], flush=True)
        results["runs"] = rows
    finally:
        stop_worker(worker)
        for sim in sims:
            sim.stop()
    results["loadavg_after"] = os.getloadavg()
    results["seconds"] = time.monotonic() - started
    print(f"bench took {results['seconds']:.0f} s", flush=True)
    if ONLY:
        RESULTS.with_name("bench-results-partial.json").write_text(json.dumps(results, default=str, indent=1))
        return
    RESULTS.write_text(json.dumps(results, default=str, indent=1))
    print(write_docs(results))


METHOD_HEADING = "## Method"


def write_docs(results: dict[str, Any]) -> str:
    """docs/benchmarks.md: the figures, then its Method section as it stands (written by hand, kept as it is)."""
    path = ROOT / "docs" / "benchmarks.md"
    old = path.read_text() if path.exists() else ""
    method = ""
    if METHOD_HEADING in old:
        rest = old[old.index(METHOD_HEADING) :]
        following = rest.find("\n## ", len(METHOD_HEADING))  # the next section (tests.bench_api appends its own)
        method = rest if following < 0 else rest[: following + 1]
    text = render(results) + "\n" + (method.rstrip("\n") + "\n" if method else "")
    path.write_text(text)
    return text


def render(results: dict[str, Any]) -> str:
    from clusters import coalescer

    runs = results["runs"]
    timing = coalescer.timing()

    def secs(value):
        return "n/a" if value is None else f"{value:.3f} s"

    def row(measure, values, fmt, goal, ok):
        low, mid, high = spread(values)
        met = "n/a" if low is None or ok is None else ("yes" if all(v is not None and ok(v) for v in values) else "no")

        def show(v):
            return "n/a" if v is None else fmt(v)

        return f"| {measure} | {show(low)} | {show(mid)} | {show(high)} | {goal} | {met} |"

    def at(size, key):
        return [next((r[key] for r in run["scaling"] if r["services"] == size), None) for run in runs]

    def constant(run, key):
        return len({r[key] for r in run["scaling"]}) == 1

    def both(run):
        return (
            run["latency"]["p95"] <= 1.0 and run["latency"]["not_applied"] == 0 and run["burst"]["gateway_writes"] <= 10
        )

    big = max(SIZES)
    cap = results["capacity"]
    swept = runs[0]["sweep"]
    mib = 1024
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` (`python -m tests.bench`, then `python -m tests.bench_api`) on {results['when']}",
        f"on loopback: one Celery worker (prefork, concurrency {WORKER_CONCURRENCY}), Redis, Postgres and in-process",
        f"kubesim clusters over HTTP. {len(runs)} run(s) in a row{' (quick mode)' if results['quick'] else ''}; "
        f"min / median / max over the runs; `python -m tests.bench` took {results['seconds'] / 60:.0f} min.",
        f"Load average (1, 5, 15 min) before: {_load(results['loadavg_before'])}; after: "
        f"{_load(results['loadavg_after'])} (a shared 2-core machine: figures vary from run to run).",
        f"Coalescing: quiet {timing.quiet} s, minimum interval {timing.min_interval} s, max delay {timing.max_delay} s "
        "(see Method).",
        "",
        "## Summary (push pipeline)",
        "",
        "| measure | min | median | max | goal | met in every run |",
        "| --- | --- | --- | --- | --- | --- |",
        row(f"idle reconcile, N = {big:,}", at(big, "idle_seconds"), secs, "≤ 0.100 s", lambda v: v <= 0.1),
        row(
            f"first reconcile (writes every block), N = {big:,}",
            at(big, "first_seconds"),
            secs,
            "≤ 0.500 s",
            lambda v: v <= 0.5,
        ),
        row(
            "SQL statements per reconcile, first (largest over N)",
            [
                max(r["first_queries"] for r in run["scaling"]) if constant(run, "first_queries") else None
                for run in runs
            ],
            str,
            "≤ 10, constant in N",
            lambda v: v <= 10,
        ),
        row(
            "SQL statements per reconcile, idle (largest over N)",
            [max(r["idle_queries"] for r in run["scaling"]) if constant(run, "idle_queries") else None for run in runs],
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
        f"| both of the above in the same run | {sum(both(run) for run in runs)} of {len(runs)} runs | | | "
        f"each of 3 runs in a row | {'yes' if len(runs) >= 3 and all(both(run) for run in runs) else 'no'} |",
        row(
            f"worker peak RSS during a sweep of {swept['services']:,} services, largest process (MiB)",
            [run["sweep"]["peak_rss_kib"] / mib for run in runs],
            lambda v: f"{v:.1f}",
            "≤ 250",
            lambda v: v <= 250,
        ),
        row(
            "typical services that fit one Gateway under the default byte budget",
            [cap["services"]],
            lambda v: f"{v:,}",
            "≥ 3,000",
            lambda v: v >= 3000,
        ),
        row(
            f"first reconcile at that size ({cap['measured_services']:,} services)",
            [cap["first_seconds"]],
            secs,
            "—",
            None,
        ),
        row(
            f"idle reconcile at that size ({cap['measured_services']:,} services)",
            [cap["idle_seconds"]],
            secs,
            "—",
            None,
        ),
        "",
        "SQL statements by size, run by run (first/idle; Django counts BEGIN and COMMIT too): "
        + "; ".join(
            ", ".join(f"{r['services']:,}: {r['first_queries']}/{r['idle_queries']}" for r in run["scaling"])
            for run in runs
        )
        + ".",
        "",
        "## Capacity of one Gateway",
        "",
        "A typical service is one HTTPS server with two hosts and SIMPLE TLS from a certificate the portal stores",
        f"(its own Secret). It weighs {cap['block_bytes']} bytes as the request-time byte check counts it (the server",
        "as compact JSON with namespace-scoped hosts, and its name in the managed-servers annotation); the default",
        f"budget (GATEWAY_BYTE_BUDGET) of {cap['budget']:,} bytes holds {cap['services']:,} of them. A Gateway of",
        f"{cap['measured_services']:,} such services, reconciled in-process: the first run writes "
        f"{cap['first_secret_writes']:,} Secrets and the Gateway ({cap['first_gateway_writes']} write; "
        f"{cap['applied']:,} blocks applied) in {secs(cap['first_seconds'])}; the next, idle, "
        f"{secs(cap['idle_seconds'])} ({cap['idle_secret_writes'] + cap['idle_gateway_writes']} writes).",
        "",
        "## Per run",
        "",
        f"POST → applied: {LATENCY_SAMPLES} services, each POSTed through the API with a label selector matching "
        f"{CLUSTERS} clusters; time until all {CLUSTERS} statuses read `applied` (a sample never applied would count "
        "as 60 s). Each is a change on its own: samples take turns over "
        f"{runs[0]['latency']['groups']} groups of {CLUSTERS} clusters, so a group's gateways last ran at least the "
        f"minimum interval ({timing.min_interval} s) before its next sample. The cold sample (first request, first "
        "task in each worker process) is left out.",
        f"Burst: {BURST} POSTs one after another to one cluster, in the same run. POST gaps: the time between one "
        f"POST's answer and the next's, how the coalescer sees the burst; `> quiet`: gaps over {timing.quiet} s.",
        f"Sweep: the verifying reconciles (every Secret read back) of {swept['gateways']} gateway(s) holding "
        f"{swept['services']:,} typical services, queued at once as beat's sweep does. Largest process: the highest",
        "VmHWM of the worker's main and pool processes; worker total: their VmRSS summed, sampled every 50 ms.",
        "",
        "| run | load avg | latency p50 | p95 | max | cold | not applied | burst POSTs took "
        "| POST gap p50 / p95 | gaps > quiet | converged after | Gateway writes | sweep took | Secrets read "
        "| largest process | worker total |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        lat, burst, sweep = run["latency"], run["burst"], run["sweep"]
        lines.append(
            f"| {run['run']} | {run['loadavg'][0]:.1f} | {secs(lat['p50'])} | {secs(lat['p95'])} | {secs(lat['max'])} "
            f"| {secs(lat['cold'])} | {lat['not_applied']} | {secs(burst['post_seconds'])} "
            f"| {burst['gap_p50'] * 1000:.0f} / {burst['gap_p95'] * 1000:.0f} ms | {burst['gaps_over_quiet']} "
            f"| {secs(burst['seconds_to_converge']) if burst['converged'] else 'not converged'} "
            f"| {burst['gateway_writes']} | {secs(sweep['seconds'])} | {sweep['secret_reads']:,} "
            f"| {sweep['peak_rss_kib'] / mib:.1f} MiB | {sweep['worker_total_rss_kib'] / mib:.1f} MiB |"
        )
    lines += [
        "",
        "One reconcile by number of services (plain HTTP blocks, in-process so that queries are counted; `idle` runs",
        "again with nothing to do):",
        "",
        "| run | services | first: queries | first: k8s requests (writes) | first: wall time "
        "| idle: queries | idle: k8s requests (writes) | idle: wall time | machine (reference work, ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        for r in run["scaling"]:
            lines.append(
                f"| {run['run']} | {r['services']:,} | {r['first_queries']} | {r['first_k8s_requests']} "
                f"({r['first_k8s_writes']}) | {secs(r['first_seconds'])} | {r['idle_queries']} "
                f"| {r['idle_k8s_requests']} ({r['idle_k8s_writes']}) | {secs(r['idle_seconds'])} "
                f"| {r['machine_ms']:.1f} |"
            )
    lines += [
        "",
        "Machine: the milliseconds a fixed pure-Python workload took just before the row was measured "
        "(`tests.bench.machine_ms`; lower is faster). On this shared virtual machine it is about 9 ms on a fast",
        "phase with nothing else running, 15-17 ms on a slow phase (the two alternate within a minute), and more while",
        "other processes (the worker, Postgres's autovacuum) are busy; every timing beside it moves with it.",
        "",
    ]
    return "\n".join(lines)


def _load(values) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    main()
