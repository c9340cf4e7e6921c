from __future__ import annotations

import hashlib

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, throttling, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gatewayportal.roles import IsPlatform
from ticketing import actions
from ticketing.api.serializers import (
    RotateSecretSerializer,
    SecretShownOnceSerializer,
    TicketingSourceCreatedSerializer,
    TicketingSourceSerializer,
    WebhookAnswerSerializer,
)
from ticketing.selectors import ticketing_source_list


class TicketingSourceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Ticketing systems allowed to decide and file requests through the webhook (platform engineers only)."""

    permission_classes = [IsPlatform]
    serializer_class = TicketingSourceSerializer
    lookup_field = "name"
    filterset_fields = ["kind", "team__slug", "enabled"]

    def get_queryset(self):
        return ticketing_source_list()

    def perform_create(self, serializer):
        serializer.instance, self._created_secret = actions.ticketing_source_create(data=serializer.validated_data)

    @extend_schema(responses={201: TicketingSourceCreatedSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        response = super().create(request, *args, **kwargs)
        # The only time the secret is ever returned.
        response.data["secret"] = self._created_secret
        return response

    def perform_update(self, serializer):
        serializer.instance = actions.ticketing_source_update(
            source=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance):
        actions.ticketing_source_delete(source=instance)

    @extend_schema(request=RotateSecretSerializer, responses=SecretShownOnceSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, name: str | None = None) -> Response:
        source = self.get_object()
        serializer = RotateSecretSerializer(data=request.data, context={"source": source})
        serializer.is_valid(raise_exception=True)
        secret = actions.ticketing_source_rotate_secret(source=source, **serializer.validated_data)
        answer = {"secret": secret, "previous_secret_valid_until": source.previous_secret_expires_at}
        return Response(SecretShownOnceSerializer(answer).data)


class PerSourceThrottle(throttling.SimpleRateThrottle):
    """Authenticated deliveries per source: a flood at one source cannot starve the others."""

    scope = "ticketing_webhook"

    def get_rate(self) -> str:
        return settings.TICKETING_RATE_LIMIT

    def get_cache_key(self, request, view) -> str:
        # Hashed: the name comes from the URL and may hold anything a cache key should not.
        ident = hashlib.sha256(view.kwargs["source"].encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class UnauthenticatedClientThrottle(throttling.SimpleRateThrottle):
    """Refusals before authentication per client address: they never spend a source's budget."""

    scope = "ticketing_webhook_unauthenticated"

    def get_rate(self) -> str:
        return settings.TICKETING_UNAUTHENTICATED_RATE_LIMIT

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class TicketingWebhookView(APIView):
    """Inbound deliveries of a ticketing source, authenticated by their signature or bearer token.

    Refusals: 404 unknown or disabled source (indistinguishable on purpose), 413 body over the limit,
    401 missing or wrong signature/token, 400 stale timestamp or malformed body, 429 over the per-source rate
    (authenticated deliveries) or over the client's rate of unauthenticated requests.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    # Throttled inside `webhook_receive`, after the signature check (see there).
    throttle_classes: list = []
    renderer_classes = [JSONRenderer]
    # The raw body is what is signed; DRF must not parse it.
    parser_classes: list = []

    @extend_schema(
        request={"application/json": {"type": "object"}},
        responses={
            200: WebhookAnswerSerializer,
            400: OpenApiResponse(description="Stale timestamp or malformed body"),
            401: OpenApiResponse(description="Missing or wrong signature or token"),
            404: OpenApiResponse(description="Unknown or disabled source"),
            413: OpenApiResponse(description="Body over 1 MiB"),
            429: OpenApiResponse(description="Too many deliveries for this source, or unauthenticated ones from you"),
        },
    )
    def post(self, request: Request, source: str) -> Response:
        answer = actions.webhook_receive(
            source_name=source,
            headers=request.headers,
            content_length=_content_length(request),
            read_body=lambda: request.body,
            source_allowed=lambda: PerSourceThrottle().allow_request(request, self),
            client_allowed=lambda: UnauthenticatedClientThrottle().allow_request(request, self),
        )
        return Response(answer.body, status=answer.status)


def _content_length(request: Request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
