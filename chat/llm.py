"""The one place that talks to the OpenAI-compatible chat server.

Failures map to statuses a client can act on: not configured → 503, upstream error → 502
(with the upstream status), timeout → 504. Retries are bounded and only for failures
worth retrying (connection refused, 429, 5xx); a timeout is never retried, so a slow
server costs one timeout, not several. OPENAI_TIMEOUT_SECONDS bounds each connect and each
read; OPENAI_DEADLINE_SECONDS bounds the whole call, retries and streaming included, even
when the server stalls and sends nothing.
"""

import functools
import json
import logging
import time
from dataclasses import dataclass, field

import openai
from django.conf import settings
from rest_framework import exceptions, status

from memoryproject.deadline import DeadlineExceeded, IterateBefore, call_before, remaining

logger = logging.getLogger(__name__)

RETRY_BACKOFF_SECONDS = 0.25


class LLMNotConfigured(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "LLM features are not configured on this server: set OPENAI_API_KEY "
        "(and optionally OPENAI_BASE_URL and OPENAI_MODEL)."
    )
    default_code = "llm_not_configured"


class LLMUpstreamError(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The LLM server answered with an error."
    default_code = "llm_upstream_error"


class LLMTimeout(exceptions.APIException):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    default_detail = "The LLM server did not answer in time."
    default_code = "llm_timeout"


@dataclass
class Completion:
    text: str
    model: str
    usage: dict = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def _cached_client(api_key: str, base_url: str | None) -> openai.OpenAI:
    # One client (one connection pool) per process and server: building one costs about
    # 20 ms, and each kept its own connection. The client is thread-safe.
    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0)


def _client() -> openai.OpenAI:
    if not settings.OPENAI_API_KEY:
        raise LLMNotConfigured()
    return _cached_client(settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL)


def _deadline_passed() -> LLMTimeout:
    logger.warning("llm call passed its deadline of %ss", settings.OPENAI_DEADLINE_SECONDS)
    return LLMTimeout(
        f"The LLM server did not finish within {settings.OPENAI_DEADLINE_SECONDS:g} s."
    )


