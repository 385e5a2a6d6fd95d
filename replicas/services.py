"""Read replicas with read-your-writes (DATABASE_REPLICA_URLS).

- After a write, the owner's position is recorded: the primary's WAL position read after
  the write committed (so it is past the write's commit record; see _POSITION_NOW). It goes to
  Redis when REDIS_URL is set, otherwise to a row on the primary; either way the larger
  of the old and new positions wins, so concurrent writes cannot move it back.
- A read-only request may go to a replica only if that replica has replayed past the
  owner's position (`pg_last_wal_replay_lsn()`); otherwise it reads the primary. Owners
  who never wrote (or whose position expired) may read any healthy replica.
- Each process checks each replica at most every CHECK_SECONDS (one small query), and
  keeps the replayed position it saw: a replica only moves forward, so an owner whose
  position is at or below it needs no further query. Only an owner who wrote more recently
  than the last check costs one more query on the replica.
- A replica that refuses connections or fails a query is skipped for RETRY_SECONDS; one
  that is not in recovery, not connected to its primary, or lagging more than
  DATABASE_REPLICA_MAX_LAG_SECONDS is skipped until a later check finds it well. Reads then
  go to the primary: a replica never turns a read into an error while the primary answers.
"""

import contextlib
import logging
import random
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, connections
from django.db.models import Model, QuerySet

from memoryproject.errors import is_database_down
from replicas.models import WritePosition

if TYPE_CHECKING:
    import redis
    from redis.commands.core import Script

M = TypeVar("M", bound=Model)

logger = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
RETRY_SECONDS = 5.0
# Long enough to outlive any replica lag that is still served (the lag bound); an owner
# whose position expired reads like an owner who never wrote.
POSITION_TTL_SECONDS = 24 * 3600
REDIS_RETRY_SECONDS = 5.0

# State, replayed position and lag in one statement. The lag is 0 while the replica has
# replayed everything it received (an idle primary sends nothing, which is not lag), else
# the age of the last transaction it replayed; on a quiet primary that transaction may be
# old while the replica is only a moment behind, so _check() also bounds the lag by the
# time since this process last saw it caught up. A replica whose WAL receiver is not
# running is not connected to its primary, so how far behind it is cannot be known.
_CHECK_SQL = """
SELECT pg_is_in_recovery(),
       COALESCE((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, 0),
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver),
       pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(),
       COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()),
                0)::float8
"""
# The primary's WAL position just after a write committed, as bytes from 0/0: the write
# position, which a COMMIT with synchronous_commit on (the default) has flushed past its
# commit record. With it off, COMMIT returns before that, so the insert position is taken
# instead: always past the commit record, but it may lie past a page header that no
# replica reaches until more WAL follows (those reads then go to the primary).
_POSITION_NOW = (
    "(CASE WHEN current_setting('synchronous_commit') = 'off' THEN pg_current_wal_insert_lsn()"
    " ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint"
)
_CURRENT_SQL = f"SELECT {_POSITION_NOW}"
_RECORD_SQL = (
    f"INSERT INTO {WritePosition._meta.db_table} (owner_id, lsn) "  # noqa: S608 - table name from the model, values as placeholders
    f"VALUES (%s, {_POSITION_NOW}) "
    f"ON CONFLICT (owner_id) DO UPDATE SET lsn = GREATEST({WritePosition._meta.db_table}.lsn, "
    "excluded.lsn)"
)
_POSITION_SQL = f"SELECT lsn FROM {WritePosition._meta.db_table} WHERE owner_id = %s"  # noqa: S608 - table name from the model, values as placeholders
# KEYS[1] the owner's position; ARGV[1] the new one as 16 hex digits (fixed width, so text
# order is numeric order), ARGV[2] its lifetime in seconds. Keeps the larger.
_LUA_RECORD = """
local current = redis.call('GET', KEYS[1])
if not current or current < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
else
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 1
"""

OK, LAGGING, DOWN, DISCONNECTED, NOT_REPLICA = "ok", "lagging", "down", "disconnected", "primary"


