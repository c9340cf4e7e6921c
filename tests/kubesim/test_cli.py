"""`python -m kubesim` as `make run` uses it: prints its URL, serves the demo objects, stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

from kubernetes import client


def test_demo_server_serves_and_exits_cleanly_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "kubesim", "--port", "0", "--token", "cli-token", "--demo"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        configuration = client.Configuration(host=url, api_key={"authorization": "Bearer cli-token"})
        with client.ApiClient(configuration) as api:
            gateways = client.CustomObjectsApi(api).list_namespaced_custom_object(
                "networking.istio.io", "v1", "istio-system", "gateways"
            )
            namespaces = [ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items]
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)

    assert line.startswith("kubesim listening on http://127.0.0.1:")
    assert [g["metadata"]["name"] for g in gateways["items"]] == ["egress-gateway", "ingress-gateway"]
    assert namespaces == ["demo", "istio-system"]
    assert returncode == 0
