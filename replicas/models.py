from django.db import models


class WritePosition(models.Model):
    """The primary's WAL position after an owner's latest write (used when REDIS_URL is
    unset): a replica serves that owner's reads only once it has replayed past it."""

    owner_id = models.CharField(max_length=255, primary_key=True)
    lsn = models.BigIntegerField(help_text="pg_current_wal_insert_lsn() as bytes from 0/0.")
