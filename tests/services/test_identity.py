"""Single sign-on, bearer JWTs and pipeline identities against a real OpenID provider (tests/oidc)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from audit.models import AuditEvent
from gatewayportal.roles import is_platform
from services.models import ExternalIdentity
from tests.factories import api_client, http_service, make_cluster, make_team, make_user
from tests.idp import CI_AUDIENCE, PLATFORM_GROUP

pytestmark = pytest.mark.django_db

TEAMS = "/api/v1/teams/"
SERVICES = "/api/v1/gateway-services/"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def teams():
    payments = make_team("payments")
    payments.idp_groups = ["payments-devs"]
    payments.save()
    search = make_team("search")
    search.idp_groups = ["search-devs"]
    search.save()
    return payments, search


def trust_pipeline(team, issuer: str, **claims: str) -> None:
    team.trusted_identities = [{"issuer": issuer, "audience": CI_AUDIENCE, "claims": claims}]
    team.save()


def test_person_bearer_token_maps_to_user_and_the_teams_of_their_groups(sso, teams):
    response = bearer(sso.access_token("alice")).get(TEAMS)
    assert response.status_code == 200, response.json()
    assert [t["slug"] for t in response.json()["results"]] == ["payments"]
    identity = ExternalIdentity.objects.get(issuer=sso.issuer, subject="alice")
    assert identity.user.username == "alice@example.com"
    assert identity.email == "alice@example.com"
    assert not is_platform(identity.user)


def test_platform_group_gives_the_platform_role_and_audit_shows_the_idp_identity(sso, teams):
    client = bearer(sso.access_token("bob"))
    response = client.post(TEAMS, {"slug": "web", "name": "Web", "namespaces": ["web"], "allowed_domains": []})
    assert response.status_code == 201, response.json()
    user = User.objects.get(username="bob@example.com")
    assert user.is_staff and user.groups.filter(name="platform").exists()
    event = AuditEvent.objects.get(action="team.created")
    assert event.actor == "bob@example.com"
    assert event.data["identity"] == {"issuer": sso.issuer, "subject": "bob", "email": "bob@example.com"}


def test_group_removed_at_the_idp_loses_the_team_at_the_next_call(sso, teams):
    assert [t["slug"] for t in bearer(sso.access_token("carol")).get(TEAMS).json()["results"]] == [
        "payments",
        "search",
    ]
    with sso.groups("carol", ["search-devs"]):
        token = sso.access_token("carol")
    response = bearer(token).get(TEAMS)
    assert [t["slug"] for t in response.json()["results"]] == ["search"]
    assert list(User.objects.get(username="carol@example.com").teams.values_list("slug", flat=True)) == ["search"]
    removal = AuditEvent.objects.filter(action="team.members_synced", team="payments").latest("id")
    assert removal.changes == {"members": {"removed": ["carol@example.com"]}}
    assert removal.actor == "carol@example.com"
    assert removal.data["groups"] == ["search-devs"]
    assert removal.data["identity"]["subject"] == "carol"


def test_platform_role_is_taken_away_with_the_group(sso, teams):
    bearer(sso.access_token("bob")).get(TEAMS)
    assert User.objects.get(username="bob@example.com").is_staff
    with sso.groups("bob", []):
        token = sso.access_token("bob")
    response = bearer(token).post(TEAMS, {"slug": "web", "name": "Web", "namespaces": ["web"], "allowed_domains": []})
    assert response.status_code == 403
    assert not User.objects.get(username="bob@example.com").is_staff
    assert AuditEvent.objects.filter(action="user.platform_role_synced").latest("id").changes == {
        "platform": [True, False]
    }


def test_token_authentication_keeps_working_beside_bearer(sso, teams):
    local = make_user("local")
    teams[0].members.add(local)
    assert api_client(local).get(TEAMS).status_code == 200


def test_pipeline_token_acts_as_its_team_and_is_audited_as_ci(sso, teams):
    payments, search = teams
    make_cluster("prod-eu-1")
    trust_pipeline(payments, sso.issuer, repository="acme/payments-*", ref="refs/heads/main")
    client = bearer(sso.pipeline_token("ci-payments-main"))
    assert [t["slug"] for t in client.get(TEAMS).json()["results"]] == ["payments"]
    response = client.post(SERVICES, http_service(), format="json")
    assert response.status_code == 201, response.json()
    event = AuditEvent.objects.get(action="gateway_service.created")
    assert event.actor == f"ci:{sso.issuer}:ci-payments-main"
    assert event.data["identity"] == {"issuer": sso.issuer, "subject": "ci-payments-main"}


def test_pipeline_token_whose_ref_does_not_match_is_refused(sso, teams):
    payments, _ = teams
    trust_pipeline(payments, sso.issuer, repository="acme/payments-gateways", ref="refs/heads/main")
    response = bearer(sso.pipeline_token("ci-payments-branch")).get(TEAMS)
    assert response.status_code == 401
    assert "match no trusted identity" in response.json()["detail"]
    assert not ExternalIdentity.objects.filter(subject="ci-payments-branch").exists()


def test_pipeline_audience_must_match_exactly(sso, teams):
    payments, _ = teams
    payments.trusted_identities = [
        {"issuer": sso.issuer, "audience": "urn:gatewayportal:other", "claims": {"repository": "acme/*"}}
    ]
    payments.save()
    response = bearer(sso.pipeline_token("ci-payments-main")).get(TEAMS)
    assert response.status_code == 401


def test_sso_login_through_the_provider_creates_the_user_with_pkce(sso, teams):
    client = Client(SERVER_NAME="127.0.0.1")
    start = client.get("/oidc/authenticate/?next=/api/v1/teams/")
    assert start.status_code == 302
    authorize = start["Location"]
    assert authorize.startswith(f"{sso.issuer}/auth?")
    assert "code_challenge_method=S256" in authorize and "code_challenge=" in authorize
    back = sso.sign_in(requests.Session(), authorize, "carol", stop_at="http://127.0.0.1/oidc/callback/")
    parts = urlsplit(back)
    done = client.get(f"{parts.path}?{parts.query}")
    assert done.status_code == 302 and done["Location"] == "/api/v1/teams/", done
    user = User.objects.get(username="carol@example.com")
    assert sorted(user.teams.values_list("slug", flat=True)) == ["payments", "search"]
    assert not user.has_usable_password()
    # The session works for the browsable API, and writes carry the IdP identity.
    assert [t["slug"] for t in client.get(TEAMS, HTTP_ACCEPT="application/json").json()["results"]] == [
        "payments",
        "search",
    ]
    assert client.session["gp_identity"]["subject"] == "carol"


def test_sso_never_signs_in_as_an_existing_local_account(sso, teams):
    root = make_user("alice@example.com", platform=True)
    client = Client(SERVER_NAME="127.0.0.1")
    authorize = client.get("/oidc/authenticate/")["Location"]
    back = urlsplit(sso.sign_in(requests.Session(), authorize, "alice", stop_at="http://127.0.0.1/oidc/callback/"))
    client.get(f"{back.path}?{back.query}")
    user = ExternalIdentity.objects.get(subject="alice").user
    assert user.pk != root.pk and user.username == "alice@example.com-2"
    assert not user.is_staff


def test_local_login_false_refuses_passwords_except_superusers(settings, teams):
    settings.LOCAL_LOGIN = False
    make_user("dev")
    root = make_user("root", platform=True)
    root.is_superuser = True
    root.save()
    assert not _password_login("dev", "pw-dev")
    assert _password_login("root", "pw-root")
    settings.LOCAL_LOGIN = True
    assert _password_login("dev", "pw-dev")


def _password_login(username: str, password: str) -> bool:
    # The lockout backend (django-axes) reads the request, as a login page passes it.
    request = RequestFactory().post("/admin/login/")
    return Client().login(request=request, username=username, password=password)


def test_without_an_issuer_sso_is_off_and_make_run_needs_no_idp(settings, oidc_provider, teams):
    settings.OIDC_ISSUER = ""
    assert Client().get("/oidc/authenticate/").status_code == 404
    # A person's token from an IdP the portal was not told about is refused.
    response = bearer(oidc_provider.access_token("alice")).get(TEAMS)
    assert response.status_code == 401


def test_only_platform_writes_idp_groups_and_trusted_identities(sso, teams):
    payments, _ = teams
    member = make_user("member")
    payments.members.add(member)
    response = api_client(member).patch(f"{TEAMS}payments/", {"idp_groups": ["everyone"]}, format="json")
    assert response.status_code == 403
    root = api_client(make_user("root", platform=True))
    entry = {"issuer": "https://token.actions.githubusercontent.com", "audience": "gp", "claims": {"ref": "x"}}
    response = root.patch(f"{TEAMS}payments/", {"trusted_identities": [entry]}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["trusted_identities"] == [entry]
    for bad, field in (
        ({**entry, "issuer": "http://evil.example.com"}, "issuer"),
        ({**entry, "claims": {}}, "claims"),
        ({**entry, "extra": 1}, "extra"),
    ):
        response = root.patch(f"{TEAMS}payments/", {"trusted_identities": [bad]}, format="json")
        assert response.status_code == 400
        assert field in str(response.json()["trusted_identities"])


def test_platform_group_name_is_configurable(sso, settings, teams):
    settings.OIDC_PLATFORM_GROUPS = ["payments-devs"]
    bearer(sso.access_token("alice")).get(TEAMS)
    assert is_platform(User.objects.get(username="alice@example.com"))
    assert PLATFORM_GROUP not in settings.OIDC_PLATFORM_GROUPS


def test_admin_shows_and_saves_idp_groups_and_trusted_identities(client, teams):
    payments, _ = teams
    root = make_user("root", platform=True)
    root.is_superuser = True
    root.save()
    client.force_login(root)
    entry = {"issuer": "https://gitlab.com", "audience": "https://gateways.example.com", "claims": {"ref": "main"}}
    form = {
        "slug": "payments",
        "name": "Payments",
        "namespaces": "payments",
        "allowed_domains": "payments.example.com",
        "idp_groups": "payments-devs\npayments-leads",
        "trusted_identities": json.dumps([entry]),
        "services-TOTAL_FORMS": "0",
        "services-INITIAL_FORMS": "0",
    }
    response = client.post(f"/admin/services/team/{payments.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    payments.refresh_from_db()
    assert payments.idp_groups == ["payments-devs", "payments-leads"]
    assert payments.trusted_identities == [entry]
    assert AuditEvent.objects.get(action="team.updated").changes["trusted_identities"] == [[], [entry]]
    page = client.get(f"/admin/services/team/{payments.pk}/change/").content.decode()
    assert "payments-leads" in page and "gitlab.com" in page
    assert "payments-devs" in client.get("/admin/services/team/").content.decode()
    form["trusted_identities"] = json.dumps([{**entry, "issuer": "ftp://x"}])
    response = client.post(f"/admin/services/team/{payments.pk}/change/", form)
    assert response.status_code == 200
    assert "trusted_identities" in response.context["adminform"].form.errors
