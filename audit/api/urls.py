from django.urls import path
from rest_framework.routers import SimpleRouter

from audit.api import views

router = SimpleRouter()
router.register("audit-events", views.AuditEventViewSet, basename="auditevent")

urlpatterns = [
    *router.urls,
    path("reports/changes/", views.ChangesReportView.as_view(), name="report-changes"),
    path("reports/certificates/", views.CertificatesReportView.as_view(), name="report-certificates"),
    path("reports/audit-integrity/", views.AuditIntegrityView.as_view(), name="report-audit-integrity"),
]
