"""Per-key token bucket, shared by every worker process and host.

Capacity is the key's rate limit per minute; the bucket refills continuously at
limit/60 tokens a second; each request takes one token. The state lives in Redis (one
Lua script per request, Redis clock) when REDIS_URL is set, otherwise in a database row
updated by one atomic statement (database clock). Either way no read-modify-write race
exists between workers.
"""

import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from django.conf import settings
from django.db import connection
from rest_framework.throttling import BaseThrottle

from apikeys.models import ApiKey, RateLimitBucket

if TYPE_CHECKING:  # imported for annotations only: DRF's views import this module
    from redis.commands.core import Script
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)


class Bucket(NamedTuple):
    """A bucket that is not an API key's (see apikeys/lockout.py): the same fields."""

    pk: uuid.UUID
    rate_limit_per_minute: int


@dataclass(frozen=True)
class BucketDecision:
    allowed: bool
    limit: int
    tokens: float  # left after this request
    now: float  # Unix seconds on the clock that holds the bucket

    @property
    def refill_per_second(self) -> float:
        return self.limit / 60.0

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.tokens + 1e-9))

    @property
    def reset(self) -> int:
        """Unix seconds at which the bucket is full again."""
        missing = max(0.0, self.limit - self.tokens)
        return math.ceil(self.now + missing / self.refill_per_second - 1e-9)

    @property
    def retry_after(self) -> int:
        """Whole seconds until one token is available, at least 1."""
        missing = max(0.0, 1.0 - self.tokens)
        return max(1, math.ceil(missing / self.refill_per_second - 1e-9))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


def take_token(*, tokens: float, updated_at: float, now: float, limit: int) -> tuple[bool, float]:
    """Refill a bucket up to `limit` for the time elapsed, then try to take one token."""
    elapsed = max(0.0, now - updated_at)
    tokens = min(float(limit), tokens + elapsed * limit / 60.0)
    if tokens >= 1.0:
        return True, tokens - 1.0
    return False, tokens


# KEYS[1] bucket key; ARGV[1] capacity. Same arithmetic as take_token, on Redis time.
_LUA_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = capacity / 60.0
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(capacity, tokens + elapsed * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
-- tostring keeps 14 significant digits, only a tenth of a millisecond of a Unix time.
local tokens_text = string.format('%.17g', tokens)
local now_text = string.format('%.6f', now)
redis.call('HSET', KEYS[1], 'tokens', tokens_text, 'ts', now_text)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity / rate + 1) * 1000))
return {allowed, tokens_text, now_text}
"""

# After a Redis failure this process uses the database buckets for this long before it
# tries Redis again: a Redis that hangs costs one socket timeout per interval, not one per
# request.
REDIS_RETRY_SECONDS = 5.0

_redis_lock = threading.Lock()
_redis_state: dict[str, Any] = {
    "url": None,
    "script": None,
    "down_until": float("-inf"),
    "last_warning": float("-inf"),
}


def _redis_script() -> "Script":
    url = settings.REDIS_URL
    with _redis_lock:
        if _redis_state["url"] != url:
            import redis

            client = redis.Redis.from_url(
                url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
            )
            _redis_state.update(
                url=url, script=client.register_script(_LUA_TAKE), down_until=float("-inf")
            )
        script: Script = _redis_state["script"]
        return script


# Each thread's own connection to Redis, taken from the script's pool once and kept.
_held = threading.local()


def _run_script(script: "Script", keys: list[str], args: list[Any]) -> Any:
    """script(keys=keys, args=args) on this thread's own connection: one EVALSHA (EVAL
    when Redis lost the script), as the client sends it, without the pool checkout,
    retry wrapper and instrumentation around every client call, which cost more CPU
    than sending and parsing (84 against 35 us, bench/inprocess.py --steps). The
    connection still checks its health as configured. A connection Redis closed (a
    restart, an idle timeout) is replaced and the script sent once more; any other
    error, or a second one, goes back to the pool disconnected and reaches the caller,
    which falls back to the database buckets. A timeout is not retried: a Redis that
    hangs must cost one timeout, not two."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError

    pool = script.registered_client.connection_pool  # type: ignore[union-attr]  # never a cluster
    for attempt in (1, 2):
        connection = getattr(_held, "connection", None)
        if connection is None or _held.pool is not pool or _held.pid != os.getpid():
            connection = pool.get_connection()  # kept by this thread
            _held.connection, _held.pool, _held.pid = connection, pool, os.getpid()
        try:
            try:
                connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                return connection.read_response()
            except NoScriptError:
                connection.send_command("EVAL", script.script, len(keys), *keys, *args)
                return connection.read_response()
        except BaseException as error:
            _held.connection = None
            connection.disconnect()
            pool.release(connection)
            if attempt == 2 or not isinstance(error, RedisConnectionError):
                raise
    raise AssertionError("unreachable")


