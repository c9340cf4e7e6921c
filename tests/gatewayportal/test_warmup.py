"""gatewayportal.warmup: what a web worker makes ready before its first request, and that nothing there can keep a
worker from starting."""

import contextlib
import logging

from django.urls import clear_url_caches, get_resolver

from gatewayportal import warmup
from gatewayportal.celery import app


def test_the_views_are_imported_and_the_broker_reached(settings, caplog):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    clear_url_caches()  # a resolver that has not read the URL configuration yet
    with caplog.at_level(logging.WARNING, logger="gatewayportal.warmup"):
        warmup.warm_up().join(30)
    assert "url_patterns" in vars(get_resolver())
    assert [r.getMessage() for r in caplog.records] == []


def test_a_broker_that_cannot_be_reached_is_logged_and_the_worker_goes_on(settings, caplog, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False

    @contextlib.contextmanager
    def unreachable(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")
        yield

    monkeypatch.setattr(app, "producer_or_acquire", unreachable)
    with caplog.at_level(logging.WARNING, logger="gatewayportal.warmup"):
        warmup.warm_up().join(30)
    assert ["The broker could not be reached while warming up" in r.getMessage() for r in caplog.records] == [True]


def test_eager_tasks_need_no_broker(settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    monkeypatch.setattr(app, "producer_or_acquire", None)  # would fail if called
    assert warmup.warm_up() is None


def test_a_web_worker_freezes_what_it_loaded_after_the_imports_and_before_the_broker(settings, monkeypatch):
    import gc

    settings.CELERY_TASK_ALWAYS_EAGER = False
    calls = []
    monkeypatch.setattr(gc, "collect", lambda *args: calls.append("collect"))
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(warmup, "_connect_broker", lambda: calls.append("broker"))

    warmup.warm_up(freeze=True).join(30)
    warmup.warm_up().join(30)  # not a web worker: nothing frozen

    assert calls == ["collect", "freeze", "broker", "broker"]
