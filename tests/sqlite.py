"""Run a script against the embedded default's database (SQLite), as `make run` serves the portal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_on_sqlite(script: str, directory: Path) -> str:
    """`script`'s output, run in a fresh interpreter on a SQLite database in `directory` (no Redis, no broker)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "gatewayportal.settings",
        "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "",
        "DEBUG": "true",
        "SECRET_KEY": "test-only",
        "LOG_LEVEL": "CRITICAL",
        "ALLOW_INSECURE_CLUSTERS": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
