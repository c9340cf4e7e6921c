import logging
import re
import uuid

from gatewayportal.context import acting_as

logger = logging.getLogger("django.request")

# Accept a caller's id when it is a sane token; anything else is replaced, never echoed.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIDMiddleware:
    header = "X-Request-ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get(self.header, "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        request.request_id = request_id
        source = "admin" if request.path.startswith("/admin/") else "api"
        with acting_as(name="anonymous", source=source, request_id=request_id):
            response = self.get_response(request)
        response[self.header] = request_id
        return response


class BodySizeLimitMiddleware:
    """Refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE with 413 before anything parses them."""

    exempt_prefix = "/api/v1/webhooks/"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.conf import settings
        from django.http import JsonResponse

        if request.path.startswith(self.exempt_prefix):
            # The ticketing webhook enforces the same limit itself so that refusals are audited.
            return self.get_response(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if limit and length > limit:
            return JsonResponse({"detail": f"Request body is {length} bytes; the limit is {limit} bytes."}, status=413)
        return self.get_response(request)


class ActorMiddleware:
    """After session authentication: the logged-in user (admin, browsable API) is the actor."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from gatewayportal.context import set_actor_name

        if request.user.is_authenticated:
            # Set at SSO login (services.identity.views): the IdP identity behind a session.
            set_actor_name(request.user.get_username(), identity=request.session.get("gp_identity"))
        return self.get_response(request)


class APIErrorMiddleware:
    """An unexpected error under /api/ answers a generic JSON 500, whatever DEBUG says.

    Django's debug page shows the request (its body, with any private key in it) and the settings; an API client
    gets `{"detail": ..., "request_id": ...}` and the traceback goes to the log only. Last in MIDDLEWARE, so it
    sees every exception a view raises.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not request.path.startswith("/api/"):
            return None
        from django.http import JsonResponse

        request_id = getattr(request, "request_id", "")
        logger.error("Internal Server Error: %s", request.path, exc_info=exception)
        return JsonResponse(
            {"detail": "Internal server error; it is logged under this request id.", "request_id": request_id},
            status=500,
        )
