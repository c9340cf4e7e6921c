"""services.certificates with certificates generated per test (tests/certs.py) and the seed's expired example."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from services.certificates import (
    check_tls_material,
    inspect_secret_data,
    load_pem_text,
    san_covers,
)
from tests.certs import b64, make_ca, make_cert

SEEDS = Path(__file__).resolve().parent / "seed_examples"
NOW = datetime.now(UTC)


def check(leaf, *, hosts=("test.example.com",), key=None, ca_cert=None, mode="SIMPLE", now=NOW, warn_days=30):
    return check_tls_material(
        cert=leaf.cert_pem,
        key=key if key is not None else leaf.key_pem,
        ca_cert=ca_cert,
        hosts=list(hosts),
        mode=mode,
        now=now,
        warn_days=warn_days,
    )


@pytest.fixture(scope="module")
def rsa_leaf():
    return make_cert(dns_names=["test.example.com", "*.apps.example.com"])


# --- load_pem_text -------------------------------------------------------------------------------------------------


def test_load_pem_text_accepts_pem_and_base64_of_pem(rsa_leaf):
    assert load_pem_text(rsa_leaf.cert_pem) == rsa_leaf.cert_pem
    assert load_pem_text(rsa_leaf.cert_b64) == rsa_leaf.cert_pem
    wrapped = "\n".join(rsa_leaf.cert_b64[i : i + 64] for i in range(0, len(rsa_leaf.cert_b64), 64))
    assert load_pem_text(wrapped) == rsa_leaf.cert_pem


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not a certificate!", "neither PEM"),
        (base64.b64encode(b"hello world").decode(), "does not decode to PEM"),
        (base64.b64encode(b"\xff\xfe\x00").decode(), "neither PEM"),
    ],
)
def test_load_pem_text_refuses(value, fragment):
    with pytest.raises(ValueError, match=fragment):
        load_pem_text(value)


# --- happy paths ---------------------------------------------------------------------------------------------------


# Ed25519 keys exist only in PKCS#8; "pkcs1" means the traditional OpenSSL form (PKCS#1 RSA, SEC1 EC).
@pytest.mark.parametrize(
    ("key_type", "key_format"),
    [("rsa", "pkcs8"), ("rsa", "pkcs1"), ("ec", "pkcs8"), ("ec", "pkcs1"), ("ed25519", "pkcs8")],
)
def test_supported_keys_and_formats(key_type, key_format):
    leaf = make_cert(key_type=key_type)
    key = leaf.key_pem if key_format == "pkcs8" else leaf.key_pem_pkcs1
    result = check(leaf, key=key)
    assert result.errors == {}
    assert result.ok
    assert result.normalized == {"cert": leaf.cert_pem, "key": key, "ca_cert": None}


def test_base64_input_is_normalised_to_pem(rsa_leaf):
    result = check_tls_material(
        cert=rsa_leaf.cert_b64,
        key=rsa_leaf.key_b64,
        ca_cert=None,
        hosts=["test.example.com"],
        mode="SIMPLE",
        now=NOW,
    )
    assert result.errors == {}
    assert result.normalized["cert"] == rsa_leaf.cert_pem
    assert result.normalized["key"] == rsa_leaf.key_pem


def test_summary(rsa_leaf):
    summary = check(rsa_leaf).summary
    assert summary["subject"] == "CN=test.example.com"
    assert summary["issuer"] == "CN=test.example.com"
    assert summary["dns_names"] == ["test.example.com", "*.apps.example.com"]
    assert summary["not_after"].endswith("Z")
    assert datetime.fromisoformat(summary["not_after"]) == rsa_leaf.certificate.not_valid_after_utc.replace(
        microsecond=0
    )
    fingerprint = summary["sha256_fingerprint"]
    assert len(fingerprint) == 64
    assert fingerprint == fingerprint.lower()
    assert ":" not in fingerprint


def test_chain_leaf_first_with_ca():
    ca = make_ca()
    leaf = make_cert(issuer=ca, dns_names=["api.example.com"])
    result = check_tls_material(
        cert=leaf.cert_pem + ca.cert_pem,
        key=leaf.key_pem,
        ca_cert=ca.cert_pem,
        hosts=["api.example.com"],
        mode="MUTUAL",
        now=NOW,
    )
    assert result.errors == {}
    assert result.summary["issuer"] == "CN=Test CA"
    assert result.normalized["cert"] == leaf.cert_pem + ca.cert_pem
    assert result.normalized["ca_cert"] == ca.cert_pem


# --- refusals ------------------------------------------------------------------------------------------------------


def test_expired():
    leaf = make_cert(not_before=NOW - timedelta(days=100), not_after=NOW - timedelta(days=1))
    result = check(leaf)
    assert list(result.errors) == ["cert"]
    assert "expired" in result.errors["cert"][0]


def test_not_yet_valid():
    leaf = make_cert(not_before=NOW + timedelta(days=1), not_after=NOW + timedelta(days=100))
    result = check(leaf)
    assert "not valid before" in result.errors["cert"][0]


@pytest.mark.parametrize(("days_left", "warned"), [(10, True), (29, True), (45, False)])
def test_expiry_warning(days_left, warned):
    leaf = make_cert(not_after=NOW + timedelta(days=days_left))
    result = check(leaf)
    assert result.errors == {}
    assert bool(result.warnings) is warned
    if warned:
        assert "30 days" in result.warnings[0]


def test_wrong_key(rsa_leaf):
    other = make_cert()
    result = check(rsa_leaf, key=other.key_pem)
    assert list(result.errors) == ["key"]
    assert "does not match" in result.errors["key"][0]


def test_wrong_key_type_mismatch():
    result = check(make_cert(key_type="rsa"), key=make_cert(key_type="ec").key_pem)
    assert "does not match" in result.errors["key"][0]


def test_encrypted_key_refused(rsa_leaf):
    result = check(rsa_leaf, key=rsa_leaf.key_pem_encrypted())
    assert "encrypted" in result.errors["key"][0]


@pytest.mark.parametrize(
    ("cert", "fragment"),
    [
        ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", "could not be parsed"),
        ("garbage", "neither PEM"),
    ],
)
def test_unparseable_certificate(rsa_leaf, cert, fragment):
    result = check_tls_material(cert=cert, key=rsa_leaf.key_pem, ca_cert=None, hosts=["a.b.c"], mode="SIMPLE", now=NOW)
    assert fragment in result.errors["cert"][0]
    assert result.summary is None


def test_key_given_as_certificate(rsa_leaf):
    result = check(rsa_leaf, key=rsa_leaf.cert_pem)
    assert "key" in result.errors


def test_certificate_given_as_key(rsa_leaf):
    result = check_tls_material(cert=rsa_leaf.key_pem, key=rsa_leaf.key_pem, ca_cert=None, hosts=[], mode=None, now=NOW)
    assert "CERTIFICATE" in result.errors["cert"][0]


@pytest.mark.parametrize(
    ("sans", "host", "covered"),
    [
        (["app.example.com"], "app.example.com", True),
        (["App.Example.com"], "app.example.COM.", True),
        (["*.example.com"], "a.example.com", True),
        (["*.example.com"], "example.com", False),
        (["*.example.com"], "a.b.example.com", False),
        (["*.example.com"], "*.example.com", True),
        (["a.example.com"], "*.example.com", False),
        (["*.example.com"], "*.a.example.com", False),
        (["*.example.com"], "*", False),
        (["other.example.com"], "app.example.com", False),
    ],
)
def test_san_coverage(sans, host, covered):
    leaf = make_cert(dns_names=sans)
    result = check(leaf, hosts=[host])
    assert ("cert" not in result.errors) is covered
    if not covered:
        assert host in result.errors["cert"][0]


def test_cn_is_used_only_without_san():
    without_san = make_cert(common_name="legacy.example.com", san=False)
    assert check(without_san, hosts=["legacy.example.com"]).errors == {}
    with_other_san = make_cert(common_name="legacy.example.com", dns_names=["new.example.com"])
    assert "cert" in check(with_other_san, hosts=["legacy.example.com"]).errors


def test_ip_host_needs_ip_san():
    leaf = make_cert(dns_names=["a.example.com"], ip_addresses=["10.1.2.3"])
    assert check(leaf, hosts=["10.1.2.3"]).errors == {}
    assert "cert" in check(leaf, hosts=["10.9.9.9"]).errors


def test_every_host_must_be_covered():
    leaf = make_cert(dns_names=["a.example.com"])
    result = check(leaf, hosts=["a.example.com", "b.example.com"])
    assert "b.example.com" in result.errors["cert"][0]
    assert "a.example.com, b" not in result.errors["cert"][0]


def test_mutual_requires_parseable_ca(rsa_leaf):
    assert "ca_cert" in check(rsa_leaf, mode="MUTUAL").errors
    assert (
        "could not be parsed"
        in check(
            rsa_leaf, mode="MUTUAL", ca_cert="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
        ).errors["ca_cert"][0]
    )
    ca = make_ca()
    assert check(rsa_leaf, mode="MUTUAL", ca_cert=b64(ca.cert_pem)).errors == {}


def test_simple_does_not_need_ca(rsa_leaf):
    assert check(rsa_leaf, mode="SIMPLE", ca_cert=None).errors == {}


# --- the seed's example -------------------------------------------------------------------------------------------


def seed_documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((SEEDS / name).read_text()) if doc]


def test_seed_example_certificate_is_refused_as_expired_and_not_covering_wildcard():
    spec = seed_documents("tls_secret_example.yaml")[0]["spec"]
    secret = spec["tlsOptions"]["tlsSecret"]
    result = check_tls_material(
        cert=secret["cert"],
        key=secret["key"],
        ca_cert=None,
        hosts=spec["hosts"],
        mode=spec["mode"],
        now=NOW,
    )
    messages = result.errors["cert"]
    assert any("expired on 2019-" in m for m in messages)
    assert any("does not cover *.example.com" in m for m in messages)
    assert "key" not in result.errors
    assert result.summary["not_after"].startswith("2019-")


# --- inspect_secret_data -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tls_secretref_example.yaml", "tls_secretpath_example.yaml"])
def test_inspect_seed_secrets_double_base64(name):
    secret = seed_documents(name)[1]
    assert inspect_secret_data(secret["data"]["tls.crt"], secret["data"]["tls.key"]) is None


def test_inspect_secret_data(rsa_leaf):
    assert inspect_secret_data(b64(rsa_leaf.cert_pem), b64(rsa_leaf.key_pem)) is None
    assert "does not match" in inspect_secret_data(b64(rsa_leaf.cert_pem), b64(make_cert().key_pem))
    assert "tls.crt" in inspect_secret_data(b64("nope"), b64(rsa_leaf.key_pem))
    assert "tls.key" in inspect_secret_data(b64(rsa_leaf.cert_pem), b64("nope"))
    assert "base64" in inspect_secret_data("%%%", b64(rsa_leaf.key_pem))


def test_san_covers_helper_is_case_insensitive():
    assert san_covers("*.EXAMPLE.com", "Www.example.COM")


def test_naive_now_is_taken_as_utc(rsa_leaf):
    assert check(rsa_leaf, now=datetime.now(UTC).replace(tzinfo=None)).errors == {}
