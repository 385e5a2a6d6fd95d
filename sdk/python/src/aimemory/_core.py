"""What the sync and async clients share: settings, request building, the retry rules,
error mapping and the server-sent-events decoder. Nothing here does I/O; the two clients
each run the same small loop around it (send, ask the policy, sleep, send again)."""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic_core import to_jsonable_python

from aimemory._exceptions import (
    AIMemoryError,
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    status_error,
)
from aimemory._models import ChatResponse

__version__ = "1.1.0"

T = TypeVar("T")

DEFAULT_BASE_URL = "http://localhost:10000"
API_PREFIX = "/api/v1"
# Context retrieval runs before every LLM turn: a few seconds is already a long wait.
DEFAULT_TIMEOUT = 5.0
# Chat and extraction wait for an LLM (the service itself waits up to 30 s per LLM try),
# and a GDPR export streams every row of a user.
LONG_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 2
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
# A Retry-After longer than this is not waited out: the RateLimitError is raised at once.
MAX_RETRY_AFTER = 30.0
RETRY_STATUSES = frozenset({429, 503})
# Seconds, or an httpx.Timeout for separate connect, read, write and pool limits.
Timeout = float | httpx.Timeout
USER_AGENT = f"aimemory-python/{__version__}"


@dataclass(frozen=True)
class Settings:
    api_key: str
    base_url: str
    timeout: Timeout
    long_timeout: Timeout
    max_retries: int