@dataclass(frozen=True)
class ReplicaState:
    alias: str
    state: str = "unknown"
    replay_lsn: int = 0  # bytes from 0/0
    lag_seconds: float | None = None
    checked_at: float = float("-inf")  # monotonic
    retry_at: float = float("-inf")  # a replica that failed is not tried before this
    caught_up_at: float = float("-inf")  # monotonic: last seen with nothing left to replay


_lock = threading.Lock()
_states: dict[str, ReplicaState] = {}
_redis: dict[str, Any] = {"url": None, "client": None, "script": None, "down_until": float("-inf")}
_last_warning: dict[str, float] = {}


def _warn(what: str, message: str, *args: object) -> None:
    """Log a warning at most once a minute per subject: an outage is not a log flood."""
    now = time.monotonic()
    if now - _last_warning.get(what, float("-inf")) >= 60:
        _last_warning[what] = now
        logger.warning(message, *args)


def _check(alias: str, caught_up_at: float) -> ReplicaState:
    """Ask the replica how it is (one query); a failure marks it down for RETRY_SECONDS."""
    now = time.monotonic()
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute(_CHECK_SQL)
            in_recovery, replay_lsn, receiving, replayed_all, since_commit = cursor.fetchone()
    except (DatabaseError, InterfaceError) as exc:
        _warn(alias, "replica %s unavailable, reading from the primary: %s", alias, exc)
        with contextlib.suppress(DatabaseError, InterfaceError):
            connection.close()
        return ReplicaState(alias, DOWN, checked_at=now, retry_at=now + RETRY_SECONDS)
    if replayed_all:
        lag, caught_up_at = 0.0, now
    else:
        lag = min(float(since_commit), now - caught_up_at)
    if not in_recovery:
        state = NOT_REPLICA  # promoted, or not a replica at all: never read from it
    elif not receiving:
        state = DISCONNECTED
    elif lag > settings.DATABASE_REPLICA_MAX_LAG_SECONDS:
        state = LAGGING
    else:
        state = OK
    if state != OK:
        _warn(alias, "replica %s is %s (lag %.1f s), reading from the primary", alias, state, lag)
    return ReplicaState(
        alias, state, int(replay_lsn), round(lag, 3), checked_at=now, caught_up_at=caught_up_at
    )


def replica_state(alias: str, *, fresh: bool = False) -> ReplicaState:
    """The replica's state as this process last saw it, checked again when older than
    CHECK_SECONDS (or when fresh), except while a failed replica waits out RETRY_SECONDS."""
    now = time.monotonic()
    with _lock:
        known = _states.get(alias, ReplicaState(alias))
    if now < known.retry_at or (not fresh and now - known.checked_at < CHECK_SECONDS):
        return known
    checked = _check(alias, known.caught_up_at)
    with _lock:
        current = _states.get(alias, known)
        if checked.state == OK and current.replay_lsn > checked.replay_lsn:
            checked = replace(checked, replay_lsn=current.replay_lsn)  # another thread saw more
        _states[alias] = checked
    return checked


def note_replica_failure(*, alias: str, error: BaseException) -> None:
    """A read on the replica failed: skip it for RETRY_SECONDS when it is unreachable
    (a query it cancelled, say for a conflict with recovery, only sends that read to the
    primary)."""
    if not is_database_down(error):
        logger.info("read on replica %s failed, retried on the primary: %s", alias, error)
        return
    _warn(alias, "replica %s failed during a read, reading from the primary: %s", alias, error)
    now = time.monotonic()
    with _lock:
        _states[alias] = ReplicaState(alias, DOWN, checked_at=now, retry_at=now + RETRY_SECONDS)
    with contextlib.suppress(DatabaseError, InterfaceError):
        connections[alias].close()


def _redis_client() -> tuple["redis.Redis", "Script"]:
    url = settings.REDIS_URL
    with _lock:
        if _redis["url"] != url:
            import redis

            client = redis.Redis.from_url(
                url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
            )
            _redis.update(
                url=url,
                client=client,
                script=client.register_script(_LUA_RECORD),
                down_until=float("-inf"),
            )
        if time.monotonic() < _redis["down_until"]:
            raise ConnectionError("Redis was unavailable moments ago")
        return _redis["client"], _redis["script"]


