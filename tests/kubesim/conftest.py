"""Real `kubernetes` clients pointed at kubesim instances."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from kubesim import KubeSim


@pytest.fixture
def api_client_for() -> Iterator[Callable[..., client.ApiClient]]:
    """Build an ApiClient for a sim (its token and CA unless overridden); all are closed after the test."""
    made: list[client.ApiClient] = []

    def build(sim: KubeSim, token: str | None = None, retries: int | None = 0) -> client.ApiClient:
        configuration = client.Configuration(host=sim.url)
        configuration.retries = retries
        if token or sim.token:
            configuration.api_key = {"authorization": f"Bearer {token or sim.token}"}
        if sim.ca_file:
            configuration.ssl_ca_cert = sim.ca_file
        made.append(client.ApiClient(configuration))
        return made[-1]

    yield build
    for api_client in made:
        api_client.close()


@pytest.fixture
def api(kubesim: KubeSim, api_client_for: Callable[..., client.ApiClient]) -> client.ApiClient:
    return api_client_for(kubesim)


@pytest.fixture
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)
