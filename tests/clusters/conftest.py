"""A real Celery worker process for the end-to-end tests, on the pytest test database and its own queue."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from gatewayportal.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
WORKER_START_SECONDS = 60


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[str]:
    """Start `celery -A gatewayportal worker` once per session; yields its queue name."""
    db = settings.DATABASES["default"]
    queue = f"e2e-{uuid.uuid4().hex[:10]}"
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_QUEUE": queue,
        "KUBE_REQUEST_TIMEOUT_SECONDS": "3",
        "LOG_FORMAT": "plain",
    }
    command = [sys.executable, "-m", "celery", "-A", "gatewayportal", "worker", "-Q", queue, "-c", "4", "-l", "info"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{queue}@%h"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WORKER_START_SECONDS
        while " ready." not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield queue
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def worker(celery_worker_process: str, settings) -> Iterator[str]:
    """Tasks go to the real worker (not in-process) for the duration of one test."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    before = (celery_app.conf.task_always_eager, celery_app.conf.task_default_queue)
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = celery_worker_process
    yield celery_worker_process
    celery_app.conf.task_always_eager, celery_app.conf.task_default_queue = before
