from rest_framework.routers import DefaultRouter

from clusters.api.views import ClusterViewSet

router = DefaultRouter()
# No `.json` suffix routes: not part of the API (API.md), and custom actions took no `format` argument (500s).
router.include_format_suffixes = False
router.register("clusters", ClusterViewSet, basename="cluster")

urlpatterns = router.urls
