"""Namespaces and Secrets through the real CoreV1Api."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import client

from kubesim import KubeSim


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _tls_secret(name: str, data: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> client.V1Secret:
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        type="kubernetes.io/tls",
        data=data if data is not None else {"tls.crt": _b64("cert"), "tls.key": _b64("key")},
    )


def _failure(call, *args, **kwargs) -> tuple[int, dict]:
    with pytest.raises(client.ApiException) as caught:
        call(*args, **kwargs)
    return caught.value.status, json.loads(caught.value.body)


def test_namespaces_list_create_get_delete(core: client.CoreV1Api) -> None:
    created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team-x")))
    fetched = core.read_namespace("team-x")
    names = [ns.metadata.name for ns in core.list_namespace().items]
    deleted = core.delete_namespace("team-x")

    assert created.status.phase == "Active"
    assert fetched.metadata.labels == {"kubernetes.io/metadata.name": "team-x"}
    assert {"istio-system", "demo", "team-x"} <= set(names)
    assert deleted["status"]["phase"] == "Terminating"
    assert _failure(core.read_namespace, "team-x")[0] == 404


def test_tls_secret_round_trip_with_label_selector(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("istio-system", _tls_secret("a-cert", labels={"app.kubernetes.io/managed-by": "gp"}))
    core.create_namespaced_secret("istio-system", _tls_secret("b-cert", labels={"other": "yes"}))

    selected = core.list_namespaced_secret("istio-system", label_selector="app.kubernetes.io/managed-by=gp")
    secret = core.read_namespaced_secret("a-cert", "istio-system")

    assert [s.metadata.name for s in selected.items] == ["a-cert"]
    assert secret.type == "kubernetes.io/tls"
    assert base64.b64decode(secret.data["tls.crt"]) == b"cert"


def test_tls_secret_without_key_is_invalid(core: client.CoreV1Api) -> None:
    status, body = _failure(core.create_namespaced_secret, "istio-system", _tls_secret("x", {"tls.crt": _b64("c")}))

    assert (status, body["reason"]) == (422, "Invalid")
    assert body["message"] == 'Secret "x" is invalid: data[tls.key]: Required value'


def test_secret_data_must_be_base64(core: client.CoreV1Api) -> None:
    status, body = _failure(
        core.create_namespaced_secret, "istio-system", _tls_secret("x", {"tls.crt": "not base64!", "tls.key": "a2V5"})
    )

    assert (status, body["reason"]) == (400, "BadRequest")
    assert "illegal base64 data" in body["message"]


def test_secret_in_missing_namespace_is_namespace_not_found(core: client.CoreV1Api) -> None:
    status, body = _failure(core.create_namespaced_secret, "nowhere", _tls_secret("x"))

    assert status == 404
    assert body["message"] == 'namespaces "nowhere" not found'
    assert body["details"] == {"name": "nowhere", "kind": "namespaces"}


def test_secret_replace_patch_and_delete(core: client.CoreV1Api, kubesim: KubeSim) -> None:
    created = core.create_namespaced_secret("demo", _tls_secret("c"))
    created.data["tls.crt"] = _b64("new-cert")

    replaced = core.replace_namespaced_secret("c", "demo", created)
    patched = core.patch_namespaced_secret("c", "demo", {"metadata": {"labels": {"rotated": "yes"}}})
    deleted = core.delete_namespaced_secret("c", "demo")

    assert base64.b64decode(replaced.data["tls.crt"]) == b"new-cert"
    assert patched.metadata.labels == {"rotated": "yes"}
    assert patched.data["tls.key"] == _b64("key")
    assert deleted["status"] == "Success"
    assert kubesim.store.secret("demo", "c") is None
    assert kubesim.requests.all()[-2].content_type == "application/strategic-merge-patch+json"


def test_stale_secret_replace_conflicts(core: client.CoreV1Api) -> None:
    stale = core.create_namespaced_secret("demo", _tls_secret("d"))
    core.patch_namespaced_secret("d", "demo", {"metadata": {"labels": {"x": "1"}}})

    status, body = _failure(core.replace_namespaced_secret, "d", "demo", stale)

    assert (status, body["reason"]) == (409, "Conflict")
    assert body["message"].startswith('Operation cannot be fulfilled on secrets "d"')


def test_seeded_secret_is_visible(core: client.CoreV1Api, kubesim: KubeSim) -> None:
    kubesim.store.add_secret("istio-system", "seeded", {"tls.crt": b"c", "tls.key": "k"}, type="kubernetes.io/tls")

    assert core.read_namespaced_secret("seeded", "istio-system").data["tls.key"] == _b64("k")
