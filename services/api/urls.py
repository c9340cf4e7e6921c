from rest_framework.routers import DefaultRouter

from services.api.views import GatewayServiceViewSet, TeamViewSet

router = DefaultRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("gateway-services", GatewayServiceViewSet, basename="gateway-service")

urlpatterns = router.urls
