import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.models import ApiKey
from apikeys.services import revoke_api_key


class Command(BaseCommand):
    help = "Revoke the API key KEY_ID for good (it stays stored for audit)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_id")

    def handle(self, *args: Any, key_id: str, **options: Any) -> None:
        try:
            parsed = uuid.UUID(key_id)
        except ValueError:
            raise CommandError(f"Not a key id (UUID): {key_id!r}") from None
        try:
            api_key = revoke_api_key(key_id=parsed)
        except ApiKey.DoesNotExist:
            raise CommandError(f"No API key with id {parsed}") from None
        self.stdout.write(
            f"API key {api_key.id} ({api_key.prefix}…, owner {api_key.owner_id}) is revoked "
            f"since {api_key.revoked_at:%Y-%m-%d %H:%M:%SZ}."
        )
