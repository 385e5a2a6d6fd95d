"""Give every memory written before history existed its version 1.

Without it, GET /history of such a memory answered [] and its first recorded change became
version 1 "updated": no creation, and the entries did not end at the current state. The
backfilled version 1 is a "created" snapshot of the memory as it is now, recorded at its
updated_at (its earlier states were never kept).
"""

from django.db import migrations

BATCH = 500


def snapshot(memory) -> dict:
    # As Memory.snapshot() at the time of this migration (historical models have no methods).
    return {
        "type": memory.type,
        "content": memory.content,
        "key": memory.key,
        "value": memory.value,
        "importance": memory.importance,
        "confidence": float(memory.confidence),
        "metadata": memory.metadata,
        "expires_at": memory.expires_at.isoformat() if memory.expires_at else None,
    }


def backfill(apps, schema_editor):
    Memory = apps.get_model("memories", "Memory")
    MemoryVersion = apps.get_model("memories", "MemoryVersion")
    with_history = MemoryVersion.objects.values("memory_id")
    missing = Memory.objects.exclude(pk__in=with_history).order_by("pk")
    last = None
    while True:
        batch = missing if last is None else missing.filter(pk__gt=last)
        batch = list(batch[:BATCH])
        if not batch:
            return
        MemoryVersion.objects.bulk_create(
            MemoryVersion(
                memory_id=memory.pk,
                owner_id=memory.owner_id,
                user_id=memory.user_id,
                version=1,
                event="created",
                recorded_at=memory.updated_at,
                snapshot=snapshot(memory),
            )
            for memory in batch
        )
        last = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [("memories", "0005_history_and_idempotency")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
