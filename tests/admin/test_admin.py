"""The Django admin through the test client: every write goes through the same actions as the API."""

from __future__ import annotations

import pytest
from django.contrib import admin

from audit.actions import audit_record
from audit.models import AuditEvent
from clusters.models import Cluster
from gatewayportal.context import acting_as
from services import actions
from services.models import GatewayService, GatewayServiceRevision, Team
from tests.certs import make_cert
from tests.factories import api_client, http_service, make_cluster, make_team, make_user

pytestmark = pytest.mark.django_db
SERVICES = "/admin/services/gatewayservice/"
TEAMS = "/admin/services/team/"
CLUSTERS = "/admin/clusters/cluster/"


@pytest.fixture
def root():
    user = make_user("root", platform=True)
    user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def browser(client, root):
    client.force_login(root)
    return client


@pytest.fixture
def team():
    return make_team("payments")


@pytest.fixture
def gated():
    return make_cluster("prod-eu-1", requires_approval=True)


def create_service(team: Team, **overrides) -> GatewayService:
    with acting_as(name="alice", source="api"):
        service, _ = actions.gateway_service_create(team=team, data=http_service(**overrides))
    return service


def add_form(**overrides) -> dict:
    form = {
        "team": "payments",
        "name": "checkout",
        "namespace": "payments",
        "traffic_type": "ingress",
        "hosts": "checkout.payments.example.com",
        "port": "80",
        "protocol": "HTTP",
        "mode": "",
        "tls_kind": "",
        "clusters": ["prod-eu-1"],
        "cluster_selector": "",
        "ticket": "",
    }
    form.update(overrides)
    return form


# --- Audit ---------------------------------------------------------------------------------------------------------


def test_audit_admin_is_read_only_even_for_a_superuser(browser, root):
    with acting_as(name="root", source="cli"):
        event = audit_record(action="team.created", object_type="team", object_id="x")
    for model in (AuditEvent,):
        model_admin = admin.site._registry[model]
        request = type("Request", (), {"user": root})()
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request, event)
        assert not model_admin.has_delete_permission(request, event)
    assert browser.get("/admin/audit/auditevent/add/").status_code == 403
    assert browser.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    page = browser.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    browser.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "tampered"})
    event.refresh_from_db()
    assert event.action == "team.created"
    listing = browser.get("/admin/audit/auditevent/")
    assert b"delete_selected" not in listing.content


# --- Gateway services ----------------------------------------------------------------------------------------------


def test_service_list_shows_hosts_and_state_badges_and_filters(browser, team, gated):
    service = create_service(team)
    page = browser.get(SERVICES)
    assert page.status_code == 200
    html = page.content.decode()
    assert "checkout.payments.example.com" in html
    assert "prod-eu-1: awaiting_approval" in html
    assert "gp-badge" in html
    assert browser.get(SERVICES, {"q": "checkout.payments"}).context["cl"].result_count == 1
    assert browser.get(SERVICES, {"q": "nothing.example.org"}).context["cl"].result_count == 0
    assert browser.get(SERVICES, {"statuses__state": "applied"}).context["cl"].result_count == 0
    assert browser.get(SERVICES, {"current_revision__approval": "pending"}).context["cl"].result_count == 1
    assert browser.get(SERVICES, {"statuses__cluster__id__exact": gated.pk}).context["cl"].result_count == 1
    assert service.pk


