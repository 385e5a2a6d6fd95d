from django.db import models


class WritePosition(models.Model):
    """The primary's WAL position after an owner's latest write (used when REDIS_URL is
    unset): a replica serves that owner's reads only once it has replayed past it."""

    owner_id = models.CharField(max_length=255, primary_key=True)
    lsn = models.BigIntegerField(help_text="The WAL position as bytes from 0/0.")
