"""The covering indexes: INCLUDE columns on PostgreSQL, no warning on SQLite, no
planner statistics for ciphertext, and migrations that match the models."""

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
def test_no_planner_statistics_are_kept_for_any_encrypted_column():
    from django.apps import apps

    from memories.models import EncryptedJSONField, EncryptedTextField, EncryptedVectorField

    encrypted = (EncryptedTextField, EncryptedJSONField, EncryptedVectorField)
    columns = {
        (model._meta.db_table, field.column)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, encrypted)
    }
    assert ("memories_memory", "envelope") in columns
    assert len(columns) >= 7
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, a.attname, a.attstattarget FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname = ANY(%s) AND a.attnum > 0",
            [sorted({table for table, _ in columns})],
        )
        targets = {(table, column): target for table, column, target in cursor.fetchall()}
    assert {column: targets[column] for column in columns} == dict.fromkeys(columns, 0)
    # Every other column keeps the default target (-1; NULL from PostgreSQL 17).
    assert targets[("memories_memory", "user_id")] in (-1, None)


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
