"""Real Celery worker processes for the end-to-end tests (a pytest plugin loaded by tests/conftest.py).

`celery_worker_process`/`worker`: one worker per session on the pytest test database and its own queue.
`worker_factory`: workers a test starts, SIGKILLs or restarts itself, with their own queue, broker or settings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from gatewayportal.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[1]
WORKER_START_SECONDS = 60


@dataclass
class WorkerProcess:
    """A `celery worker` in its own process group (its pool children go with it when it is killed)."""

    process: subprocess.Popen
    log: Path
    queue: str
    command: list[str]
    environment: dict[str, str]
    restarts: int = 0
    _supervisor: threading.Thread | None = None
    _stopping: threading.Event | None = None

    def wait_ready(self) -> WorkerProcess:
        deadline = time.monotonic() + WORKER_START_SECONDS
        while " ready." not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def supervise(self) -> WorkerProcess:
        """Start the worker again whenever it exits, as the deployment's restart policy does in production.

        A worker can exit on its own when its broker crashes: kombu's Redis transport may raise while it
        restores unacknowledged messages ("Unrecoverable error"), and Celery then stops. Kubernetes and the
        compose file restart it; a test of broker crashes needs the same supervision to be a fair test.
        """
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._respawn_loop, name=f"supervise-{self.queue}", daemon=True)
        self._supervisor.start()
        return self

    def _respawn_loop(self) -> None:
        while not self._stopping.wait(0.5):
            if self.process.poll() is not None:
                self.restarts += 1
                with open(self.log, "a") as out:
                    out.write(f"\n--- supervisor: worker exited ({self.process.returncode}); restart {self.restarts}\n")
                self.process = _spawn(self.command, self.environment, self.log)

    def _stop_supervising(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
            self._supervisor.join(timeout=5)

    def kill(self) -> None:
        """SIGKILL the worker and its pool: no warm shutdown, nothing acknowledged, no lock released."""
        self._stop_supervising()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)

    def stop(self) -> None:
        self._stop_supervising()
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


def _spawn(command: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


# The tests' workers (and the test process that enqueues for them) coalesce with a 1 s minimum interval and a 5 s
# max delay: the product's 10 s (clusters.coalescer) would only make every test that changes a gateway twice
# wait. The coalescer's rules are tested with the product's settings in tests/clusters/test_actions.py.
TEST_COALESCING = {"RECONCILE_MIN_INTERVAL_SECONDS": 1.0, "RECONCILE_MAX_DELAY_SECONDS": 5.0}


def start_worker(
    queue: str, log: Path, *, env: dict[str, str] | None = None, concurrency: int = 4, args: tuple[str, ...] = ()
) -> WorkerProcess:
    """Start `celery -A gatewayportal worker` on the pytest test database, consuming `queue`; `args` are added."""
    db = settings.DATABASES["default"]
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_QUEUE": queue,
        "KUBE_REQUEST_TIMEOUT_SECONDS": "3",
        "LOG_FORMAT": "plain",
        **{name: str(value) for name, value in TEST_COALESCING.items()},
        **(env or {}),
    }
    command = [sys.executable, "-m", "celery", "-A", "gatewayportal", "worker", "-Q", queue, "-c", str(concurrency)]
    command += ["-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{queue}@%h", *args]
    return WorkerProcess(_spawn(command, environment, log), log, queue, command, environment)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[str]:
    """One worker for the whole session; yields its queue name."""
    queue = f"e2e-{uuid.uuid4().hex[:10]}"
    worker = start_worker(queue, tmp_path_factory.mktemp("celery") / "worker.log")
    try:
        worker.wait_ready()
        yield queue
    finally:
        worker.stop()


@pytest.fixture
def worker(celery_worker_process: str, settings) -> Iterator[str]:
    """Tasks go to the session's real worker (not in-process) for the duration of one test."""
    with _tasks_sent_to(celery_worker_process, settings):
        yield celery_worker_process
        _quiesce(celery_worker_process)


QUIESCE_SECONDS = 30


def _quiesce(queue: str) -> None:
    """Leave the session's worker idle: the test's retries and reruns must not run during the database flush.

    A task still writing while the flush truncates the tables deadlocked it (audit chain lock vs TRUNCATE), and
    the tables it left behind failed the next tests.
    """
    name = f"{queue}@{socket.gethostname()}"
    inspect = celery_app.control.inspect(destination=[name], timeout=2)
    revoked: set[str] = set()
    deadline = time.monotonic() + QUIESCE_SECONDS
    while time.monotonic() < deadline:
        with celery_app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)
        # Revoked tasks stay listed until their countdown ends, then are dropped unrun.
        held = {
            task.get("request", task)["id"]
            for listing in (inspect.scheduled(), inspect.reserved())
            for task in (listing or {}).get(name, [])
        } - revoked
        if held:
            celery_app.control.revoke(sorted(held), destination=[name])
            revoked |= held
        elif not (inspect.active() or {}).get(name):
            return
        time.sleep(0.1)


@pytest.fixture
def worker_factory(django_db_setup, tmp_path, settings) -> Iterator[Callable[..., WorkerProcess]]:
    """`worker_factory(env=..., args=..., supervised=...)` starts a ready worker on this test's own queue; all
    are stopped afterwards. A supervised worker is started again when it exits, as its deployment would.

    Tasks the test enqueues go to that queue. Workers started again share it, so a restarted worker picks up
    what a killed one left unacknowledged.
    """
    queue = f"faults-{uuid.uuid4().hex[:10]}"
    started: list[WorkerProcess] = []

    def start(
        *,
        env: dict[str, str] | None = None,
        concurrency: int = 2,
        args: tuple[str, ...] = (),
        supervised: bool = False,
    ) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        process = start_worker(queue, log, env=env, concurrency=concurrency, args=args)
        started.append(process)
        process.wait_ready()
        return process.supervise() if supervised else process

    with _tasks_sent_to(queue, settings):
        yield start
    for process in started:
        process.stop()


@contextlib.contextmanager
def _tasks_sent_to(queue: str, settings) -> Iterator[None]:
    # Read before touching Django's settings: Celery's configuration reads through to them.
    before = (celery_app.conf.task_always_eager, celery_app.conf.task_default_queue)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    for name, value in TEST_COALESCING.items():
        setattr(settings, name, value)
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_default_queue = before