def test_service_detail_shows_rendered_block_revisions_statuses_and_certificate(browser, team):
    make_cluster("prod-eu-1")
    team.allowed_domains = ["payments.example.com"]
    team.save()
    cert = make_cert(dns_names=["checkout.payments.example.com"])
    service = create_service(
        team,
        port=443,
        protocol="HTTPS",
        mode="SIMPLE",
        tls_options={"tls_secret": {"cert": cert.cert_pem, "key": cert.key_pem}},
    )
    page = browser.get(f"{SERVICES}{service.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "https-checkout-payments" in html  # port name in the rendered server block
    assert "credentialName" in html
    assert "sha256_fingerprint" in html and "(in " in html  # certificate summary and expiry
    assert "status per cluster" in html.lower() and "revisions" in html.lower()
    assert "PRIVATE KEY" not in html
    assert 'name="_save"' not in html  # read-only


def test_admin_approve_writes_the_same_audit_event_as_the_api(browser, root, team, gated):
    via_admin = create_service(team, name="a", hosts=["a.payments.example.com"])
    via_api = create_service(team, name="b", hosts=["b.payments.example.com"])

    response = browser.post(SERVICES, {"action": "approve", "_selected_action": [str(via_admin.pk)]})
    assert response.status_code == 302
    api = api_client(root)
    assert api.post(f"/api/v1/gateway-services/{via_api.pk}/approve/", {}, format="json").status_code == 200

    admin_event = AuditEvent.objects.get(action="gateway_service.approved", object_id=str(via_admin.pk))
    api_event = AuditEvent.objects.get(action="gateway_service.approved", object_id=str(via_api.pk))
    assert (admin_event.source, admin_event.actor) == ("admin", "root")
    assert api_event.source == "api"
    assert admin_event.object_type == api_event.object_type == "gateway_service"
    assert admin_event.changes == api_event.changes == {"approval": ["pending", "approved"]}
    assert admin_event.data["revision"] == api_event.data["revision"] == 1
    via_admin.refresh_from_db()
    assert via_admin.approved_revision_id == via_admin.current_revision_id


def test_approving_twice_is_refused_with_a_message(browser, team, gated):
    service = create_service(team)
    browser.post(SERVICES, {"action": "approve", "_selected_action": [str(service.pk)]})
    page = browser.post(SERVICES, {"action": "approve", "_selected_action": [str(service.pk)]}, follow=True)
    assert "only pending revisions can be decided" in page.content.decode()
    assert AuditEvent.objects.filter(action="gateway_service.approved").count() == 1


def test_detail_page_reject_button(browser, team, gated):
    service = create_service(team)
    assert b"gp-approve" in browser.get(f"{SERVICES}{service.pk}/change/").content
    response = browser.post(f"{SERVICES}{service.pk}/reject/")
    assert response.status_code == 302
    service.current_revision.refresh_from_db()
    assert service.current_revision.approval == "rejected"
    assert AuditEvent.objects.get(action="gateway_service.rejected").source == "admin"
    assert browser.get(f"{SERVICES}{service.pk}/reject/").status_code == 405


def test_reconcile_action_enqueues_after_commit(browser, team, django_capture_on_commit_callbacks, monkeypatch):
    cluster = make_cluster("prod-eu-1")
    service = create_service(team)
    queued = []
    monkeypatch.setattr("clusters.enqueue._enqueue", lambda ids, traffic: queued.append((ids, traffic)))
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(SERVICES, {"action": "reconcile", "_selected_action": [str(service.pk)]})
    assert queued == [([cluster.pk], "ingress")]


def test_service_added_through_the_admin_is_created_by_the_action(browser, team):
    make_cluster("prod-eu-1")
    response = browser.post(f"{SERVICES}add/", add_form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    service = GatewayService.objects.get()
    assert service.current_revision.spec["hosts"] == ["checkout.payments.example.com"]
    event = AuditEvent.objects.get(action="gateway_service.created")
    assert (event.source, event.actor) == ("admin", "root")


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"hosts": "not a host!"}, "hosts", "not a host!"),
        ({"clusters": [], "cluster_selector": ""}, None, "clusters"),
        ({"name": "Bad_Name"}, "name", "DNS-1123"),
        ({"namespace": "search"}, "namespace", "payments"),
        ({"cluster_selector": "no-equals-sign"}, "cluster_selector", "key=value"),
        (
            {
                "protocol": "HTTPS",
                "mode": "SIMPLE",
                "port": "443",
                "tls_kind": "tls_secret",
                "tls_cert": "junk",
                "tls_key": "junk",
            },
            "tls_cert",
            "PEM",
        ),
    ],
)
def test_invalid_service_through_the_admin_is_refused_with_the_field_error(browser, team, overrides, field, message):
    make_cluster("prod-eu-1")
    response = browser.post(f"{SERVICES}add/", add_form(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    key = field or "__all__"
    assert key in errors, errors
    assert message in " ".join(errors[key])
    assert GatewayService.objects.count() == 0
    assert GatewayServiceRevision.objects.count() == 0
    assert not AuditEvent.objects.filter(object_type="gateway_service").exists()


def test_private_key_is_never_rendered_back_after_an_error(browser, team):
    make_cluster("prod-eu-1")
    key = make_cert(dns_names=["other.example.org"]).key_pem
    response = browser.post(
        f"{SERVICES}add/",
        add_form(protocol="HTTPS", mode="SIMPLE", port="443", tls_kind="tls_secret", tls_cert="junk", tls_key=key),
    )
    assert response.status_code == 200
    assert "PRIVATE KEY" not in response.content.decode()


# --- Teams ---------------------------------------------------------------------------------------------------------


def test_team_change_goes_through_team_save_and_is_audited(browser, team):
    alice = make_user("alice")
    form = {
        "slug": "payments",
        "name": "Payments",
        "namespaces": "payments\npayments-canary",
        "allowed_domains": "payments.example.com",
        "members": [alice.pk],
        "services-TOTAL_FORMS": "0",
        "services-INITIAL_FORMS": "0",
    }
    response = browser.post(f"{TEAMS}{team.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    team.refresh_from_db()
    assert team.namespaces == ["payments", "payments-canary"]
    assert list(team.members.all()) == [alice]
    event = AuditEvent.objects.get(action="team.updated")
    assert event.source == "admin"
    assert event.changes["namespaces"] == [["payments"], ["payments", "payments-canary"]]


def test_team_limits_are_edited_in_the_admin_and_audited(browser, team):
    form = {
        "slug": "payments",
        "name": "Payments",
        "namespaces": "payments",
        "allowed_domains": "payments.example.com",
        "allowed_clusters": "dev\nstaging",
        "allowed_cluster_selector": "stage=dev",
        "granted_secrets": "wildcard-cert",
        "max_services": "5",
        "gateway_budget_share": "0.1",
        "services-TOTAL_FORMS": "0",
        "services-INITIAL_FORMS": "0",
    }
    response = browser.post(f"{TEAMS}{team.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    team.refresh_from_db()
    assert (team.allowed_clusters, team.allowed_cluster_selector) == (["dev", "staging"], {"stage": "dev"})
    assert (team.granted_secrets, team.max_services, team.gateway_budget_share) == (["wildcard-cert"], 5, 0.1)
    assert AuditEvent.objects.get(action="team.updated").changes["max_services"][1] == 5

    refused = browser.post(f"{TEAMS}{team.pk}/change/", {**form, "gateway_budget_share": "1.5"})
    assert "gateway_budget_share" in refused.context["adminform"].form.errors


def test_team_with_a_bad_domain_is_refused(browser):
    response = browser.post(
        f"{TEAMS}add/", {"slug": "search", "name": "Search", "namespaces": "search", "allowed_domains": "*.x.com"}
    )
    assert response.status_code == 200
    assert "allowed_domains" in response.context["adminform"].form.errors
    assert not Team.objects.exists()


def test_team_page_lists_its_services(browser, team):
    make_cluster("prod-eu-1")
    create_service(team)
    page = browser.get(f"{TEAMS}{team.pk}/change/").content.decode()
    assert "checkout" in page and "gateway services" in page.lower()


# --- Clusters ------------------------------------------------------------------------------------------------------


def test_cluster_credentials_never_appear_in_the_change_form(browser):
    with acting_as(name="root", source="admin"):
        from clusters.actions import cluster_create

        cluster = cluster_create(name="prod-eu-1", api_server="https://10.0.0.1:6443", token="s3cr3t-t0ken-value")
    html = browser.get(f"{CLUSTERS}{cluster.pk}/change/").content.decode()
    assert "s3cr3t-t0ken-value" not in html
    assert Cluster.objects.get().token == "s3cr3t-t0ken-value"


def cluster_form(**overrides) -> dict:
    form = {
        "name": "prod-eu-1",
        "labels": "env=prod\nregion=eu",
        "enabled": "on",
        "ingress_gateway": "istio-system/ingress-gateway",
        "egress_gateway": "istio-system/egress-gateway",
        "ingress_secret_namespace": "",
        "egress_secret_namespace": "",
        "namespace_scoped_hosts": "on",
        "api_server": "https://10.0.0.1:6443",
        "ca_cert": "",
        "token": "s3cr3t-t0ken-value",
        "kubeconfig": "",
        "gateway_states-TOTAL_FORMS": "0",
        "gateway_states-INITIAL_FORMS": "0",
    }
    form.update(overrides)
    return form


def test_cluster_registered_through_the_admin_is_audited_without_its_token(browser):
    response = browser.post(f"{CLUSTERS}add/", cluster_form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    cluster = Cluster.objects.get()
    assert cluster.token == "s3cr3t-t0ken-value"
    assert cluster.labels == {"env": "prod", "region": "eu"}
    event = AuditEvent.objects.get(action="cluster.created")
    assert event.source == "admin" and event.actor == "root"
    assert "s3cr3t-t0ken-value" not in str(event.changes)


def test_cluster_edit_with_empty_token_keeps_it_and_a_refused_form_does_not_echo_it(browser):
    browser.post(f"{CLUSTERS}add/", cluster_form())
    cluster = Cluster.objects.get()
    response = browser.post(f"{CLUSTERS}{cluster.pk}/change/", cluster_form(token="", requires_approval="on"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    cluster.refresh_from_db()
    assert cluster.requires_approval and cluster.token == "s3cr3t-t0ken-value"

    response = browser.post(
        f"{CLUSTERS}{cluster.pk}/change/", cluster_form(token="n3w-t0ken", ingress_gateway="no-slash")
    )
    assert response.status_code == 200
    assert "ingress_gateway" in response.context["adminform"].form.errors
    html = response.content.decode()
    assert "n3w-t0ken" not in html and "s3cr3t-t0ken-value" not in html
    cluster.refresh_from_db()
    assert cluster.token == "s3cr3t-t0ken-value"


def test_cluster_disable_action_is_audited(browser):
    cluster = make_cluster("prod-eu-1")
    browser.post(CLUSTERS, {"action": "disable", "_selected_action": [str(cluster.pk)]})
    cluster.refresh_from_db()
    assert not cluster.enabled
    event = AuditEvent.objects.get(action="cluster.updated")
    assert event.source == "admin" and event.changes["enabled"] == [True, False]


def test_check_connection_button_records_health(browser, kubesim):
    cluster = make_cluster("sim", api_server=kubesim.url, token="test-token")
    response = browser.post(f"{CLUSTERS}{cluster.pk}/check_connection/", follow=True)
    assert response.status_code == 200
    cluster.refresh_from_db()
    assert cluster.reachable is True and cluster.istio_api_version
    html = response.content.decode()
    assert "ok · " in html  # the health badge
    assert "managed" in html and "unmanaged" in html  # the live gateway counts


def test_service_deleted_in_the_admin_goes_through_the_delete_action(browser, team):
    make_cluster("prod-eu-1")
    service = create_service(team)
    response = browser.post(f"{SERVICES}{service.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    service.refresh_from_db()
    assert service.deleting_at is not None  # removal from the cluster first; the row goes when it is done
    assert service.statuses.get().state == "removing"
    event = AuditEvent.objects.get(action="gateway_service.deleted")
    assert (event.source, event.actor) == ("admin", "root")


def test_revisions_and_statuses_are_browsable_read_only_and_never_show_the_key(client):
    from django.contrib.auth import get_user_model

    from services.models import GatewayServiceStatus

    root = get_user_model().objects.create_superuser("auditor-root", password="pw")
    client.force_login(root)
    team = Team.objects.create(slug="pay", name="Pay", namespaces=["pay"], allowed_domains=["pay.example.com"])
    cluster = Cluster.objects.create(name="c1")
    service = GatewayService.objects.create(name="web", team=team, namespace="pay", traffic_type="ingress")
    revision = GatewayServiceRevision.objects.create(
        service=service, number=1, spec={"hosts": ["web.pay.example.com"]}, tls_material={"key": "SECRET-KEY-PEM"}
    )
    GatewayServiceStatus.objects.create(service=service, cluster=cluster, traffic_type="ingress", state="applied")

    for url in ("/admin/services/gatewayservicerevision/", "/admin/services/gatewayservicestatus/"):
        assert client.get(url).status_code == 200
    detail = client.get(f"/admin/services/gatewayservicerevision/{revision.pk}/change/")
    assert detail.status_code == 200
    assert "SECRET-KEY-PEM" not in detail.content.decode()
    assert (
        client.post(f"/admin/services/gatewayservicerevision/{revision.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert client.get("/admin/services/gatewayservicerevision/add/").status_code == 403


def test_a_cluster_form_that_passed_but_whose_page_is_refused_writes_nothing(browser):
    """The form's clean() runs the action; if the rest of the page is refused, that write is rolled back."""
    form = cluster_form()
    del form["gateway_states-TOTAL_FORMS"], form["gateway_states-INITIAL_FORMS"]  # a broken inline formset
    response = browser.post(f"{CLUSTERS}add/", form)
    assert response.status_code == 200
    assert not Cluster.objects.exists()
    assert not AuditEvent.objects.filter(action="cluster.created").exists()
