from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef, TextField
from django.db.models.functions import Cast
from tqdm import tqdm

from memories import crypto, embeddings, vectors
from memories.models import Memory, MemoryEmbedding


class Command(BaseCommand):
    help = (
        "Embed every live memory that has no vector for OPENAI_EMBEDDING_MODEL (every live "
        "memory with --all, after changing OPENAI_EMBEDDING_DOCUMENT_PREFIX), and rewrite "
        "vectors stored in the old JSON form compactly. Resumable; safe while the service "
        "runs. Run it after an embeddings outage, or from cron."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="re-embed every live memory")
        parser.add_argument("--batch-size", type=int, default=embeddings.BATCH_SIZE)

    def handle(self, *args, all, batch_size, **options):
        if not settings.OPENAI_EMBEDDING_MODEL:  # not an error: cron may run it anyway
            self.stdout.write("OPENAI_EMBEDDING_MODEL is not set: there is nothing to embed.")
            return
        rewritten = self._rewrite_legacy_vectors(batch_size)
        self.stdout.write(f"Rewrote {rewritten} vectors stored as JSON.")
        rows = Memory.objects.live()
        if not all:
            current = MemoryEmbedding.objects.filter(
                memory_id=OuterRef("pk"), model=settings.OPENAI_EMBEDDING_MODEL
            )
            rows = rows.filter(~Exists(current))
        total = rows.count()
        stored = 0
        with tqdm(total=total, unit="memory", disable=None, file=self.stderr) as progress:
            for ids in rows.pk_batches(batch_size):
                done = embeddings.embed_memories(memory_ids=ids, replace=all)
                if done is None:
                    raise CommandError(
                        f"The embeddings server failed after {stored} of {total} memories; "
                        "run the command again when it is back (it resumes)."
                    )
                stored += done
                progress.update(len(ids))
        self.stdout.write(f"Embedded {stored} of {total} memories.")

    @staticmethod
    def _rewrite_legacy_vectors(batch_size: int) -> int:
        """Re-save vectors whose decrypted form is a JSON list (the field writes the
        compact form); one batch at a time, by primary key."""
        rewritten = 0
        last_id = None
        raw = Cast("vector", output_field=TextField())
        while True:
            rows = MemoryEmbedding.objects.order_by("pk")
            if last_id is not None:
                rows = rows.filter(pk__gt=last_id)
            batch = list(rows.values_list("pk", raw)[:batch_size])
            if not batch:
                return rewritten
            for memory_id, token in batch:
                plaintext = crypto.decrypt_bytes(token)
                if not vectors.is_packed(plaintext):
                    # Only if unchanged since read: a fresh vector must not be overwritten.
                    rewritten += (
                        MemoryEmbedding.objects.annotate(raw=raw)
                        .filter(pk=memory_id, raw=token)
                        .update(vector=vectors.unpack(plaintext))
                    )
            last_id = batch[-1][0]
