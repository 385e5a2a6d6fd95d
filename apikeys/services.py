import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from apikeys.models import KEY_PREFIX, ApiKey, AuditEvent, hash_key

OPERATOR = "operator"


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    plaintext: str


def record_event(
    *,
    event: str,
    owner_id: str,
    actor: str,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event; details must never hold secrets or memory content."""
    return AuditEvent.objects.create(
        event=event, owner_id=owner_id, actor=actor, target=target, details=details or {}
    )


def record_events(
    *,
    event: str,
    owner_id: str,
    actor: str,
    targets: list[str],
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit event per target, in one statement (same rules as record_event)."""
    AuditEvent.objects.bulk_create(
        AuditEvent(
            event=event, owner_id=owner_id, actor=actor, target=target, details=details or {}
        )
        for target in targets
    )


def create_api_key(
    *, owner_id: str, rate_limit_per_minute: int = 60, metadata: dict[str, Any] | None = None
) -> IssuedKey:
    """Create a key for owner_id; the plaintext exists only in the returned value."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            owner_id=owner_id,
            prefix=plaintext[: len(KEY_PREFIX) + 6],
            key_hash=hash_key(plaintext),
            rate_limit_per_minute=rate_limit_per_minute,
            metadata=metadata or {},
        )
        record_event(
            event=AuditEvent.Event.KEY_CREATED,
            owner_id=owner_id,
            actor=OPERATOR,
            target=str(api_key.id),
            details={"rate_limit_per_minute": rate_limit_per_minute},
        )
    return IssuedKey(api_key=api_key, plaintext=plaintext)


def revoke_api_key(*, key_id: uuid.UUID, actor: str = OPERATOR) -> ApiKey:
    """Revoke for good; the row stays for audit. Revoking twice changes nothing."""
    with transaction.atomic():
        api_key = ApiKey.objects.select_for_update().get(pk=key_id)
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
            record_event(
                event=AuditEvent.Event.KEY_REVOKED,
                owner_id=api_key.owner_id,
                actor=actor,
                target=str(api_key.id),
            )
    return api_key


BOOTSTRAP_SOURCE = "API_KEY environment variable"
BOOTSTRAP_PREFIX = "env:"  # generated keys' prefixes start with aimsk_live_


def ensure_bootstrap_key(*, plaintext: str, owner_id: str) -> ApiKey:
    """The optional API_KEY from the environment, stored (hashed) on first use. Its prefix
    is not taken from the secret, which may be short and chosen by hand."""
    key_hash = hash_key(plaintext)
    api_key, created = ApiKey.objects.get_or_create(
        key_hash=key_hash,
        defaults={
            "owner_id": owner_id,
            "prefix": BOOTSTRAP_PREFIX + key_hash[:6],
            "metadata": {"source": BOOTSTRAP_SOURCE},
        },
    )
    if created:
        record_event(
            event=AuditEvent.Event.KEY_CREATED,
            owner_id=owner_id,
            actor=OPERATOR,
            target=str(api_key.id),
            details={"source": BOOTSTRAP_SOURCE},
        )
    return api_key
