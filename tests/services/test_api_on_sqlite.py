"""The API's writes on the embedded default (`make run`: SQLite), where reads compiled once see UUIDs as hex text."""

from __future__ import annotations

from tests.sqlite import run_on_sqlite

SCRIPT = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
import yaml
from tests.factories import api_client, http_service, make_cluster, make_team, make_user
user = make_user("alice")
make_team("payments", members=[user])
make_cluster("prod-eu-1")
client = api_client(user)
URL = "/api/v1/gateway-services/"
body = http_service(name="checkout", hosts=["checkout.payments.example.com"])
created = client.post(URL, body, format="json")
sid = created.json()["id"]
same = client.put(f"{URL}{sid}/", body, format="json")
wider = {**body, "hosts": ["checkout.payments.example.com", "b.payments.example.com"]}
changed = client.put(f"{URL}{sid}/", wider, format="json")
clash = client.post(URL, http_service(name="clash", hosts=["b.payments.example.com"]), format="json")
document = {"apiVersion": "gatewayportal.io/v1", "kind": "GatewayService",
            "metadata": {"name": "cart", "namespace": "payments"},
            "spec": {k: v for k, v in http_service(hosts=["cart.payments.example.com"]).items()
                     if k not in ("name", "namespace")}}
apply = lambda: client.post(f"{URL}apply/?team=payments&apply_set=web", yaml.safe_dump(document),
                            content_type="application/yaml")
first, again = apply(), apply()
print(created.status_code, same.status_code, changed.status_code, clash.status_code, "hosts" in clash.json(),
      [r["action"] for r in first.json()["results"]], [r["action"] for r in again.json()["results"]])
"""


def test_creates_updates_conflicts_and_applies_work_on_sqlite(tmp_path):
    output = run_on_sqlite(SCRIPT, tmp_path)
    assert output.strip().splitlines()[-1] == "201 200 200 400 True ['created'] ['unchanged']"
