"""A team member reading a cluster's live Gateways sees its own blocks, not another team's.

A managed server's port name carries its service's name and namespace, and its block the hosts and the Secret
name it terminates TLS with: what another team could use to map, impersonate or borrow from a tenant. Team
members see their own servers in full and the unmanaged ones by port name; platform engineers see everything.
"""

from __future__ import annotations

import pytest

from clusters.converge import gateway_converge
from services.models import GatewayServiceStatus
from tests.clusters.builders import sim_cluster
from tests.factories import api_client, http_service, make_team, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_member_sees_its_own_servers_and_no_other_teams(kubesim):
    cluster = sim_cluster(kubesim, "c1")
    alice, bob = make_user("alice"), make_user("bob")
    make_team("payments", members=[alice])
    make_team("shop", members=[bob])
    member, other, root = api_client(alice), api_client(bob), api_client(make_user("root", platform=True))
    mine = http_service(name="checkout", clusters=["c1"])
    theirs = http_service(name="basket", namespace="shop", hosts=["basket.shop.example.com"], clusters=["c1"])
    assert member.post("/api/v1/gateway-services/", mine, format="json").status_code == 201
    assert other.post("/api/v1/gateway-services/", theirs, format="json").status_code == 201
    gateway_converge(cluster_id=cluster.pk, traffic_type="ingress")
    assert set(GatewayServiceStatus.objects.values_list("state", flat=True)) == {"applied"}

    answer = member.get("/api/v1/clusters/c1/gateways/")
    ingress = answer.json()[0]
    by_port = {server["port_name"]: server for server in ingress["servers"]}

    assert "basket" not in answer.content.decode() and "shop.example.com" not in answer.content.decode()
    assert by_port["http-checkout-payments"]["server"]["hosts"] == ["payments/checkout.payments.example.com"]
    assert by_port["http"] == {"port_name": "http", "managed": False}  # unmanaged: its name, not its block
    everything = root.get("/api/v1/clusters/c1/gateways/").json()[0]
    assert {s["port_name"] for s in everything["servers"]} == {"http", "http-checkout-payments", "http-basket-shop"}
    assert all("server" in s for s in everything["servers"])
