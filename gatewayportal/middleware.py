import re
import uuid

from gatewayportal.context import acting_as

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
