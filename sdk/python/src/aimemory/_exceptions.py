"""The exceptions the client raises. Every one is an AIMemoryError; every error the API
answered with a status is an APIStatusError carrying that status and the API's detail."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "AIMemoryError",
    "APIConnectionError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "ConfigurationError",
    "NotFoundError",
    "RateLimitError",
    "ServiceUnavailableError",
    "ValidationError",
]


class AIMemoryError(Exception):
    """Base class of every error this package raises."""


class ConfigurationError(AIMemoryError, ValueError):
    """The client was built with a missing or invalid setting (no API key, say)."""


class APIConnectionError(AIMemoryError):
    """The service could not be reached, or the connection broke before a full answer."""


class APITimeoutError(APIConnectionError):
    """The service did not answer within the timeout."""


class APIResponseError(AIMemoryError):
    """A success answer whose body is not what the API documents (a proxy page, say)."""


class APIStatusError(AIMemoryError):
    """The API answered with an error status. `detail` is the API's own message."""

    def __init__(
        self,
        detail: str,
        *,
        status_code: int,
        body: Any = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.body = body
        self.headers = headers if headers is not None else httpx.Headers()


class ValidationError(APIStatusError):
    """400: the request was refused; `errors` holds every message by field."""

    def __init__(
        self,
        detail: str,
        *,
        status_code: int = 400,
        body: Any = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(detail, status_code=status_code, body=body, headers=headers)
        errors = body.get("errors") if isinstance(body, dict) else None
        self.errors: dict[str, Any] = errors if isinstance(errors, dict) else {}


class AuthenticationError(APIStatusError):
    """401: the API key is missing, unknown or revoked (the API does not say which)."""


class NotFoundError(APIStatusError):
    """404: no such memory for this API key's owner (another owner's looks the same)."""


class RateLimitError(APIStatusError):
    """429: the key's token bucket is empty; `retry_after` is the wait in seconds."""

    def __init__(
        self,
        detail: str,
        *,
        status_code: int = 429,
        body: Any = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(detail, status_code=status_code, body=body, headers=headers)
        self.retry_after = parse_retry_after(self.headers)


class ServiceUnavailableError(APIStatusError):
    """503: the database is down, or the LLM is not configured for chat and extract."""


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: ValidationError,
    401: AuthenticationError,
    404: NotFoundError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Retry-After in seconds (the API sends whole seconds), or None when absent or odd."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def status_error(status_code: int, body: Any, headers: httpx.Headers) -> APIStatusError:
    """The exception for an error answer: its class by status, its message the API's."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, str):
        text = body.strip()[:500] if isinstance(body, str) else ""
        detail = text or httpx.codes.get_reason_phrase(status_code) or f"HTTP {status_code}"
    error_class = STATUS_ERRORS.get(status_code, APIStatusError)
    return error_class(detail, status_code=status_code, body=body, headers=headers)
