from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apikeys.models import ApiKey


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


class Command(BaseCommand):
    help = "List OWNER_ID's API keys (never the key or its hash)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("owner_id")

    def handle(self, *args: Any, owner_id: str, **options: Any) -> None:
        keys = ApiKey.objects.filter(owner_id=owner_id).order_by("created_at")
        rows = [
            (
                str(k.id),
                k.prefix + "…",
                _when(k.created_at),
                _when(k.last_used_at),
                f"{k.rate_limit_per_minute}/min",
                f"yes ({_when(k.revoked_at)})" if k.revoked_at else "no",
            )
            for k in keys
        ]
        if not rows:
            self.stdout.write(f"No API keys for owner {owner_id}.")
            return
        header = ("ID", "PREFIX", "CREATED", "LAST USED", "RATE LIMIT", "REVOKED")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )
        self.stdout.write(f"{len(rows)} key(s) for owner {owner_id}.")
