"""Every create goes through memories.services.create_memories, which writes with one
statement on PostgreSQL and with bulk_create elsewhere, and calls Model.save() on neither:
the rows, their derived columns, first versions and index rows must come out the same on
both databases."""

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import service_env
from memories import services
from memories.models import Memory, MemoryTerm, MemoryVersion
from memories.serializers import MemorySerializer

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
ITEMS = [
    {"type": "fact", "content": "Lives in Lisbon, près de la mer", "importance": 4},
    {"type": "preference", "content": "Theme: dark", "key": "ui_theme", "value": "dark",
     "ttl_seconds": 3600, "metadata": {"source": "test", "nested": {"a": [1, 2.5]}}},
    {"type": "preference", "content": "preference:theme=light", "ingestion_mode": "rules",
     "confidence": 0.5},
]  # fmt: skip


def stored_rows() -> dict:
    """Create ITEMS (one alone, the rest as a batch) for a fixed clock and ids, and return
    every column written, as JSON values."""
    validated = []
    for n, item in enumerate(ITEMS):
        serializer = MemorySerializer(data={"user_id": "u1", **item})
        serializer.is_valid(raise_exception=True)
        validated.append({**serializer.validated_data, "id": uuid.UUID(int=n + 1)})
    services.create_memory(owner_id="acme", data=validated[0], now=NOW)
    services.create_memories(owner_id="acme", items=validated[1:], now=NOW)
    memories = Memory.objects.filter(owner_id="acme").order_by("pk")
    columns = (
        "content_chars", "value_bytes", "term_count", "index_version", "content_hash",
        "created_at", "updated_at", "expires_at", "key", "importance", "confidence",
    )  # fmt: skip
    return json.loads(
        json.dumps(
            {
                "memories": [
                    [str(m.pk), m.content, m.value, m.metadata, *(getattr(m, c) for c in columns)]
                    for m in memories
                ],
                "versions": [
                    [str(v.memory_id), v.version, v.event, v.recorded_at, v.snapshot]
                    for v in MemoryVersion.objects.order_by("memory_id", "version")
                ],
                "terms": sorted(
                    [str(t.memory_id), t.term, t.tf, t.doc_length, t.expires_at]
                    for t in MemoryTerm.objects.all()
                ),
            },
            default=str,
        )
    )


@pytest.mark.slow
def test_sqlite_stores_exactly_what_postgresql_stores(db, tmp_path):
    env = service_env("unused", DATA_DIR=str(tmp_path), DATABASE_URL=None)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    assert (tmp_path / "db.sqlite3").is_file()
    code = "import json; from memories.tests import test_one_create_path as t; "
    code += "print(json.dumps(t.stored_rows()))"
    done = subprocess.run(
        [*manage, "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    on_sqlite = json.loads(done.stdout.strip().splitlines()[-1])
    on_postgresql = stored_rows()
    assert on_sqlite == on_postgresql
    assert len(on_postgresql["memories"]) == len(ITEMS)
    assert len(on_postgresql["versions"]) == len(ITEMS)
    assert on_postgresql["terms"]
