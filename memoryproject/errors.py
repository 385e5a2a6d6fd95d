"""Every failure answers JSON: {"detail": "..."} (plus "errors" for invalid input).

error_body() builds every body. What is left of the layers, outermost first, and why
each must exist:

1. JsonErrorGuardMiddleware (middleware.py), outermost: a page Django renders itself as
   HTML (a Host outside ALLOWED_HOSTS, a crash inside another middleware, DEBUG's
   technical pages) becomes JSON, keeping status and headers. /admin/, /docs and
   /static/ keep their HTML.
2. BodySizeLimitMiddleware (middleware.py): 411, 400 and 413 for a body's framing, before
   anything reads the body.
3. json_exception_handler, DRF's EXCEPTION_HANDLER: everything a DRF view raises (every
   /api/v1 endpoint, /health): DRF's own shapes, 401 always the same, 400 with
   "errors", a database outage as 503.
4. JsonErrorMiddleware (middleware.py), innermost: what escapes a view anyway (a non-DRF
   view such as the admin's, or an exception DRF's handler leaves alone): a database
   outage 503, a DRF exception as DRF would answer it (the admin login's lockout 429),
   Http404 404, PermissionDenied 403, anything else logged and 500.
5. handler400/403/404/500 in the root URLconf: what Django answers itself outside views
   (a SuspiciousOperation or a crash in a middleware) without DEBUG, JSON under /admin/
   too. handler404 is also the view of the root's catch-all route, which makes every
   unknown path a JSON 404 in DEBUG too and under /static/ (which layer 1 leaves alone);
   it is csrf_exempt, so a POST to an unknown path is a 404, not CSRF's 403.

Two spellings of the same JSON reach clients and are kept byte for byte (test_error_bodies):
DRF renders compactly ({"detail":"..."}, layer 3), Django's JsonResponse with a space
({"detail": "..."}, the others).
"""

import logging
import re

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "Database unavailable"
# Every authentication failure, whatever its cause, says only this.
AUTH_REQUIRED = "Authentication required"


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


def database_down(exc: BaseException) -> bool:
    """is_database_down, logged: the one place that decides a failure is an outage."""
    if not is_database_down(exc):
        return False
    logger.warning("database unavailable: %s", type(exc).__name__)
    return True


def error_body(detail: str, errors=None) -> dict:
    """Every error body: the detail, and for invalid input DRF's errors by field."""
    return {"detail": detail} if errors is None else {"detail": detail, "errors": errors}


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
    if database_down(exc):
        exc = ServiceUnavailable()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        return None  # JsonErrorMiddleware logs it and answers 500 JSON
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        response.data = error_body(AUTH_REQUIRED)
        response["WWW-Authenticate"] = "Bearer"
        response.status_code = status.HTTP_401_UNAUTHORIZED
    elif isinstance(exc, exceptions.ValidationError):
        errors = (
            response.data
            if isinstance(response.data, dict)
            else {"non_field_errors": response.data}
        )
        response.data = error_body(validation_detail(errors), errors)
    elif isinstance(exc, exceptions.Throttled):
        response.data = error_body("Rate limit exceeded")
    return response


# What a bare error status says, wherever Django or a middleware produces one.
STATUS_DETAILS = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found.",
    500: "Internal server error",
}


def json_error(status_code: int, detail: str | None = None) -> JsonResponse:
    """An error response outside DRF (layers 1, 2, 4 and 5 above)."""
    detail = detail or STATUS_DETAILS.get(status_code, "Error")
    return JsonResponse(error_body(detail), status=status_code)


def handler404(request, exception=None):
    return json_error(404)


def handler500(request):
    return json_error(500)


def handler400(request, exception=None):
    return json_error(400)


def handler403(request, exception=None):
    return json_error(403)
