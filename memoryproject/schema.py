"""Shared OpenAPI pieces: the error body, the rate-limit headers, the bearer scheme."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ERROR = inline_serializer("Error", {"detail": serializers.CharField()})
VALIDATION_ERROR = inline_serializer(
    "ValidationError",
    {
        "detail": serializers.CharField(help_text="The first problem, in words."),
        "errors": serializers.DictField(
            required=False,
            help_text="Every problem, per field: a list of messages (nested for nested data). "
            "Absent when the body is not JSON at all.",
        ),
    },
)


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.BearerKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key `aimsk_live_…` from `manage.py generate_api_key`.",
        }


def error_responses(*codes: int) -> dict:
    """Error responses every authenticated operation can give, plus the ones named."""
    described = {
        400: OpenApiResponse(VALIDATION_ERROR, description="Invalid input; nothing changed."),
        401: OpenApiResponse(ERROR, description="`Authentication required` (any key problem)."),
        404: OpenApiResponse(ERROR, description="No such memory for this owner."),
        413: OpenApiResponse(ERROR, description="Request body too large."),
        429: OpenApiResponse(ERROR, description="`Rate limit exceeded`; see `Retry-After`."),
        502: OpenApiResponse(ERROR, description="The LLM server answered with an error."),
        503: OpenApiResponse(ERROR, description="Database (or LLM) unavailable."),
        504: OpenApiResponse(ERROR, description="The LLM server did not answer in time."),
    }
    return {code: described[code] for code in sorted({401, 429, 503, *codes})}


_RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "The key's rate limit: bucket capacity, requests per minute.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Whole tokens left in the bucket after this request.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "Unix seconds at which the bucket will be full again.",
        "schema": {"type": "integer"},
    },
}
_RETRY_AFTER = {
    "description": "Whole seconds until one token is available (at least 1).",
    "schema": {"type": "integer"},
}


_REQUEST_ID = {
    "description": "The request's id: the incoming X-Request-ID when well-formed, else new.",
    "schema": {"type": "string"},
}


def add_rate_limit_headers(result, generator, request, public):
    """Postprocessing hook: X-Request-ID on every answer; the rate-limit headers on every
    authenticated answer (401 and 503 excepted: no token was taken)."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {})["X-Request-ID"] = _REQUEST_ID
            if not operation.get("security") or operation["security"] == [{}]:
                continue
            for code, response in operation.get("responses", {}).items():
                if code in ("401", "503"):
                    continue
                headers = response.setdefault("headers", {})
                headers.update(_RATE_LIMIT_HEADERS)
                if code == "429":
                    headers["Retry-After"] = _RETRY_AFTER
    return result


_ERROR_BODY = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {"detail": {"type": "string"}},
            "required": ["detail"],
        }
    }
}
_TRANSPORT_ERRORS = {
    "414": "The request line (URL with its query string) is longer than 8,190 bytes. "
    "Answered by the HTTP server before the API, so without rate-limit headers.",
    "431": "A header field is longer than 8,190 bytes, or there are more than 100. "
    "Answered by the HTTP server before the API.",
}


def add_transport_errors(result, generator, request, public):
    """Postprocessing hook: the statuses the HTTP server itself answers (as JSON) for
    any operation, before the request reaches the API."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, description in _TRANSPORT_ERRORS.items():
                operation["responses"].setdefault(
                    code, {"description": description, "content": _ERROR_BODY}
                )
    return result
