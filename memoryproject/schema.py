"""Shared OpenAPI pieces: the error body, the rate-limit headers, the bearer scheme, and
the hooks that finish the schema.

Names, for clients generated from /openapi.json:

- Every operation sets its `operation_id` in `extend_schema`, never derived from the path
  (moving a URL must not rename a generated client's method). The id is
  `<resource>_<action>[_<qualifier>]` in snake case. `<resource>` is `memories` for
  everything under `/api/v1/memory` (extraction included), `chat`, `gdpr`, or `service`
  for `/` and `/health`. `<action>` is a verb or a verb-like noun for what the operation
  does: `create`, `list`, `get`, `update`, `delete`, `soft_delete`, `stats`, `context`,
  `extract`, `export`, `status`, `health`, `upsert`, `history`. A variant of an action adds
  a qualifier after it: `memories_create_batch`, `memories_delete_batch`.
- COMPONENT_SPLIT_REQUEST names a request component `<name>Request`, after the serializer
  name without `Serializer`. A serializer whose name already ends in `Request` sets
  `@extend_schema_serializer(component_name=...)` without it, so that the component is
  `ChatRequest`, not `ChatRequestRequest`.

memoryproject/tests/test_schema.py holds these rules.
"""

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
        409: OpenApiResponse(
            ERROR,
            description="`A request with this Idempotency-Key is still in progress`.",
        ),
        413: OpenApiResponse(ERROR, description="Request body too large."),
        422: OpenApiResponse(
            ERROR,
            description="`Idempotency-Key was used with a different request` (another method, "
            "path or body).",
        ),
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
    "411": "The body was sent chunked (Transfer-Encoding: chunked): send Content-Length.",
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


def add_servers(result, generator, request, public):
    """Postprocessing hook: the service's own root URL as the one server (as the request for
    the schema reached it), or the development address when no request is at hand."""
    if request is not None:
        url, description = request.build_absolute_uri("/").rstrip("/"), "This service"
    else:
        url, description = "http://localhost:10000", "Development server (scripts/serve.sh)"
    result["servers"] = [{"url": url, "description": description}]
    return result


def _refs(schema) -> list[str]:
    """Component names referenced anywhere inside a schema fragment."""
    found, pending = [], [schema]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                found.append(ref.rsplit("/", 1)[1])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def forbid_unknown_request_fields(result, generator, request, public):
    """Postprocessing hook: request objects (and the objects nested in them) take no
    properties but their own, as the API answers 400 to an unknown field."""
    components = result.get("components", {}).get("schemas", {})
    pending = [
        name
        for path_item in result.get("paths", {}).values()
        for operation in path_item.values()
        if isinstance(operation, dict)
        for name in _refs(operation.get("requestBody", {}))
    ]
    seen = set()
    while pending:
        name = pending.pop()
        if name in seen or name not in components:
            continue
        seen.add(name)
        component = components[name]
        if component.get("type") == "object" and "properties" in component:
            component.setdefault("additionalProperties", False)
        pending.extend(_refs(component))
    return result
