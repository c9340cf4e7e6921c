import io
import json
import logging

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from gatewayportal.context import acting_as
from gatewayportal.logging import RedactSecretsFilter, RequestIDFilter

PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


def json_formatter() -> logging.Formatter:
    """The production formatter, built from settings.LOGGING (the test settings log as plain text)."""
    options = dict(settings.LOGGING["formatters"]["json"])
    return import_string(options.pop("()"))(**options)


def test_console_handler_uses_both_filters():
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["request_id", "redact"]


def capture(logger_name: str, emit) -> list[dict]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIDFilter())
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return [json.loads(text) for text in stream.getvalue().splitlines()]


@pytest.mark.django_db
def test_request_log_line_is_json_with_the_request_id(client):
    lines = capture("django.request", lambda log: client.get("/no-such-page", HTTP_X_REQUEST_ID="req-42"))

    (line,) = lines
    assert line["request_id"] == "req-42"
    assert line["level"] == "WARNING"
    assert line["logger"] == "django.request"
    assert "/no-such-page" in line["message"]
    assert "time" in line


def test_log_lines_carry_the_actors_request_id_and_extra_context():
    with acting_as(name="worker", source="worker", request_id="task-7"):
        (line,) = capture("tests.logging", lambda log: log.info("applied", extra={"cluster": "prod-eu-1"}))

    assert (line["request_id"], line["cluster"], line["message"]) == ("task-7", "prod-eu-1", "applied")


def test_secret_extras_are_redacted():
    extra = {"token": "sa-token-123", "cluster": {"name": "a", "kubeconfig": "x"}}

    (line,) = capture("tests.logging", lambda log: log.info("registered", extra=extra))

    assert line["token"] == "[redacted]"
    assert line["cluster"] == {"name": "a", "kubeconfig": "[redacted]"}
    assert "sa-token-123" not in json.dumps(line)


def test_secrets_in_message_arguments_are_redacted():
    lines = capture(
        "tests.logging",
        lambda log: (
            log.info("payload %s", {"password": "hunter2", "host": "a.example.com"}),
            log.warning("bad key %s", PRIVATE_KEY),
        ),
    )

    text = json.dumps(lines)
    assert "hunter2" not in text and "a.example.com" in text
    assert "BEGIN PRIVATE KEY" not in text
    assert "MIIEvQ" not in text


@pytest.mark.django_db
def test_a_request_carrying_secrets_logs_none_of_them(client):
    body = {"name": "c1", "token": "sa-token-xyz", "kubeconfig": PRIVATE_KEY}
    lines = capture(
        "",
        lambda log: client.post("/api/v1/clusters/", body, content_type="application/json", HTTP_X_REQUEST_ID="r-9"),
    )

    text = json.dumps(lines)
    assert "sa-token-xyz" not in text
    assert "MIIEvQ" not in text
    assert any(line["request_id"] == "r-9" for line in lines)
