"""Failed authentications are throttled per client address.

Every failed authentication (a bad bearer key, a failed admin login) takes a token from a
bucket of the client address's own: capacity AUTH_FAILURES_PER_MINUTE, refilled
continuously, shared by every worker and host like the per-key buckets
(apikeys/throttling.py). When a failure finds that bucket empty, this process refuses
every request from the address (429, valid key or not, so the refusal tells nothing about
keys) until one token is back. Other processes block the address on their own next
failure, which also finds the bucket empty. Below the limit nothing changes: every
failure is the same 401.

The client address is REMOTE_ADDR, or with TRUSTED_PROXY_HOPS = n > 0 the n-th address
from the right of X-Forwarded-For (the one the outermost trusted proxy saw). A loopback
address is never refused: it is a proxy on the same host (whose clients must be told apart
with TRUSTED_PROXY_HOPS, or one client's guesses would lock every client out) or a local
process, which holds the keys' host anyway.
"""

import functools
import ipaddress
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions, status

from apikeys.throttling import Bucket, take

View = Callable[..., HttpResponse]

_NAMESPACE = uuid.UUID("3f0c2a9e-5d4b-4d6e-9a51-7c2f0e8b1d3a")
_blocked: dict[str, float] = {}  # address -> monotonic time until which it is refused
_lock = threading.Lock()


class TooManyFailures(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too many failed authentication attempts from this address"
    default_code = "too_many_failed_authentications"

    def __init__(self, wait: int):
        super().__init__()
        self.wait = wait  # sent as Retry-After


def client_address(request: HttpRequest) -> str:
    """The address failures are counted for (see the module docstring)."""
    hops: int = settings.TRUSTED_PROXY_HOPS
    if hops > 0:
        header: str = request.META.get("HTTP_X_FORWARDED_FOR", "")
        forwarded = [a.strip() for a in header.split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return str(request.META.get("REMOTE_ADDR", ""))


def _exempt(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_address(request: HttpRequest) -> None:
    """Raise TooManyFailures while the request's address is refused in this process."""
    if not settings.AUTH_FAILURES_PER_MINUTE or not _blocked:
        return
    until = _blocked.get(client_address(request))
    if until is None:
        return
    remaining = until - time.monotonic()
    if remaining > 0:
        raise TooManyFailures(wait=max(1, round(remaining + 0.5)))
    with _lock:
        _blocked.pop(client_address(request), None)


def record_failure(request: HttpRequest) -> int | None:
    """Count one failed authentication for the request's address. Past the limit, refuse
    the address in this process until a token is back, and return that wait in seconds."""
    limit = settings.AUTH_FAILURES_PER_MINUTE
    address = client_address(request)
    if not limit or _exempt(address):
        return None
    decision = take(Bucket(uuid.uuid5(_NAMESPACE, f"auth-failures:{address}"), limit))
    if decision.allowed:
        return None
    with _lock:
        if len(_blocked) > 100_000:  # a flood of addresses must not grow this forever
            _blocked.clear()
        _blocked[address] = time.monotonic() + decision.retry_after
    return decision.retry_after


def record_login_failure(
    sender: object, credentials: object, request: HttpRequest | None = None, **kwargs: object
) -> None:
    """user_login_failed receiver: a failed admin login counts like a bad key."""
    if request is not None:
        record_failure(request)


def guard(view: View) -> View:
    """Wrap a login view: a refused address gets 429 before its password is checked."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        check_address(request)  # TooManyFailures: a JSON 429 (memoryproject.middleware)
        return view(request, *args, **kwargs)

    return guarded
