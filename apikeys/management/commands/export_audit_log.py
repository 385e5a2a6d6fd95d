import csv
import json
from datetime import UTC, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.models import AuditEvent

FIELDS = ["id", "created_at", "event", "owner_id", "actor", "target", "details"]


def _day(value: str, *, end: bool) -> datetime:
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).date()
    except ValueError:
        raise CommandError(f"Dates are YYYY-MM-DD, got {value!r}") from None
    return datetime.combine(day, time.max if end else time.min, tzinfo=UTC)


class Command(BaseCommand):
    help = "Write audit events (for compliance requests) as CSV or JSON lines to stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="first day, YYYY-MM-DD (UTC), inclusive")
        parser.add_argument("--until", help="last day, YYYY-MM-DD (UTC), inclusive")
        parser.add_argument("--owner", help="only this owner_id")
        parser.add_argument("--event", choices=AuditEvent.Event.values)
        parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")

    def handle(
        self,
        *args: Any,
        since: str | None,
        until: str | None,
        owner: str | None,
        event: str | None,
        format: str,
        **options: Any,
    ) -> None:
        events = AuditEvent.objects.order_by("created_at", "id")
        if since:
            events = events.filter(created_at__gte=_day(since, end=False))
        if until:
            events = events.filter(created_at__lte=_day(until, end=True))
        if since and until and _day(since, end=False) > _day(until, end=True):
            raise CommandError("--since is after --until")
        if owner:
            events = events.filter(owner_id=owner)
        if event:
            events = events.filter(event=event)
        writer = csv.writer(self.stdout) if format == "csv" else None
        if writer:
            writer.writerow(FIELDS)
        for item in events.iterator(chunk_size=1000):
            row = {
                "id": item.id,
                "created_at": item.created_at.isoformat(),
                "event": item.event,
                "owner_id": item.owner_id,
                "actor": item.actor,
                "target": item.target,
                "details": item.details,
            }
            if writer:
                writer.writerow([json.dumps(row[f]) if f == "details" else row[f] for f in FIELDS])
            else:
                self.stdout.write(json.dumps(row))
