from django.core.management.base import BaseCommand
from django.db import transaction
from tqdm import tqdm

from memories import services
from memories.models import IdempotentRequest, Memory, MemoryEmbedding, MemoryVersion

BATCH = 500


class Command(BaseCommand):
    help = (
        "Re-encrypt every memory (with its history and embedding) and every kept "
        "Idempotency-Key response under the first ENCRYPTION_KEY key, and rebuild the blind "
        "index. Put the new key first in ENCRYPTION_KEY, keep the old ones after it, run "
        "this, then drop the old keys. Resumable and safe while the service serves traffic."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=BATCH)

    def handle(self, *args, batch_size, **options):
        total = Memory.objects.count()
        done = 0
        with tqdm(total=total, unit="memory", disable=None, file=self.stderr) as progress:
            for ids in Memory.objects.pk_batches(batch_size):
                self._rotate(ids)
                done += len(ids)
                progress.update(len(ids))
        self.stdout.write(f"Re-encrypted and reindexed {done} memories.")
        kept = self._rotate_kept_responses()
        self.stdout.write(f"Re-encrypted {kept} kept Idempotency-Key responses.")

    @staticmethod
    def _rotate(ids) -> None:
        """One batch in one transaction, rows locked so concurrent writes wait, not clash."""
        with transaction.atomic():
            memories = list(Memory.objects.select_for_update().filter(pk__in=ids))
            for memory in memories:
                # Saving encrypts content, value and metadata as one envelope under the
                # first key, also for a row still in the earlier three-token format.
                fields = ["content", "value", "metadata"]  # save() maps them to the envelope
                memory.save(update_fields=fields)
                services.reindex_memory(memory_id=memory.pk)
            for embedding in MemoryEmbedding.objects.filter(memory_id__in=ids):
                embedding.save(update_fields=["vector"])
            for version in MemoryVersion.objects.filter(memory_id__in=ids):
                version.save(update_fields=["snapshot"])

    @staticmethod
    def _rotate_kept_responses() -> int:
        """Idempotency-Key responses (24 hours' worth): re-encrypted one by one, each
        locked so that a request completing it meanwhile is not overwritten."""
        done = 0
        ids = IdempotentRequest.objects.filter(response_body__isnull=False).values_list("pk")
        for (pk,) in ids.iterator():
            with transaction.atomic():
                kept = IdempotentRequest.objects.select_for_update().filter(pk=pk).first()
                if kept is not None and kept.response_body is not None:
                    kept.save(update_fields=["response_body"])
                    done += 1
        return done
