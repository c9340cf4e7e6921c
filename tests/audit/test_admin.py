from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.test import Client
from django.utils import timezone

from audit.actions import audit_record
from audit.models import AuditEvent
from tests.factories import make_user


@pytest.fixture
def superuser_client():
    user = make_user("root", platform=True)
    user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    return client, user


@pytest.mark.django_db
def test_nobody_may_add_change_or_delete_audit_events(superuser_client, rf):
    client, user = superuser_client
    event = audit_record(action="team.updated", object_type="team", object_repr="payments", team="payments")
    request = rf.get("/")
    request.user = user
    model_admin = site._registry[AuditEvent]

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)
    changelist = client.get("/admin/audit/auditevent/?q=payments")
    assert changelist.status_code == 200
    assert "/admin/audit/auditevent/report/" in changelist.content.decode()
    assert client.get(f"/admin/audit/auditevent/{event.pk}/change/").status_code == 200
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db
def test_admin_report_page_shows_the_weekly_chart(superuser_client, bulk_events):
    client, _ = superuser_client
    bulk_events(4, start=timezone.now() - timedelta(days=10), team="payments")

    page = client.get("/admin/audit/auditevent/report/").content.decode()
    bad = client.get("/admin/audit/auditevent/report/?since=someday").content.decode()

    assert "<svg" in page and "payments" in page
    assert "4 events" in page
    assert "Dates must be YYYY-MM-DD" in bad
