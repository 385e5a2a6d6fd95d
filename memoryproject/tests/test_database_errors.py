"""Which database errors are an outage (503, retry later) and which are a statement the
database refuses (our bug: 500, logged), on the real PostgreSQL."""

import pytest
from django.db import DatabaseError, connection, transaction

from memoryproject.errors import is_database_down

pytestmark = pytest.mark.django_db


def error_of(sql: str) -> DatabaseError:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 50")
        with pytest.raises(DatabaseError) as caught, transaction.atomic():
            cursor.execute(sql)
    return caught.value


def test_a_statement_timeout_is_unavailable():
    assert is_database_down(error_of("SELECT pg_sleep(2)"))


def test_a_refused_statement_is_not_an_outage():
    # program_limit_exceeded: an OperationalError by SQLSTATE class, yet nothing is down.
    assert not is_database_down(error_of("SELECT '{{{{{{{1}}}}}}}'::int[]"))


def test_a_closed_connection_is_unavailable():
    connection.ensure_connection()
    connection.connection.close()
    with pytest.raises(DatabaseError) as caught, connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert is_database_down(caught.value)
    connection.close()


@pytest.mark.parametrize("code", ["deadlock_detected", "serialization_failure"])
def test_a_deadlock_or_serialization_failure_is_retryable(code):
    raised = error_of(f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{code}'; END $$")
    assert is_database_down(raised)
