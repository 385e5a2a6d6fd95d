"""One place that turns every failure into a JSON error body."""

import logging
import re

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

from apikeys.authentication import AUTH_REQUIRED

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "Database unavailable"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = DATABASE_UNAVAILABLE
    default_code = "service_unavailable"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large"
    default_code = "payload_too_large"


# SQLSTATE classes that mean the server cannot serve us now (see PostgreSQL's appendix A):
# 08 connection exception, 53 insufficient resources (too many connections), 57P0x the
# server shutting down or starting up, 57014 a statement timeout or cancel.
# 40001 and 40P01: a serialization failure or deadlock, resolved by trying again.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "57014", "40001", "40P01")
# SQLite: the file is busy or unreadable, as opposed to a statement it refuses.
_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o")


def is_database_down(exc: BaseException) -> bool:
    """True when the database cannot answer now (server gone, refused, reset, shutting
    down, out of connections, a statement timeout): a 503 the client may retry. False for
    a statement the database refuses (too many parameters, a bad query): that is our bug,
    answered 500 and logged, never disguised as an outage."""
    if isinstance(exc, InterfaceError):
        return True  # the connection is closed
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    if type(cause).__module__.startswith("sqlite3"):
        return any(marker in str(cause).lower() for marker in _SQLITE_UNAVAILABLE)
    # No SQLSTATE: the client library failed before the server answered (connection
    # refused, lost or timed out).
    return True


def _first_error(errors, path: tuple[str, ...] = ()) -> tuple[tuple[str, ...], str] | None:
    """The first message in DRF's error structure, with the field path that leads to it."""
    if isinstance(errors, dict):  # by field, or by position for a list field's items
        children = (((*path, str(key)), value) for key, value in errors.items())
    elif isinstance(errors, list):  # messages, or a list serializer's dict per item
        children = (
            ((*path, str(index)) if isinstance(item, dict) else path, item)
            for index, item in enumerate(errors)
        )
    else:
        return (path, str(errors)) if errors else None
    for child_path, value in children:
        found = _first_error(value, child_path)
        if found is not None:
            return found
    return None


def validation_detail(errors) -> str:
    """`field.path: message` for the first problem. A message that already names its field
    (the seed's `Invalid ingestion_mode. …`) and one about the whole body stay bare."""
    found = _first_error(errors)
    if found is None:
        return "Invalid input"
    path, message = found
    field = ".".join(step for step in path if step != api_settings.NON_FIELD_ERRORS_KEY)
    if not field or re.search(rf"(?<![\w.]){re.escape(field)}(?!\w)", message):
        return message
    return f"{field}: {message}"


def json_exception_handler(exc, context):
    """DRF exception handler: DRF's default first, then our shapes."""
    if is_database_down(exc):
        logger.warning("database unavailable: %s", type(exc).__name__)
        exc = ServiceUnavailable()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        return None  # JsonErrorMiddleware logs it and answers 500 JSON
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        response.data = {"detail": AUTH_REQUIRED}
        response["WWW-Authenticate"] = "Bearer"
        response.status_code = status.HTTP_401_UNAUTHORIZED
    elif isinstance(exc, exceptions.ValidationError):
        errors = (
            response.data
            if isinstance(response.data, dict)
            else {"non_field_errors": response.data}
        )
        response.data = {"detail": validation_detail(errors), "errors": errors}
    elif isinstance(exc, exceptions.Throttled):
        response.data = {"detail": "Rate limit exceeded"}
    return response


# What a bare error status says, wherever Django or a middleware produces one.
STATUS_DETAILS = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found.",
    500: "Internal server error",
}


def json_error(status_code: int, detail: str | None = None) -> JsonResponse:
    detail = detail or STATUS_DETAILS.get(status_code, "Error")
    return JsonResponse({"detail": detail}, status=status_code)


def handler404(request, exception=None):
    return json_error(404)


def handler500(request):
    return json_error(500)


def handler400(request, exception=None):
    return json_error(400)


def handler403(request, exception=None):
    return json_error(403)
