from rest_framework.routers import DefaultRouter

from clusters.api.views import ClusterViewSet

router = DefaultRouter()
router.register("clusters", ClusterViewSet, basename="cluster")

urlpatterns = router.urls
