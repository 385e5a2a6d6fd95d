import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.services import create_api_key


class Command(BaseCommand):
    help = "Create an API key for OWNER_ID and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("owner_id")
        parser.add_argument("--rate-limit", type=int, default=60, help="requests per minute")
        parser.add_argument("--metadata", default="{}", help="JSON object stored with the key")

    def handle(
        self, *args: Any, owner_id: str, rate_limit: int, metadata: str, **options: Any
    ) -> None:
        owner_id = owner_id.strip()
        if not owner_id or len(owner_id) > 255 or "\x00" in owner_id:
            raise CommandError("OWNER_ID must be 1 to 255 characters")
        if rate_limit <= 0:
            raise CommandError("--rate-limit must be a positive number of requests per minute")
        try:
            parsed = json.loads(metadata)
        except ValueError as exc:
            raise CommandError(f"--metadata is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise CommandError("--metadata must be a JSON object")
        issued = create_api_key(
            owner_id=owner_id, rate_limit_per_minute=rate_limit, metadata=parsed
        )
        self.stdout.write(
            "API KEY GENERATED SUCCESSFULLY\n"
            "API Key (SAVE THIS - IT WILL NOT BE SHOWN AGAIN):\n"
            f"  {issued.plaintext}\n\n"
            "Key ID:\n"
            f"  {issued.api_key.id}\n\n"
            "Owner ID:\n"
            f"  {issued.api_key.owner_id}\n\n"
            "Rate Limit:\n"
            f"  {issued.api_key.rate_limit_per_minute} requests/minute\n"
        )
