"""Project-wide middleware: request log with request ids, body size limit, JSON crashes."""

import logging
import re
import time
import uuid

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework.exceptions import APIException

from memoryproject.errors import DATABASE_UNAVAILABLE, STATUS_DETAILS, database_down, json_error

logger = logging.getLogger("memoryproject.request")
error_logger = logging.getLogger("memoryproject.errors")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestLogMiddleware:
    """One structured log line per request; never keys, bodies or memory content."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        api_key = getattr(request, "api_key", None)
        logger.info(
            "request",
            extra={
                "request_id": request.request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "owner_id": api_key.owner_id if api_key else None,
                "key_id": str(api_key.id) if api_key else None,
            },
        )
        return response


class BodySizeLimitMiddleware:
    """Refuse oversized bodies before anything reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Django reads a body only as far as Content-Length says: a chunked body would be
        # read as empty and refused for the wrong reason ("user_id: required").
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return json_error(411, "Content-Length required: chunked bodies are not accepted")
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return json_error(400, "Invalid Content-Length header")
        if length > settings.MAX_REQUEST_BODY_BYTES:
            return json_error(
                413, f"Request body too large (limit {settings.MAX_REQUEST_BODY_BYTES} bytes)"
            )
        return self.get_response(request)


class JsonErrorMiddleware:
    """Exceptions that escape a view answer JSON, in DEBUG too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if database_down(exception):
            return json_error(503, DATABASE_UNAVAILABLE)
        if isinstance(exception, APIException):
            # A DRF exception raised outside DRF (the admin login's lockout): as DRF answers.
            response = json_error(exception.status_code, str(exception.detail))
            wait = getattr(exception, "wait", None)
            if wait:
                response["Retry-After"] = str(int(wait))
            return response
        if isinstance(exception, Http404):
            return json_error(404)
        if isinstance(exception, PermissionDenied):
            return json_error(403)
        error_logger.error(
            "unhandled exception: %s",
            type(exception).__name__,
            exc_info=exception,
            extra={"request_id": getattr(request, "request_id", None), "path": request.path},
        )
        return json_error(500)


class JsonErrorGuardMiddleware:
    """Outermost: an error page Django renders itself as HTML (a Host header outside
    ALLOWED_HOSTS, a crash inside another middleware, in DEBUG the technical pages) becomes
    JSON, keeping status and headers. The admin and the docs keep their HTML."""

    HTML_PATHS = ("/admin/", "/docs", "/static/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if (
            response.status_code < 400
            or content_type.startswith("application/json")
            or request.path.startswith(self.HTML_PATHS)
        ):
            return response
        status = response.status_code
        replacement = json_error(status, STATUS_DETAILS.get(status) or response.reason_phrase)
        for name, value in response.items():
            if name.lower() not in ("content-type", "content-length"):
                replacement[name] = value
        return replacement
