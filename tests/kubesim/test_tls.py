"""HTTPS with kubesim's own CA, verified by the real client."""

from __future__ import annotations

import pytest
import urllib3
from kubernetes import client

from kubesim import KubeSim


def test_client_verifies_the_sim_with_its_ca(kubesim_factory, api_client_for) -> None:
    sim: KubeSim = kubesim_factory(tls=True, demo=True)

    api = api_client_for(sim)
    gateway = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "networking.istio.io", "v1", "istio-system", "gateways", "ingress-gateway"
    )

    assert sim.url.startswith("https://127.0.0.1:")
    assert sim.ca_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert gateway["metadata"]["name"] == "ingress-gateway"


def test_client_without_the_ca_refuses_the_certificate(kubesim_factory) -> None:
    sim: KubeSim = kubesim_factory(tls=True)
    configuration = client.Configuration(host=sim.url, api_key={"authorization": f"Bearer {sim.token}"})
    configuration.retries = 0

    with client.ApiClient(configuration) as api, pytest.raises(urllib3.exceptions.MaxRetryError) as caught:
        client.VersionApi(api).get_code()

    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
