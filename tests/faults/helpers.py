"""Shared pieces of the fault tests: soak scaling, a private Redis server, and waits on statuses."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import kombu.pools
import redis
from django.db import transaction

from clusters import enqueue
from clusters.models import Cluster
from gatewayportal.celery import app as celery_app
from services.models import GatewayService, GatewayServiceStatus
from tests.clusters.builders import wait_for

GATEWAY = ("istio-system", "ingress-gateway")
# `make soak` sets SOAK=1: the full durations instead of the suite's short ones.
SOAK = os.environ.get("SOAK") == "1"


def scaled(short: float, soak: float) -> float:
    return soak if SOAK else short


def report(figure: str) -> None:
    """Measurements go to stdout (seen with `pytest -s`) and, under `make soak`, to the FAULT_FIGURES file."""
    print(f"\n[fault figure] {figure}")
    if os.environ.get("FAULT_FIGURES"):
        with open(Path(os.environ["FAULT_FIGURES"]), "a") as out:
            out.write(figure + "\n")


def push(service: GatewayService) -> None:
    """What the services actions do after a write: reconcile every cluster, after commit."""
    with transaction.atomic():
        enqueue.request_reconcile(
            cluster_ids=Cluster.objects.values_list("id", flat=True), traffic_type=service.traffic_type
        )


def state_of(service: GatewayService, cluster: str) -> str | None:
    status = GatewayServiceStatus.objects.filter(service=service, cluster__name=cluster).first()
    return status.state if status else None


def wait_applied(services: list[GatewayService], cluster: str, timeout: float = 90.0) -> None:
    wait_for(
        lambda: all(state_of(s, cluster) == "applied" for s in services),
        timeout=timeout,
        what=f"{len(services)} services to be applied on {cluster}",
    )


def server_names(sim) -> list[str]:
    return [s["port"]["name"] for s in sim.store.gateway(*GATEWAY)["spec"]["servers"]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private, non-persistent redis-server on a loopback port: the fault tests stop and restart it at will."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return self
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{self.log.read_text()[-2000:]}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()  # a crash, not a clean shutdown; nothing is saved either way
            self.process.wait(timeout=10)


@contextlib.contextmanager
def broker(url: str) -> Iterator[None]:
    """Publish this process's tasks through another broker (the app's connection pools are rebuilt for it)."""
    before = celery_app.conf.broker_url
    _use_broker(url)
    try:
        yield
    finally:
        _use_broker(before)


def _use_broker(url: str) -> None:
    celery_app.conf.broker_url = url
    # kombu keeps connection and producer pools in process-wide registries keyed by broker URL; closing only
    # the app's pool left a closed pool registered for the old URL ("Acquire on closed pool" in later tests).
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