def _redis_failed(exc: BaseException) -> None:
    _redis["down_until"] = time.monotonic() + REDIS_RETRY_SECONDS
    _warn("redis", "redis unavailable for write positions, reading from the primary: %s", exc)


def _position_key(owner_id: str) -> str:
    """The owner's Redis key, scoped to the primary's cluster: positions are meaningless
    in another cluster's WAL (a primary rebuilt from a dump would otherwise inherit
    positions it never reaches). A promoted replica keeps the identifier and the WAL."""
    if _redis.get("cluster") is None:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT system_identifier FROM pg_control_system()")
            _redis["cluster"] = cursor.fetchone()[0]
    return f"replica-position:{_redis['cluster']}:{owner_id}"


def record_write(*, owner_id: str) -> None:
    """Record the primary's WAL position after a write of owner_id's; never raises (the
    write itself is done: a failure here only makes the owner's next reads less likely to
    be served by a replica, or, with Redis unreachable, see docs/SCALING.md)."""
    try:
        primary = connections[DEFAULT_DB_ALIAS]
        if not settings.REDIS_URL:
            with primary.cursor() as cursor:
                cursor.execute(_RECORD_SQL, [owner_id])
            return
        with primary.cursor() as cursor:
            cursor.execute(_CURRENT_SQL)
            (lsn,) = cursor.fetchone()
        _, script = _redis_client()
        key = _position_key(owner_id)
        try:
            script(keys=[key], args=[f"{lsn:016x}", POSITION_TTL_SECONDS])
        except Exception as exc:
            _redis_failed(exc)
    except Exception as exc:  # the primary is down: the write failed too, or is unknown
        _warn("record", "could not record a write position: %s", type(exc).__name__)


def _owner_position(owner_id: str) -> int | None:
    """The owner's recorded position, None when there is none; raises when it cannot be
    known (Redis or the primary unreachable)."""
    if not settings.REDIS_URL:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(_POSITION_SQL, [owner_id])
            row = cursor.fetchone()
        return row[0] if row else None
    client, _ = _redis_client()
    key = _position_key(owner_id)
    try:
        value = client.get(key)
    except Exception as exc:
        _redis_failed(exc)
        raise
    return int(value, 16) if value else None


def choose_replica(*, owner_id: str) -> str | None:
    """The alias of a replica that may serve owner_id's read now, or None for the primary."""
    aliases = list(settings.REPLICA_DATABASES)
    if not aliases:
        return None
    start = random.randrange(len(aliases))  # spread reads over the replicas
    usable = [
        state
        for alias in aliases[start:] + aliases[:start]
        if (state := replica_state(alias)).state == OK
    ]
    if not usable:
        return None
    try:
        position = _owner_position(owner_id)
    except Exception as exc:
        _warn("position", "write position unknown, reading from the primary: %s", exc)
        return None
    for state in usable:
        if position is None or state.replay_lsn >= position:
            return state.alias
        state = replica_state(state.alias, fresh=True)
        if state.state == OK and state.replay_lsn >= position:
            return state.alias
    return None


def replica_health() -> list[dict[str, object]]:
    """Each configured replica's state for /health: name, state, lag in seconds."""
    return [
        {"name": state.alias, "state": state.state, "lag_seconds": state.lag_seconds}
        for state in (replica_state(alias) for alias in settings.REPLICA_DATABASES)
    ]


def fetch_rows(queryset: QuerySet[M]) -> list[M]:
    """The queryset's rows, read on the database it is pinned to, or on the primary when
    that is a replica which is down or fails now (a streamed export outlives the request
    that chose the replica)."""
    alias = queryset.db
    if alias == DEFAULT_DB_ALIAS:
        return list(queryset)
    if replica_state(alias).state == DOWN:  # lagging is fine: it was past the owner's writes
        return list(queryset.using(DEFAULT_DB_ALIAS))
    try:
        return list(queryset)
    except (DatabaseError, InterfaceError) as exc:
        note_replica_failure(alias=alias, error=exc)
        return list(queryset.using(DEFAULT_DB_ALIAS))
