"""The covering indexes: INCLUDE columns on PostgreSQL, no warning on SQLite, and
migrations that match the models."""

import subprocess
import sys

import pytest
from django.core.management import call_command
from django.db import connection

from conftest import service_env
from memoryproject.tests.servers import ROOT

COVERING = {
    "memory_owner_user_stats": "(is_deleted, expires_at, type, importance, created_at)",
    "memory_owner_user_corpus": "(term_count, expires_at)",
    "memoryterm_lookup": "(memory_id, tf, doc_length, expires_at)",
}


@pytest.mark.django_db
def test_covering_indexes_include_their_columns_on_postgresql():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
            [list(COVERING)],
        )
        definitions = dict(cursor.fetchall())
    assert set(definitions) == set(COVERING)
    for name, columns in COVERING.items():
        assert f" INCLUDE {columns}" in definitions[name], definitions[name]


@pytest.mark.django_db
def test_models_need_no_new_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_sqlite_development_database_checks_without_warnings(tmp_path):
    env = service_env("unused", DATA_DIR=str(tmp_path), DATABASE_URL=None, ENCRYPTION_KEY=None,
                      SECRET_KEY=None, ALLOWED_HOSTS=None)  # fmt: skip
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--database", "default"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "W040" not in result.stdout + result.stderr
