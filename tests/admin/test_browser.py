"""The admin in a real headless Chromium against the live server and a kubesim cluster.

Needs Debian's `chromium` at /usr/bin/chromium (`apt-get install -y chromium`); Playwright drives it, its own
browser downloads are never used. Reconciles run in-process after each commit (CELERY_TASK_ALWAYS_EAGER).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, expect, sync_playwright

from audit.models import AuditEvent
from clusters.models import Cluster
from services.models import GatewayService
from tests.certs import make_cert
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
GATEWAY = ("istio-system", "ingress-gateway")
HOST = "checkout.payments.example.com"
PASSWORD = "pw-root"  # tests.factories.make_user's convention


@pytest.fixture
def chromium(monkeypatch) -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: apt-get install -y chromium"
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the test makes between browser
    # steps are still plain synchronous code, so Django's async guard would be a false alarm here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # The ORM calls made while Playwright runs use connections in Playwright's context, which Django's own
        # teardown does not see; left open they would keep the test database from being dropped.
        connections.close_all()


@pytest.fixture
def page(chromium: Browser, live_server) -> Iterator[Page]:
    root = make_user("root", platform=True)
    root.is_superuser = True
    root.save()
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def log_in(page: Page) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("Gateway Portal")


def register_cluster(page: Page, api_server: str) -> None:
    page.goto("/admin/clusters/cluster/add/")
    page.fill("#id_name", "sim")
    page.fill("#id_labels", "env=sim")
    page.check("#id_requires_approval")
    page.fill("#id_api_server", api_server)
    page.fill("#id_token", "test-token")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")


def check_connection(page: Page) -> None:
    page.goto("/admin/clusters/cluster/")
    page.click("text=sim")
    page.click("#gp-check_connection")
    expect(page.locator(".messagelist")).to_contain_text(re.compile("sim: reachable", re.IGNORECASE))
    expect(page.locator(".field-health")).to_contain_text("ok")


def add_service(page: Page) -> None:
    cert = make_cert(dns_names=[HOST])
    page.goto("/admin/services/gatewayservice/add/")
    page.select_option("#id_team", "payments")
    page.fill("#id_name", "checkout")
    page.fill("#id_namespace", "payments")
    page.select_option("#id_traffic_type", "ingress")
    page.fill("#id_hosts", HOST)
    page.fill("#id_port", "443")
    page.select_option("#id_protocol", "HTTPS")
    page.select_option("#id_mode", "SIMPLE")
    page.select_option("#id_tls_kind", "tls_secret")
    page.fill("#id_tls_cert", cert.cert_pem)
    page.fill("#id_tls_key", cert.key_pem)
    page.check("#id_clusters input[value=sim]")
    page.fill("#id_ticket", "OPS-42")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")


def open_service(page: Page) -> None:
    page.goto("/admin/services/gatewayservice/")
    page.fill("#searchbar", HOST)
    page.press("#searchbar", "Enter")
    page.click("#result_list a:has-text('payments/checkout')")
    expect(page.locator("h1")).to_contain_text("View gateway service")


def server_names(kubesim) -> list[str]:
    return [server["port"]["name"] for server in kubesim.store.gateway(*GATEWAY)["spec"]["servers"]]


def test_register_cluster_approve_reconcile_and_see_it_applied(page: Page, kubesim):
    make_team("payments", domains=["payments.example.com"])
    log_in(page)

    register_cluster(page, kubesim.url)
    check_connection(page)
    assert Cluster.objects.get(name="sim").token == "test-token"
    assert "test-token" not in page.content()

    add_service(page)
    open_service(page)
    expect(page.locator(".field-cluster_states")).to_contain_text("sim: awaiting_approval")
    assert "https-checkout-payments" not in server_names(kubesim)  # gated: nothing runs before approval

    page.click("#gp-approve")
    expect(page.locator(".messagelist")).to_contain_text(re.compile("approved: payments/checkout", re.IGNORECASE))
    page.click("#gp-reconcile")
    expect(page.locator(".messagelist")).to_contain_text("Reconcile requested")
    expect(page.locator(".field-cluster_states")).to_contain_text("sim: applied")
    expect(page.locator(".field-server_block")).to_contain_text("https-checkout-payments")
    expect(page.locator(".field-certificate_expiry")).to_contain_text("in ")

    assert "https-checkout-payments" in server_names(kubesim)
    service = GatewayService.objects.get(name="checkout")
    assert service.statuses.get().state == "applied"
    approved = AuditEvent.objects.get(action="gateway_service.approved")
    assert (approved.source, approved.actor) == ("admin", "root")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-gateway-service.png"), full_page=True)
