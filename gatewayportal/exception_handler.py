"""One place that turns domain errors into DRF's 400 shape (REST_FRAMEWORK["EXCEPTION_HANDLER"])."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from gatewayportal.exceptions import DomainError


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response(exc.errors, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    return drf_exception_handler(exc, context)
