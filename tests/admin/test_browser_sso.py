"""Single sign-on in a real headless Chromium: the admin's login page, the provider's own login and consent pages,
back to the portal with the teams the user's IdP groups grant."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from services.models import Team
from tests.admin.test_browser import chromium  # noqa: F401  (the fixture)
from tests.factories import make_team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def teams():
    for slug, groups in (("payments", ["payments-devs"]), ("search", ["search-devs"]), ("web", [])):
        team = make_team(slug)
        team.idp_groups = groups
        team.save()


def sign_in_at_the_provider(page: Page, login: str) -> None:
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.click("button:has-text('Continue')")  # the provider's consent page


def new_page(browser: Browser, live_server) -> Page:
    page = browser.new_context(base_url=live_server.url).new_page()
    page.set_default_timeout(20_000)
    return page


def test_sign_in_through_the_provider_shows_the_teams_the_groups_grant(chromium, live_server, sso, teams):  # noqa: F811
    # A platform engineer, from the admin's login page.
    page = new_page(chromium, live_server)
    page.goto("/admin/login/")
    page.click("#gp-sso")
    assert page.url.startswith(sso.issuer)
    sign_in_at_the_provider(page, "bob")
    expect(page.locator("#site-name")).to_contain_text("Gateway Portal")
    expect(page.locator("#user-tools")).to_contain_text("bob@example.com")
    page.goto("/admin/services/team/")
    expect(page.locator("#result_list tbody tr")).to_have_count(Team.objects.count())
    expect(page.locator("#result_list")).to_contain_text("payments-devs")

    # A developer in two groups, in the browsable API: her two teams, not the third.
    page = new_page(chromium, live_server)
    page.goto("/oidc/authenticate/?next=/api/v1/teams/")
    sign_in_at_the_provider(page, "carol")
    expect(page.locator("body")).to_contain_text('"slug": "payments"')
    expect(page.locator("body")).to_contain_text('"slug": "search"')
    expect(page.locator("body")).not_to_contain_text('"slug": "web"')
    # Not a platform engineer: the admin turns her away.
    page.goto("/admin/")
    expect(page.locator("body")).to_contain_text("not authorized")
