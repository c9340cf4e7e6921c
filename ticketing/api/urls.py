from django.urls import path
from rest_framework.routers import DefaultRouter

from ticketing.api.views import TicketingSourceViewSet, TicketingWebhookView

router = DefaultRouter()
# No `.json` suffix routes: not part of the API (API.md), and custom actions took no `format` argument (500s).
router.include_format_suffixes = False
router.register("ticketing-sources", TicketingSourceViewSet, basename="ticketing-source")

urlpatterns = [
    path("webhooks/ticketing/<str:source>/", TicketingWebhookView.as_view(), name="ticketing-webhook"),
    *router.urls,
]
