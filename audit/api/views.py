from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import chain, reports
from audit.api.serializers import (
    AuditEventSerializer,
    CertificatesQuerySerializer,
    CertificatesReportSerializer,
    ChangesReportQuerySerializer,
    ChangesReportSerializer,
    IntegritySerializer,
)
from audit.export import csv_lines
from audit.filtersets import AuditEventFilterSet
from audit.selectors import audit_events_for, visible_team_slugs
from gatewayportal.roles import IsPlatform
from services.models import GatewayService

FORMATS = ("json", "csv")
FORMAT_PARAMETER = OpenApiParameter(
    "format", OpenApiTypes.STR, enum=FORMATS, description="`csv` streams every filtered row as CSV (not paginated)."
)


@extend_schema(parameters=[FORMAT_PARAMETER])
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Audit events, newest first. Teams see their own; platform engineers see all."""

    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilterSet

    def get_queryset(self):
        return audit_events_for(self.request.user)

    def list(self, request, *args, **kwargs):
        if self._requested_format() == "csv":
            return self._csv_response()
        return super().list(request, *args, **kwargs)

    def _requested_format(self) -> str:
        # DRF's own URL format override is off (settings), so `format` is ours to read.
        requested = self.request.query_params.get("format", "json").lower()
        if requested not in FORMATS:
            accepted = ", ".join(FORMATS)
            raise ValidationError({"format": [f'"{requested}" is not an export format; accepted: {accepted}.']})
        return requested

    def _csv_response(self) -> StreamingHttpResponse:
        events = self.filter_queryset(self.get_queryset())
        response = StreamingHttpResponse(csv_lines(events), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-events-{timezone.now():%Y%m%dT%H%M%SZ}.csv"'
        return response


class ChangesReportView(APIView):
    """Number of audit events over a period, grouped by team, cluster, action or actor."""

    @extend_schema(parameters=[ChangesReportQuerySerializer], responses=ChangesReportSerializer)
    def get(self, request):
        query = ChangesReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        since, until, group_by = (query.validated_data.get(k) for k in ("since", "until", "group_by"))
        events = audit_events_for(request.user)
        if since:
            events = events.filter(at__gte=since)
        if until:
            events = events.filter(at__lt=until)
        results = reports.change_counts(events, group_by)
        body = {
            "since": since,
            "until": until,
            "group_by": group_by,
            "total": sum(r["count"] for r in results),
            "results": results,
        }
        return Response(ChangesReportSerializer(body).data)


class CertificatesReportView(APIView):
    """Certificates the portal manages, soonest expiry first, with the clusters they are applied on."""

    @extend_schema(parameters=[CertificatesQuerySerializer], responses=CertificatesReportSerializer)
    def get(self, request):
        query = CertificatesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        within = query.validated_data.get("expiring_within_days")
        slugs = visible_team_slugs(request.user)
        services = GatewayService.objects.all()
        if slugs is not None:
            services = services.filter(team__slug__in=slugs)
        rows = reports.managed_certificates(services, expiring_within_days=within)
        body = {"count": len(rows), "expiring_within_days": within, "results": rows}
        return Response(CertificatesReportSerializer(body).data)


class AuditIntegrityView(APIView):
    """Verifies the sealed hash chain, names the first broken link if any, and counts events not yet sealed."""

    permission_classes = [IsPlatform]

    @extend_schema(responses=IntegritySerializer)
    def get(self, request):
        return Response(IntegritySerializer(chain.verify().as_dict()).data)
