"""Kubernetes `Status` failures, shaped exactly like the apiserver's (k8s.io/apimachinery/pkg/api/errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    """What a request is about, as the apiserver names it in messages: `gateways.networking.istio.io "x"`."""

    resource: str
    group: str = ""
    name: str = ""
    kind: str = ""

    @property
    def qualified(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        details["kind"] = self.resource
        return details


@dataclass
class ApiError(Exception):
    """A failure the handler turns into a `Status` response."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        # A webhook denial carries no reason (the apiserver omits an empty one).
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def not_found(target: Target) -> ApiError:
    return ApiError(404, "NotFound", f'{target.qualified} "{target.name}" not found', target.details())


def already_exists(target: Target) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{target.qualified} "{target.name}" already exists', target.details())


def conflict(target: Target) -> ApiError:
    message = (
        f'Operation cannot be fulfilled on {target.qualified} "{target.name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, target.details())


def forbidden(target: Target, user: str, verb: str, namespace: str) -> ApiError:
    subject = f'{target.qualified} "{target.name}"' if target.name else target.qualified
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{target.resource}" '
        f'in API group "{target.group}" {scope}'
    )
    return ApiError(403, "Forbidden", message, target.details())


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format: "{content_type}"')


@dataclass(frozen=True)
class Cause:
    """One `details.causes` entry; `reason` is a field.ErrorType such as FieldValueRequired."""

    reason: str
    field: str
    message: str

    def render(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def invalid(target: Target, causes: list[Cause]) -> ApiError:
    rendered = [cause.render() for cause in causes]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details = {
        "name": target.name,
        "group": target.group,
        "kind": target.kind,
        "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes],
    }
    if not target.group:
        del details["group"]
    return ApiError(422, "Invalid", f'{target.qualified_kind} "{target.name}" is invalid: {summary}', details)


def rejected_patch(message: str) -> ApiError:
    """A JSON patch that cannot be applied (e.g. a failed `test`), as the apiserver's generic 422 answer."""
    details = {"causes": [{"reason": "UnexpectedServerResponse", "message": message}]}
    return ApiError(422, "Invalid", "the server rejected our request due to an error in our request", details)


def server_error(code: int) -> ApiError:
    if code == 503:
        return ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request")
    return ApiError(code, "InternalError", "Internal error occurred: injected by kubesim")
