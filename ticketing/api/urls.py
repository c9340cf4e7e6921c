from django.urls import path
from rest_framework.routers import DefaultRouter

from ticketing.api.views import TicketingSourceViewSet, TicketingWebhookView

router = DefaultRouter()
router.register("ticketing-sources", TicketingSourceViewSet, basename="ticketing-source")

urlpatterns = [
    path("webhooks/ticketing/<str:source>/", TicketingWebhookView.as_view(), name="ticketing-webhook"),
    *router.urls,
]