def _take_redis(api_key: ApiKey | Bucket) -> BucketDecision:
    allowed, tokens, now = _run_script(
        _redis_script(), [f"ratelimit:{api_key.pk}"], [api_key.rate_limit_per_minute]
    )
    return BucketDecision(
        allowed=bool(allowed),
        limit=api_key.rate_limit_per_minute,
        tokens=float(tokens),
        now=float(now),
    )


_SQL_NOW = {
    "postgresql": "EXTRACT(EPOCH FROM clock_timestamp())::double precision",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}
_SQL_LEAST_GREATEST = {"postgresql": ("LEAST", "GREATEST"), "sqlite": ("MIN", "MAX")}


def _take_sql(vendor: str) -> str:
    """The same arithmetic as take_token in one upsert; SET sees the row's old values."""
    table = RateLimitBucket._meta.db_table
    least, greatest = _SQL_LEAST_GREATEST[vendor]
    # The clock is read once, into the proposed row: clock_timestamp() would give every
    # reference its own instant, so the test, the new tokens and the new time could
    # disagree. A statement that waited for the row lock may hold an instant older than
    # the row's; the bucket's time never goes back, so that wait is not refilled twice.
    now = "excluded.updated_at"
    refilled = (
        f"{least}(%(cap)s, {table}.tokens"
        f" + {greatest}(0, {now} - {table}.updated_at) * %(cap)s / 60.0)"
    )
    # A new key starts full: the inserted row already has its first token taken.
    return (
        f"INSERT INTO {table} (key_id, tokens, updated_at, allowed) "  # noqa: S608 - table and clock from constants, values as named placeholders
        f"VALUES (%(key)s, %(cap)s - 1, {_SQL_NOW[vendor]}, TRUE) "
        f"ON CONFLICT (key_id) DO UPDATE SET "
        f"tokens = CASE WHEN {refilled} >= 1 THEN {refilled} - 1 ELSE {refilled} END, "
        f"allowed = ({refilled} >= 1), "
        f"updated_at = {greatest}({table}.updated_at, {now}) "
        f"RETURNING allowed, tokens, updated_at"
    )


def _take_database(api_key: ApiKey | Bucket) -> BucketDecision:
    vendor = connection.vendor
    key = api_key.pk if vendor == "postgresql" else api_key.pk.hex
    with connection.cursor() as cursor:
        cursor.execute(_take_sql(vendor), {"key": key, "cap": api_key.rate_limit_per_minute})
        allowed, tokens, now = cursor.fetchone()
    return BucketDecision(
        allowed=bool(allowed), limit=api_key.rate_limit_per_minute, tokens=tokens, now=now
    )


def take(api_key: ApiKey | Bucket) -> BucketDecision:
    """Take one token for api_key (or another bucket) from the shared bucket."""
    redis_down = (
        _redis_state["url"] == settings.REDIS_URL and time.monotonic() < _redis_state["down_until"]
    )
    if settings.REDIS_URL and not redis_down:
        try:
            return _take_redis(api_key)
        except Exception as exc:  # any Redis failure falls back, never a 500
            now = time.monotonic()
            _redis_state["down_until"] = now + REDIS_RETRY_SECONDS
            if now - _redis_state["last_warning"] >= 60:
                _redis_state["last_warning"] = now
                logger.warning(
                    "redis rate-limit backend unavailable, using database buckets: %s",
                    type(exc).__name__,
                )
    return _take_database(api_key)


class TokenBucketThrottle(BaseThrottle):
    """DRF throttle; the decision is kept on the request so headers go on every response."""

    def allow_request(self, request: "Request", view: "APIView") -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        decision = take(api_key)
        request._request.ratelimit = decision  # type: ignore[attr-defined]
        self.decision = decision
        return decision.allowed

    def wait(self) -> float:
        return self.decision.retry_after
