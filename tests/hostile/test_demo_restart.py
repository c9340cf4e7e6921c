"""`make run` a second time: kubesim may listen on another port and always starts empty.

`demo_setup` points the demo cluster at the new address and reconciles every gateway, so the services already in
the database are back on the (new, empty) simulated cluster at once, not after the next sweep.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command

from clusters.models import Cluster
from tests.clusters.builders import make_service
from tests.factories import make_team

pytestmark = pytest.mark.django_db
GATEWAY = ("istio-system", "ingress-gateway")


def demo_setup(sim) -> None:
    call_command("demo_setup", "--kubesim-port", str(urlsplit(sim.url).port), stdout=io.StringIO())


def server_names(sim) -> list[str]:
    return [s["port"]["name"] for s in sim.store.gateway(*GATEWAY)["spec"]["servers"]]


def test_a_restarted_demo_follows_the_new_port_and_reconciles_at_start(kubesim_factory):
    first = kubesim_factory(demo=True, token="demo-cluster-token")
    demo_setup(first)
    make_team("payments")
    make_service("checkout", clusters=["local"])
    first.stop()

    second = kubesim_factory(demo=True, token="demo-cluster-token")  # another port, empty of portal services
    assert second.url != first.url
    demo_setup(second)

    assert Cluster.objects.get(name="local").api_server == second.url
    assert any("checkout" in name for name in server_names(second)), server_names(second)
