"""The pure pieces: label selectors, JSON patch and the CRD's CEL rules."""

from __future__ import annotations

import pytest

from kubesim import labels, schema
from kubesim.errors import ApiError
from kubesim.patch import json_patch, merge_patch


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", True),
        ("app==web,tier!=db", True),
        ("app in (web, api),!legacy", True),
        ("app notin (web)", False),
        ("tier", False),
        ("", True),
    ],
)
def test_label_selectors(selector: str, expected: bool) -> None:
    assert labels.parse(selector).matches({"app": "web"}) is expected


def test_bad_label_selector_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as caught:
        labels.parse("a=(b")

    assert caught.value.code == 400


def test_json_patch_operations() -> None:
    document = {"a": {"b": 1}, "list": [1, 2]}

    patched = json_patch(
        document,
        [
            {"op": "copy", "from": "/a/b", "path": "/c"},
            {"op": "move", "from": "/list/0", "path": "/list/-"},
            {"op": "remove", "path": "/a"},
            {"op": "replace", "path": "/c", "value": 3},
        ],
    )

    assert patched == {"c": 3, "list": [2, 1]}
    assert document == {"a": {"b": 1}, "list": [1, 2]}


def test_json_patch_on_a_missing_path_is_rejected() -> None:
    with pytest.raises(ApiError) as caught:
        json_patch({}, [{"op": "replace", "path": "/nope", "value": 1}])

    assert (caught.value.code, caught.value.reason) == (422, "Invalid")


def test_merge_patch_null_deletes() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"a": None, "b": {"c": None}}) == {"b": {"d": 3}}


def test_every_cel_rule_of_the_crd_is_understood() -> None:
    for version_schema in schema.crd_versions().values():
        tls = version_schema["properties"]["spec"]["properties"]["servers"]["items"]["properties"]["tls"]
        rules = [schema.compile_rule(rule) for rule in tls["x-kubernetes-validations"]]

        assert [rule.fields for rule in rules] == [
            ("tlsCertificates", "credentialNames"),
            ("credentialName", "credentialNames"),
            ("credentialNames", "tlsCertificates"),
        ]


def test_unknown_cel_rule_fails_loudly() -> None:
    with pytest.raises(ValueError, match="cannot evaluate"):
        schema.compile_rule({"rule": "self.size() > 1"})


def test_store_answers_are_copies() -> None:
    """What the store returns never aliases what it keeps (nor what it was given), tuples and all."""
    from kubesim.resources import GATEWAYS
    from kubesim.store import Store

    store = Store()
    store.add_namespace("istio-system")
    server = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
    created = store.add_gateway("istio-system", "gw", [server])
    created["spec"]["servers"][0]["port"]["number"] = 81
    read = store.gateway("istio-system", "gw")
    assert read["spec"]["servers"][0]["port"]["number"] == 80
    read["metadata"]["name"] = "changed"
    assert store.metadata(GATEWAYS, "istio-system", "gw")["name"] == "gw"
    listed = store.list(GATEWAYS, "istio-system")[0]
    listed["spec"]["servers"].clear()
    assert store.gateway("istio-system", "gw")["spec"]["servers"] == [server]
