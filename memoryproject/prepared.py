"""Prepared statements for the few statements that every write or request runs.

PostgreSQL parses, analyses and plans each statement it receives; for the create statement
(memory, first version and index rows as data-modifying CTEs) and the key look-up that
work costs a large part of the database's time per request. A prepared statement pays it
once per connection. Django's psycopg cursors bind parameters on the client and never
prepare; cursor() below gives a Django cursor (the same wrapper: query logging, execute
wrappers, error translation) over a psycopg cursor that binds on the server and prepares
every statement it runs.

Only where PREPARED_STATEMENTS is on (settings: PostgreSQL reached directly, a connection
kept for many requests). Behind a transaction-mode pooler consecutive statements may run on
different server connections, which do not know each other's prepared statements, so
there cursor() is Django's own cursor. Only for statements whose best plan does not depend
on their parameters (inserts, look-ups by a unique key): after five executions PostgreSQL
may reuse a generic plan, which a ranking query over one user's skewed data must not get.
"""

from typing import Any

import psycopg
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql.base import TIMESTAMPTZ_OID
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.db.backends.utils import CursorWrapper
from psycopg.pq import Format


class PreparingCursor(psycopg.Cursor):
    """Binds on the server and prepares each statement (psycopg keeps the names)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        kwargs["prepare"] = True
        return super().execute(query, params, **kwargs)

    def _send_query_prepared(self, name: bytes, pgq: Any, **kwargs: Any) -> None:
        # psycopg (3.3) records the query it ran only when it did not prepare it;
        # Django's query log reads it (connection.queries, CaptureQueriesContext).
        super()._send_query_prepared(name, pgq, **kwargs)
        self._query = pgq


def enabled(db: BaseDatabaseWrapper) -> bool:
    return db.vendor == "postgresql" and bool(db.settings_dict.get("PREPARED_STATEMENTS"))


def cursor(db: BaseDatabaseWrapper, *, prepare: bool = True) -> CursorWrapper:
    """db.cursor(), preparing its statements where the settings allow it (and prepare)."""
    if not prepare or not enabled(db):
        return db.cursor()
    # As BaseDatabaseWrapper._cursor() and the backend's create_cursor(), with another
    # class of psycopg cursor.
    db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        raw = PreparingCursor(db.connection)
        # Timestamps load in the wrapper's time zone, as on Django's own cursors.
        loader = db.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
        if db.timezone != loader.timezone:
            register_tzloader(db.timezone, raw)
        return db._prepare_cursor(raw)  # type: ignore[attr-defined]