def resolve_settings(
    *,
    api_key: str | None,
    base_url: str | None,
    timeout: Timeout | None,
    long_timeout: Timeout | None,
    max_retries: int,
) -> Settings:
    """The client's settings: arguments first, then AIMEMORY_API_KEY / AIMEMORY_BASE_URL."""
    api_key = api_key if api_key is not None else os.environ.get("AIMEMORY_API_KEY")
    if not api_key or not api_key.strip():
        raise ConfigurationError(
            "No API key: pass api_key=... or set the AIMEMORY_API_KEY environment variable."
        )
    base_url = base_url or os.environ.get("AIMEMORY_BASE_URL") or DEFAULT_BASE_URL
    base_url = base_url.rstrip("/")
    # The service root is expected; forgive the common mistake of adding the API prefix.
    base_url = base_url.removesuffix(API_PREFIX)
    if not base_url.startswith(("http://", "https://")):
        raise ConfigurationError(f"base_url must start with http:// or https://, got {base_url!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigurationError("max_retries must be an integer, 0 or more.")
    for name, value in (("timeout", timeout), ("long_timeout", long_timeout)):
        if isinstance(value, int | float) and value <= 0:
            raise ConfigurationError(f"{name} must be a positive number of seconds.")
    return Settings(
        api_key=api_key.strip(),
        base_url=base_url,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        long_timeout=LONG_TIMEOUT if long_timeout is None else long_timeout,
        max_retries=max_retries,
    )


def default_headers(settings: Settings) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {settings.api_key}",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }


@dataclass
class Operation(Generic[T]):
    """One API call: what to send, how to read a successful answer, and how it may be
    retried. `resendable` says whether sending it twice is harmless (reads, PATCH, writes
    carrying an Idempotency-Key); only those are retried after a failure that may have
    happened once the server had the request. Deletes are not: their second try would
    report a 404 (or zero rows) for what the first one did."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    body: Any = None
    long: bool = False
    timeout: Timeout | None = None
    resendable: bool = True
    idempotency_key: str | None = None
    stream: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def write_operation(
    path: str,
    body: Any,
    parse: Callable[[httpx.Response], T],
    *,
    idempotency_key: str | None,
    timeout: Timeout | None,
) -> Operation[T]:
    """A POST that the API deduplicates by Idempotency-Key: the key is made once here, so
    every retry of this call carries the same one."""
    key = idempotency_key or str(uuid.uuid4())
    return Operation(
        "POST", path, parse, body=body, timeout=timeout, idempotency_key=key, resendable=True
    )


def encode_body(body: Any) -> bytes:
    # to_jsonable_python turns datetimes, UUIDs and models into JSON values.
    return json.dumps(
        to_jsonable_python(body), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def query_params(params: Mapping[str, Any] | None) -> dict[str, str | int] | None:
    if not params:
        return None
    return {
        name: str(value).lower() if isinstance(value, bool) else value
        for name, value in params.items()
        if value is not None
    }


def build_request(
    http: httpx.Client | httpx.AsyncClient, settings: Settings, op: Operation[Any]
) -> httpx.Request:
    """The httpx request for op; built once per call, and sent again as is on a retry."""
    headers = default_headers(settings)
    content = None
    if op.body is not None:
        content = encode_body(op.body)
        headers["Content-Type"] = "application/json"
    if op.idempotency_key is not None:
        headers["Idempotency-Key"] = op.idempotency_key
    if op.stream:
        headers["Accept"] = "text/event-stream"
    headers.update(op.headers)
    timeout = op.timeout
    if timeout is None:
        timeout = settings.long_timeout if op.long else settings.timeout
    return http.build_request(
        op.method,
        settings.base_url + op.path,
        params=query_params(op.params),
        content=content,
        headers=headers,
        timeout=timeout,
    )


def backoff(attempt: int, *, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number attempt + 1: exponential from INITIAL_BACKOFF, capped
    at MAX_BACKOFF, with jitter so that many clients do not retry in step."""
    base = min(MAX_BACKOFF, INITIAL_BACKOFF * 2.0**attempt)
    return base * (0.5 + 0.5 * rng())


def retry_delay_for_status(
    response: httpx.Response, attempt: int, settings: Settings, op: Operation[Any]
) -> float | None:
    """How long to wait before sending again after this answer, or None to stop here (a
    success, a status that is never retried, no retries left, or a Retry-After too long).
    A 409 for a write with an Idempotency-Key means this call's earlier try is still
    running on the server (it timed out here): waiting and sending again replays its
    answer, where raising would invite the caller to store everything twice."""
    retryable = response.status_code in RETRY_STATUSES or (
        response.status_code == 409 and op.idempotency_key is not None
    )
    if not retryable or attempt >= settings.max_retries:
        return None
    retry_after = response.headers.get("retry-after")
    if retry_after is not None:
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = -1.0
        if seconds > MAX_RETRY_AFTER:
            return None
        if seconds >= 0:
            # The bucket refills continuously; a little jitter spreads the retries out.
            return seconds + random.uniform(0, 0.1)
    return backoff(attempt)


def retry_delay_for_error(
    error: httpx.TransportError, op: Operation[Any], attempt: int, settings: Settings
) -> float:
    """The wait before sending again after a transport failure; raises the client's own
    error when that failure is final."""
    # A request that never reached the server can always be sent again; one that may
    # have been processed only when sending it twice is harmless.
    never_sent = isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    if attempt < settings.max_retries and (never_sent or op.resendable):
        return backoff(attempt)
    raise transport_error(error) from error


def transport_error(error: httpx.TransportError) -> AIMemoryError:
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(f"The request timed out: {error!r}")
    return APIConnectionError(f"Could not reach the memory service: {error!r}")


def error_for(response: httpx.Response) -> APIStatusError:
    """The exception for an error answer whose body has been read."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return status_error(response.status_code, body, response.headers)


def parse_success(response: httpx.Response, op: Operation[T]) -> T:
    """op's result from a read answer, or the exception for an error status."""
    if response.status_code >= 400:
        raise error_for(response)
    try:
        return op.parse(response)
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise APIResponseError(
            f"Unexpected answer from {op.method} {op.path} ({response.status_code}): {error}"
        ) from error


# --- server-sent events (chat with stream=True) --------------------------------------


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str


class SSEDecoder:
    """Turns text/event-stream lines into events. An event is dispatched on its blank
    line; an event cut off before it (the connection broke) is never dispatched."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            if self._event is None and not self._data:
                return None
            event = ServerSentEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data = None, []
            return event
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


class ChatStreamState:
    """Reads the chat stream's events: `delta` gives text, `done` the full answer, and
    `error` raises. A stream that ends without `done` or `error` was cut off."""

    def __init__(self) -> None:
        self.decoder = SSEDecoder()
        self.final: ChatResponse | None = None

    def feed(self, line: str) -> str | ChatResponse | None:
        event = self.decoder.feed(line)
        if event is None or self.final is not None:
            return None
        if event.event == "delta":
            content = _event_json(event).get("content")
            return content if isinstance(content, str) and content else None
        if event.event == "done":
            self.final = ChatResponse.model_validate_json(event.data)
            return self.final
        if event.event == "error":
            data = _event_json(event)
            detail = data.get("detail")
            status = data.get("status")
            # The LLM broke off after the answer had started: a bad gateway unless the
            # service says otherwise.
            raise status_error(
                status if isinstance(status, int) and status >= 400 else 502,
                {"detail": detail if isinstance(detail, str) else "The chat stream failed."},
                httpx.Headers(),
            )
        return None

    def finish(self) -> None:
        if self.final is None:
            raise APIConnectionError("The chat stream ended before the answer was complete.")


def _event_json(event: ServerSentEvent) -> dict[str, Any]:
    try:
        data = json.loads(event.data)
    except ValueError:
        raise APIConnectionError(f"Malformed {event.event!r} event in the chat stream.") from None
    if not isinstance(data, dict):
        raise APIConnectionError(f"Malformed {event.event!r} event in the chat stream.")
    return data
