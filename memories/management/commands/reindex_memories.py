from django.core.management.base import BaseCommand
from django.db.models import Exists, OuterRef, Q
from tqdm import tqdm

from memories import services, text
from memories.models import Memory, MemoryEmbedding, MemoryTerm

BATCH = 500


class Command(BaseCommand):
    help = (
        "Rebuild the blind term index of memories written by an older index version "
        "(or of all memories with --all), and remove index and embedding rows whose memory "
        "is gone. Resumable; safe while the service runs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="rebuild every memory")
        parser.add_argument("--batch-size", type=int, default=BATCH)

    def handle(self, *args, all, batch_size, **options):
        rows = Memory.objects.filter(is_deleted=False)
        if not all:
            rows = rows.filter(~Q(index_version=text.INDEX_VERSION))
        total = rows.count()
        stale = Memory.objects.filter(is_deleted=False).exclude(index_version=text.INDEX_VERSION)
        self.stdout.write(
            f"Index version {text.INDEX_VERSION}: {stale.count()} stale memories, "
            f"rebuilding {total}."
        )
        with tqdm(total=total, unit="memory", disable=None, file=self.stderr) as progress:
            # Only the ids: each memory is read again, locked, as it is rebuilt.
            for batch in rows.pk_batches(batch_size):
                for memory_id in batch:
                    services.reindex_memory(memory_id=memory_id)
                progress.update(len(batch))
        self.stdout.write(f"Reindexed {total} memories.")
        # These rows have no database foreign key (see MemoryTerm.memory); the service
        # never leaves one behind, but a memory deleted with raw SQL would.
        orphans = 0
        for model in (MemoryTerm, MemoryEmbedding):
            gone = ~Exists(Memory.objects.filter(pk=OuterRef("memory_id")))
            orphans += model.objects.filter(gone).delete()[0]
        self.stdout.write(f"Removed {orphans} orphaned index and embedding rows.")
