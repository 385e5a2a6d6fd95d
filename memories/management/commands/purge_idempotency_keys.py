from django.core.management.base import BaseCommand

from memories.idempotency import purge_expired


class Command(BaseCommand):
    help = (
        "Delete Idempotency-Key responses kept for more than 24 hours. Expired records are "
        "never replayed; this only reclaims their space. Schedule it, e.g. hourly."
    )

    def handle(self, *args, **options):
        deleted = purge_expired()
        self.stdout.write(f"Deleted {deleted} expired Idempotency-Key records.")
