from rest_framework.routers import DefaultRouter

from services.api.views import GatewayServiceViewSet, TeamViewSet

router = DefaultRouter()
# No `.json` suffix routes: not part of the API (API.md), and custom actions took no `format` argument (500s).
router.include_format_suffixes = False
router.register("teams", TeamViewSet, basename="team")
router.register("gateway-services", GatewayServiceViewSet, basename="gateway-service")

urlpatterns = router.urls
