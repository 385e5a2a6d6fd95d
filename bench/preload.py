"""Load benchmark memories through the service's own create path (encryption and index are
real), much faster than HTTP. Run by bench/run.py with the server's environment:

    python bench/preload.py '[{"owner": "o", "user": "u", "count": 1000, "seed": 1}]'

A job with "bulk": true builds the same rows with the same functions
(memories.services._prepare_index, the model's encrypted fields) but inserts them with
bulk_create, 500 memories a statement: about ten times faster, for the 100,000-memory user.

Prints one JSON line per job: {"user": ..., "count": ..., "seconds": ...}.
"""

import json
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryproject.settings")

import django  # noqa: E402

django.setup()

import corpus  # noqa: E402  (bench/ is sys.path[0])
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from memories.models import Memory, MemoryTerm  # noqa: E402
from memories.services import _prepare_index, create_memory  # noqa: E402

BATCH = 500  # memories per transaction; each memory keeps its own savepoint
SPREAD_SECONDS = 365 * 86400  # created_at spread over the past year


def load(owner: str, user: str, count: int, seed: int, bulk: bool = False) -> float:
    started = time.perf_counter()
    rng = random.Random(seed)
    now = timezone.now()
    for start in range(0, count, BATCH):
        batch = []
        for _ in range(min(BATCH, count - start)):
            created = now - timedelta(seconds=rng.uniform(0, SPREAD_SECONDS))
            batch.append((corpus.memory(rng, user), created))
        with transaction.atomic():
            if bulk:
                bulk_insert(owner, batch)
            else:
                for data, created in batch:
                    create_memory(owner_id=owner, data=data, now=created)
    return time.perf_counter() - started


def bulk_insert(owner: str, batch: list[tuple[dict, object]]) -> None:
    """What create_memory stores, row for row, in two statements per batch."""
    memories, terms = [], []
    for data, created in batch:
        memory = Memory(owner_id=owner, created_at=created, updated_at=created, **data)
        memory.measure_content()  # Memory.save() does this; bulk_create skips it
        terms += [
            MemoryTerm(
                memory=memory,
                owner_id=memory.owner_id,
                user_id=memory.user_id,
                term=term,
                tf=tf,
                doc_length=memory.term_count,
                expires_at=memory.expires_at,
            )
            for term, tf in _prepare_index(memory).items()
        ]
        memories.append(memory)
    Memory.objects.bulk_create(memories)
    MemoryTerm.objects.bulk_create(terms, batch_size=5000)


def main() -> None:
    for job in json.loads(sys.argv[1]):
        seconds = load(job["owner"], job["user"], job["count"], job["seed"], job.get("bulk", False))
        print(json.dumps({"user": job["user"], "count": job["count"], "seconds": seconds}))


if __name__ == "__main__":
    main()
