from django.core.management.base import BaseCommand

from memories.idempotency import purge_expired


class Command(BaseCommand):
    help = (
        "Delete Idempotency-Key records older than 24 hours (kept responses and abandoned "
        "claims). Expired records are never replayed; this only reclaims their space. "
        "Schedule it, e.g. hourly."
    )

    def handle(self, *args, **options):
        deleted = purge_expired()
        self.stdout.write(f"Deleted {deleted} expired Idempotency-Key records.")
