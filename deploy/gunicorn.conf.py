"""gunicorn settings for the web container. Worker count: gunicorn reads WEB_CONCURRENCY itself."""

import os
from pathlib import Path

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Heartbeat files on tmpfs: the root filesystem is read-only in Kubernetes.
worker_tmp_dir = "/dev/shm"
timeout = 60
graceful_timeout = 30
# Requests are logged by Django as JSON with their request id; gunicorn's plain access log would duplicate them.
accesslog = None


def on_starting(server) -> None:
    """Start every boot from an empty metrics directory, so counters of a previous run are not summed in."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        # Only the files: the directory itself is usually a mounted volume.
        for stale in path.glob("*.db"):
            stale.unlink()


def post_worker_init(worker) -> None:
    """Each worker imports the views before its first request, moves what it has loaded out of the cyclic
    collector's way, and connects to the broker beside it (gatewayportal.warmup)."""
    from gatewayportal.warmup import warm_up

    warm_up(freeze=True)


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
