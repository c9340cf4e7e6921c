"""Cluster credentials are safe by default: no plain HTTP, no skipped TLS verification, no proxy.

And `check` never answers 500, whatever address is stored.
"""

from __future__ import annotations

import json

import pytest
import yaml

from clusters.models import Cluster
from tests.factories import api_client, make_cluster, make_user

pytestmark = pytest.mark.django_db

URL = "/api/v1/clusters/"


@pytest.fixture
def platform(settings):
    settings.ALLOW_INSECURE_CLUSTERS = False
    return api_client(make_user("root", platform=True))


def kubeconfig(server: str = "https://10.0.0.1:6443", **cluster: object) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "c",
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "clusters": [{"name": "k", "cluster": {"server": server, **cluster}}],
            "users": [{"name": "u", "user": {"token": "t0ken-abc"}}],
        }
    )


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"api_server": "http://10.0.0.1:6443", "token": "t"}, "api_server", "https://"),
        ({"kubeconfig": kubeconfig("http://10.0.0.1:6443")}, "kubeconfig", "https://"),
        ({"kubeconfig": kubeconfig(**{"insecure-skip-tls-verify": True})}, "kubeconfig", "insecure-skip-tls-verify"),
        ({"kubeconfig": kubeconfig(**{"proxy-url": "http://evil:3128"})}, "kubeconfig", "proxy-url"),
    ],
)
def test_insecure_cluster_credentials_are_refused_naming_the_field(platform, body, field, words):
    response = platform.post(URL, {"name": "prod", **body}, format="json")
    assert response.status_code == 400, response.content
    assert words in json.dumps(response.json()[field])
    assert "ALLOW_INSECURE_CLUSTERS" in json.dumps(response.json()[field])
    assert not Cluster.objects.filter(name="prod").exists()


def test_insecure_credentials_are_accepted_when_the_platform_allows_them(platform, settings):
    settings.ALLOW_INSECURE_CLUSTERS = True
    response = platform.post(URL, {"name": "sim", "api_server": "http://127.0.0.1:9", "token": "t"}, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "api_server",
    ["http://127.0.0.1:8000/metrics?", "https://127.0.0.1:1/?a=b", "https://user:pw@127.0.0.1:1", "https://:1/x#f"],
)
def test_api_server_urls_with_query_userinfo_or_fragment_are_refused(platform, settings, api_server):
    settings.ALLOW_INSECURE_CLUSTERS = True
    response = platform.post(URL, {"name": "odd", "api_server": api_server, "token": "t"}, format="json")
    assert response.status_code == 400, response.content
    assert "api_server" in response.json()


@pytest.mark.parametrize("api_server", ["http://127.0.0.1:8000/metrics?", "https://[::1", "http://127.0.0.1:99999"])
def test_check_of_a_strange_stored_address_never_answers_500(platform, api_server):
    make_cluster("odd", api_server=api_server, token="t")
    response = platform.post(f"{URL}odd/check/", format="json")
    assert response.status_code == 200, response.content[:500]
    assert response.json()["ok"] is False
    assert response.json()["message"]


def test_check_of_a_server_that_is_not_kubernetes_never_answers_500(platform, live_server):
    """The portal's own /metrics (text, not JSON) registered as a cluster: a clear message, not a 500."""
    make_cluster("self", api_server=f"{live_server.url}/metrics?", token="t")
    response = platform.post(f"{URL}self/check/", format="json")
    assert response.status_code == 200, response.content[:500]
    assert response.json()["ok"] is False
    assert response.json()["message"]
