"""Bounds on requests that wait on the LLM (chat, extract), so that a few slow answers
cannot hold every thread of the service.

- Per owner: at most LLM_MAX_CONCURRENT_PER_OWNER at once, across every process and host.
  Past it: 429 "Too many concurrent LLM requests for this key's owner".
- Per process: at most half the process's threads (WEB_THREADS), so short requests
  always find a thread. Past it: 503, retry shortly.

An owner's slot is taken before the first LLM call and given back when the request ends:
on completion, on error, and when a streaming client goes away. Every slot also expires by
itself (slot_ttl_seconds), so a worker killed mid-request cannot keep one forever. Slots
live in Redis (a sorted set per owner scored by expiry, changed by one Lua script on Redis
time) when REDIS_URL is set, otherwise in a database table (rows with an expiry, counted
under a per-owner lock). As for rate limits, a Redis failure falls back to the database.
"""

import hashlib
import logging
import threading
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework import exceptions, status

from chat.models import LongRequestSlot

logger = logging.getLogger(__name__)

TOO_MANY = "Too many concurrent LLM requests for this key's owner"


class TooManyLongRequests(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = TOO_MANY
    default_code = "too_many_concurrent_llm_requests"
    wait = 1  # DRF sends it as Retry-After


class ServerBusy(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The server is busy with other LLM requests; retry shortly."
    default_code = "llm_capacity"
    wait = 1


def slot_ttl_seconds() -> float:
    """How long a slot lives at most: chat with extract makes two LLM calls."""
    return 2 * settings.OPENAI_DEADLINE_SECONDS + 20


# --- per process ------------------------------------------------------------------------

_process_lock = threading.Lock()
_process_held = [0]


def long_requests_per_process() -> int:
    return max(1, settings.WEB_THREADS // 2)


def _take_process_slot() -> bool:
    with _process_lock:
        if _process_held[0] >= long_requests_per_process():
            return False
        _process_held[0] += 1
        return True


def _give_process_slot() -> None:
    with _process_lock:
        _process_held[0] -= 1


# --- per owner: Redis -------------------------------------------------------------------

# KEYS[1] the owner's set; ARGV: limit, slot id, lifetime in ms.
_LUA_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

# After a Redis failure, this process uses the database for this long (as rate limits do).
REDIS_RETRY_SECONDS = 5.0

_redis_lock = threading.Lock()
_redis_state: dict = {"url": None, "client": None, "script": None, "down_until": float("-inf")}


def _redis():
    url = settings.REDIS_URL
    with _redis_lock:
        if _redis_state["url"] != url:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
            _redis_state.update(
                url=url,
                client=client,
                script=client.register_script(_LUA_ACQUIRE),
                down_until=float("-inf"),
            )
        return _redis_state["client"], _redis_state["script"]


def _redis_key(owner_id: str) -> str:
    return f"llmslots:{owner_id}"


def _acquire_redis(owner_id: str, slot_id: str, limit: int) -> bool:
    _, script = _redis()
    ttl_ms = int(slot_ttl_seconds() * 1000)
    return bool(script(keys=[_redis_key(owner_id)], args=[limit, slot_id, ttl_ms]))


def _release_redis(owner_id: str, slot_id: str) -> None:
    client, _ = _redis()
    client.zrem(_redis_key(owner_id), slot_id)


# --- per owner: database ----------------------------------------------------------------


def _owner_lock_id(owner_id: str) -> int:
    digest = hashlib.sha256(b"llm-slots\x00" + owner_id.encode("utf-8", "surrogatepass"))
    return int.from_bytes(digest.digest()[:8], "big", signed=True)


def _acquire_database(owner_id: str, slot_id: str, limit: int) -> bool:
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Count and insert under one lock per owner: two requests that both counted
            # limit - 1 must not both get in.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_owner_lock_id(owner_id)])
        # On SQLite this DELETE, a write, takes the database's write lock first, which
        # serialises the acquirers just as well.
        LongRequestSlot.objects.filter(owner_id=owner_id, expires_at__lte=now).delete()
        if LongRequestSlot.objects.filter(owner_id=owner_id).count() >= limit:
            return False
        LongRequestSlot.objects.create(
            id=slot_id,
            owner_id=owner_id,
            expires_at=now + timedelta(seconds=slot_ttl_seconds()),
        )
    return True


def _release_database(owner_id: str, slot_id: str) -> None:
    LongRequestSlot.objects.filter(pk=slot_id).delete()


# --- the slot ---------------------------------------------------------------------------


class Slot:
    """A held place for one long request; release() is idempotent and never raises."""

    def __init__(self, owner_id: str, slot_id: str, release):
        self.owner_id, self._slot_id, self._release = owner_id, slot_id, release
        self._lock = threading.Lock()
        self._held = True

    def release(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        _give_process_slot()
        try:
            self._release(self.owner_id, self._slot_id)
        except Exception as exc:  # the slot expires by itself
            logger.warning("llm slot release failed: %s", type(exc).__name__)

    def __enter__(self) -> "Slot":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def _acquire_owner_slot(owner_id: str, slot_id: str, limit: int):
    """The release function of the backend that gave the slot, or None when full."""
    redis_down = (
        _redis_state["url"] == settings.REDIS_URL and time.monotonic() < _redis_state["down_until"]
    )
    if settings.REDIS_URL and not redis_down:
        try:
            return _release_redis if _acquire_redis(owner_id, slot_id, limit) else None
        except Exception as exc:  # any Redis failure falls back, never a 500
            _redis_state["down_until"] = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning("redis llm-slot backend unavailable, using the database: %s",
                           type(exc).__name__)  # fmt: skip
    return _release_database if _acquire_database(owner_id, slot_id, limit) else None


def acquire_long_request(*, owner_id: str) -> Slot:
    """A slot for one request that waits on the LLM, or 503/429 when none is free."""
    if not _take_process_slot():
        raise ServerBusy()
    slot_id = str(uuid.uuid4())
    try:
        release = _acquire_owner_slot(owner_id, slot_id, settings.LLM_MAX_CONCURRENT_PER_OWNER)
    except BaseException:
        _give_process_slot()
        raise
    if release is None:
        _give_process_slot()
        raise TooManyLongRequests()
    return Slot(owner_id, slot_id, release)
