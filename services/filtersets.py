import django_filters

from services.models import GatewayService


class GatewayServiceFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")
    namespace = django_filters.CharFilter()
    cluster = django_filters.CharFilter(field_name="statuses__cluster__name", distinct=True)
    protocol = django_filters.CharFilter(lookup_expr="iexact")
    traffic_type = django_filters.CharFilter(lookup_expr="iexact")
    port = django_filters.NumberFilter()
    host = django_filters.CharFilter(method="filter_host", help_text="Services exposing exactly this host.")

    class Meta:
        model = GatewayService
        fields = ["team", "namespace", "cluster", "protocol", "traffic_type", "port", "host"]

    def filter_host(self, queryset, name, value):
        return queryset.filter(hosts_index__contains=f"|{value.strip().lower()}|")
