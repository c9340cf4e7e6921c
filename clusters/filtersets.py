import django_filters

from clusters.models import Cluster


class ClusterFilterSet(django_filters.FilterSet):
    class Meta:
        model = Cluster
        fields = ["name", "enabled", "requires_approval"]
