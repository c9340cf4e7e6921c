from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

api_v1 = [
    path("", include("services.api.urls")),
    path("", include("clusters.api.urls")),
    path("", include("audit.api.urls")),
    path("", include("ticketing.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("gatewayportal.health")),
    path("", include("gatewayportal.metrics")),
]