def _short_reason(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if isinstance(message, str):
            return message[:200]
    return (error.message or "")[:200]


def _upstream_status(error: openai.APIStatusError) -> LLMUpstreamError:
    return LLMUpstreamError(f"The LLM server answered {error.status_code}: {_short_reason(error)}")


def _create(client: openai.OpenAI, deadline: float, **request):
    attempts = 1 + max(0, settings.OPENAI_MAX_RETRIES)
    for attempt in range(attempts):
        timeout = min(settings.OPENAI_TIMEOUT_SECONDS, remaining(deadline))
        try:
            return call_before(deadline, client.chat.completions.create, **request, timeout=timeout)
        except DeadlineExceeded:
            raise _deadline_passed() from None
        except openai.APITimeoutError:
            if timeout < settings.OPENAI_TIMEOUT_SECONDS:  # the read waited what was left
                raise _deadline_passed() from None
            logger.warning("llm request timed out after %ss", settings.OPENAI_TIMEOUT_SECONDS)
            raise LLMTimeout(
                f"The LLM server did not answer within {settings.OPENAI_TIMEOUT_SECONDS:g} s."
            ) from None
        except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as e:
            retryable = e
            logger.warning("llm request failed (%s), attempt %d", type(e).__name__, attempt + 1)
            backoff = RETRY_BACKOFF_SECONDS * 2**attempt
            if attempt + 1 < attempts and backoff < remaining(deadline):
                time.sleep(backoff)
            else:
                break
    if isinstance(retryable, openai.APIStatusError):
        raise _upstream_status(retryable)
    raise LLMUpstreamError("The LLM server could not be reached.")


def _open(request: dict, optional: dict, refused: str, deadline: float):
    """_create with the optional parameters, and again without them when the server
    refuses them (a 400); any other failure as LLMUpstreamError."""
    client = _client()
    try:
        try:
            return _create(client, deadline, **request, **optional)
        except openai.BadRequestError:
            if not optional:
                raise
            logger.info("llm server refused %s; retrying without", refused)
            return _create(client, deadline, **request)
    except openai.APIStatusError as error:
        raise _upstream_status(error) from None
    except (openai.APIError, ValueError) as error:  # e.g. a body that is not JSON
        logger.warning("llm response unusable: %s", type(error).__name__)
        raise LLMUpstreamError("The LLM server sent a response the client cannot read.") from None


def complete(messages: list[dict], *, json_schema: dict | None = None) -> Completion:
    """One chat completion. With json_schema, ask for structured output, falling back to
    a plain request for servers that refuse response_format."""
    request = {"model": settings.OPENAI_MODEL, "messages": messages}
    structured = {}
    if json_schema is not None:
        schema = {"name": "result", "schema": json_schema}
        structured = {"response_format": {"type": "json_schema", "json_schema": schema}}
    deadline = time.monotonic() + settings.OPENAI_DEADLINE_SECONDS
    response = _open(request, structured, refused="response_format", deadline=deadline)
    try:
        text = response.choices[0].message.content or ""
    except (AttributeError, IndexError, TypeError):
        raise LLMUpstreamError("The LLM server sent a response without a message.") from None
    if not isinstance(text, str):
        raise LLMUpstreamError("The LLM server sent a message that is not text.")
    return Completion(
        text=text,
        model=str(getattr(response, "model", None) or request["model"]),
        usage=_usage(response),
    )


class StreamedCompletion:
    """Iterates over the text deltas of a streamed completion; text, model and usage are
    complete once iteration ends. Failures while streaming raise LLMUpstreamError or
    LLMTimeout from the iteration."""

    def __init__(self, stream, model: str, deadline: float):
        self._stream = stream
        self._deadline = deadline
        self.model = model
        self.text = ""
        self.usage: dict = {}
        self._chunks: IterateBefore | None = None

    def close(self) -> None:
        """Stop reading: the client went away, maybe before the first chunk."""
        if self._chunks is None:
            self._stream.close()
        else:
            self._chunks.close()

    def __iter__(self):
        # The chunks are read on a helper thread, so the deadline holds even while the
        # server sends nothing at all.
        chunks = self._chunks = IterateBefore(self._stream, self._deadline)
        try:
            for chunk in chunks:
                self.model = getattr(chunk, "model", None) or self.model
                if getattr(chunk, "usage", None) is not None:
                    self.usage = _usage(chunk)
                for choice in getattr(chunk, "choices", None) or []:
                    delta = getattr(getattr(choice, "delta", None), "content", None)
                    if isinstance(delta, str) and delta:
                        self.text += delta
                        yield delta
        except DeadlineExceeded:
            raise _deadline_passed() from None
        except openai.APITimeoutError:
            raise LLMTimeout("The LLM server stopped sending before the answer ended.") from None
        except (openai.APIError, ValueError) as error:
            logger.warning("llm stream failed: %s", type(error).__name__)
            raise LLMUpstreamError("The LLM stream broke off before the answer ended.") from None
        finally:
            chunks.close()  # a client that went away must not keep the model writing


def stream(messages: list[dict]) -> StreamedCompletion:
    """A streamed chat completion. Opening it raises the same errors as complete(), so a
    failure before the first delta still becomes a plain 502, 503 or 504."""
    request = {"model": settings.OPENAI_MODEL, "messages": messages, "stream": True}
    usage = {"stream_options": {"include_usage": True}}
    deadline = time.monotonic() + settings.OPENAI_DEADLINE_SECONDS
    response = _open(request, usage, refused="stream_options", deadline=deadline)
    return StreamedCompletion(response, settings.OPENAI_MODEL, deadline)


def _usage(response) -> dict:
    dump = getattr(getattr(response, "usage", None), "model_dump", None)
    usage = dump() if dump is not None else {}
    return {k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)}


# The longest model reply parsed as JSON; longer replies count as "not JSON".
MAX_JSON_REPLY_CHARS = 1_000_000


def _strip_fence(text: str) -> str:
    """text without a surrounding Markdown code fence (```json ... ```). String
    operations only: a regular expression over model output could backtrack."""
    if text[:3] == "```":
        newline = text.find("\n")
        opening = text[3:newline] if newline >= 0 else text[3:]
        if opening.strip().lower() in ("", "json"):
            text = text[newline + 1 :] if newline >= 0 else ""
    text = text.rstrip()
    if text.endswith("```"):
        text = text[:-3]
    return text.strip()


def _loads(text: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # nesting deeper than the decoder allows
        return None


def parse_json_reply(text: str):
    """The JSON value in a model reply: plain, fenced, or the outermost {...} in prose.
    None when there is none."""
    if len(text) > MAX_JSON_REPLY_CHARS:
        return None
    candidate = _strip_fence(text.strip())
    parsed = _loads(candidate)
    if parsed is not None or candidate == "null":
        return parsed
    start, end = candidate.find("{"), candidate.rfind("}")
    if 0 <= start < end:
        return _loads(candidate[start : end + 1])
    return None
