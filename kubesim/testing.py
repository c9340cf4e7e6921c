"""pytest fixtures that start kubesim clusters on free loopback ports (loaded as a plugin by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubesim.server import KubeSim

DEFAULT_TOKEN = "test-token"
TEAM_NAMESPACES = ("demo", "payments", "search")


@pytest.fixture
def kubesim_factory() -> Iterator[Callable[..., KubeSim]]:
    """Start sims with `kubesim_factory(token=..., tls=..., istio_versions=..., demo=True)`; all stop after the test."""
    started: list[KubeSim] = []

    def start(*, token: str = DEFAULT_TOKEN, demo: bool = False, **options: Any) -> KubeSim:
        sim = KubeSim(token=token, **options)
        if demo:
            sim.seed_demo(TEAM_NAMESPACES)
        started.append(sim.start())
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def kubesim(kubesim_factory: Callable[..., KubeSim]) -> KubeSim:
    """One plain-HTTP sim with token "test-token", istio-system + team namespaces and the demo Gateways."""
    return kubesim_factory(demo=True)
