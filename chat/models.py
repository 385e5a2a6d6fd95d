import uuid

from django.db import models


class LongRequestSlot(models.Model):
    """One request that waits on the LLM, held by an owner (the database backend of
    chat.concurrency; with REDIS_URL the slots live in Redis). A row past expires_at is
    free again: a worker killed mid-request cannot hold a slot forever."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.CharField(max_length=255)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["owner_id", "expires_at"], name="longslot_owner")]
