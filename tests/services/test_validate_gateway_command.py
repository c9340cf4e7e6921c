"""`manage.py validate_gateway`: output formats and exit codes, in-process and as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

SEED_GATEWAY = Path(__file__).resolve().parent / "seed_examples" / "gateway.yaml"
REPO = Path(__file__).resolve().parents[2]

VALID = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "ingress", "namespace": "istio-system"},
    "spec": {
        "servers": [
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]},
        ]
    },
}
INVALID = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "Gateway",
    "metadata": {"name": "broken"},
    "spec": {
        "servers": [
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]},
            {
                "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "hosts": ["a.example.com"],
                "tls": {"mode": "SIMPLE", "credentialName": "x", "serverCertificate": "/c", "privateKey": "/k"},
            },
        ]
    },
}
WARNING_ONLY = {
    **VALID,
    "metadata": {"name": "warned"},
    "spec": {
        "servers": [
            {
                "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "hosts": ["a.example.com"],
                "tls": {"mode": "SIMPLE", "credentialName": "x", "minProtocolVersion": "TLSV1_0"},
            }
        ]
    },
}


def write(tmp_path: Path, *documents: dict, as_json: bool = False) -> Path:
    path = tmp_path / ("gw.json" if as_json else "gw.yaml")
    if as_json:
        path.write_text(json.dumps(documents[0] if len(documents) == 1 else list(documents)))
    else:
        path.write_text(yaml.safe_dump_all(documents))
    return path


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("validate_gateway", *args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def test_seed_gateway_is_valid():
    code, output = run(str(SEED_GATEWAY))
    assert code == 0
    assert output == ""


def test_seed_gateway_json_report():
    code, output = run(str(SEED_GATEWAY), "--format", "json")
    assert code == 0
    assert json.loads(output) == [
        {"document": 0, "name": "application-ingress-gateway", "valid": True, "errors": [], "warnings": []},
        {"document": 1, "name": "istio-system-ingress-gateway", "valid": True, "errors": [], "warnings": []},
    ]


def test_text_lines_name_document_name_and_path(tmp_path):
    code, output = run(str(write(tmp_path, VALID, INVALID)))
    assert code == 1
    assert output.splitlines() == [
        "1 broken: spec.servers[1].tls: only one of credential_name, credential_names, "
        "server_certificate/private_key, tls_certificates should be specified; "
        "found serverCertificate/privateKey, credentialName",
    ]


def test_json_report_for_invalid_and_warning_documents(tmp_path):
    code, output = run(str(write(tmp_path, INVALID, WARNING_ONLY)), "--format", "json")
    assert code == 1
    broken, warned = json.loads(output)
    assert broken["document"] == 0 and broken["name"] == "broken" and broken["valid"] is False
    assert [e["path"] for e in broken["errors"]] == ["spec.servers[1].tls"]
    assert warned["valid"] is True
    assert warned["errors"] == []
    assert [w["path"] for w in warned["warnings"]] == ["spec.servers[0].tls.minProtocolVersion"]


def test_warnings_alone_exit_zero_and_are_marked(tmp_path):
    code, output = run(str(write(tmp_path, WARNING_ONLY)))
    assert code == 0
    assert output.startswith("0 warned: spec.servers[0].tls.minProtocolVersion: warning: ")


@pytest.mark.parametrize("documents", [(VALID,), (VALID, WARNING_ONLY)])
def test_json_input(tmp_path, documents):
    code, output = run(str(write(tmp_path, *documents, as_json=True)), "--format", "json")
    assert code == 0
    assert [report["document"] for report in json.loads(output)] == list(range(len(documents)))


def test_non_gateway_document_is_invalid(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("- just\n- a list\n---\nkind: ConfigMap\n")
    code, output = run(str(path), "--format", "json")
    assert code == 1
    reports = json.loads(output)
    assert [r["valid"] for r in reports] == [False, False]


@pytest.mark.parametrize("content", ["key: [unclosed\n", "", "---\n---\n"])
def test_unparseable_or_empty_input_exits_2(tmp_path, content):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert run(str(path))[0] == 2


def test_missing_file_exits_2(tmp_path):
    assert run(str(tmp_path / "absent.yaml"))[0] == 2


def subprocess_run(args: list[str], stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "validate_gateway", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings")},
        check=False,
    )


def test_stdin_subprocess_exit_codes():
    valid = subprocess_run(["-"], SEED_GATEWAY.read_text())
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout == ""
    invalid = subprocess_run(["-", "--format", "json"], yaml.safe_dump(INVALID))
    assert invalid.returncode == 1
    assert json.loads(invalid.stdout)[0]["valid"] is False
    unreadable = subprocess_run(["-"], "key: [unclosed\n")
    assert unreadable.returncode == 2
    assert "cannot parse" in unreadable.stderr


def test_json_with_tabs_is_read_as_json(tmp_path):
    path = tmp_path / "tabs.json"
    path.write_text(json.dumps(VALID, indent="\t"))
    assert run(str(path)) == (0, "")


def test_a_kind_list_stands_for_its_items(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [VALID, INVALID]}))
    code, output = run(str(path), "--format", "json")
    assert code == 1
    assert [(r["document"], r["valid"]) for r in json.loads(output)] == [(0, True), (1, False)]
