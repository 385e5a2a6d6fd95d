import hashlib
import hmac
import uuid
from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

KEY_PREFIX = "aimsk_live_"


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


class ApiKey(models.Model):
    """A tenant's credential. Only the SHA-256 hash and a short prefix are stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.CharField(max_length=255, db_index=True)
    prefix = models.CharField(max_length=24, help_text="First characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    rate_limit_per_minute = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1)]
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    # DRF treats request.user as a principal; the key is that principal.
    is_authenticated = True

    class Meta:
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(
                condition=Q(rate_limit_per_minute__gt=0), name="apikey_rate_limit_positive"
            ),
            models.CheckConstraint(condition=~Q(owner_id=""), name="apikey_owner_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.owner_id})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class RateLimitBucket(models.Model):
    """Token bucket state for the database backend (used when REDIS_URL is unset)."""

    key_id = models.UUIDField(primary_key=True)
    tokens = models.FloatField()
    updated_at = models.FloatField(help_text="Unix seconds, database clock.")
    allowed = models.BooleanField(default=True, help_text="Outcome of the last request.")


class AuditEvent(models.Model):
    """Append-only record of sensitive operations: who, what, when. Never memory content."""

    class Event(models.TextChoices):
        KEY_CREATED = "key_created"
        KEY_REVOKED = "key_revoked"
        MEMORY_HARD_DELETED = "memory_hard_deleted"
        GDPR_EXPORT = "gdpr_export"
        GDPR_ERASE = "gdpr_erase"

    id = models.BigAutoField(primary_key=True)
    event = models.CharField(max_length=32, choices=Event.choices, db_index=True)
    owner_id = models.CharField(max_length=255, db_index=True)
    actor = models.CharField(max_length=64, help_text="API key id, or 'operator'.")
    target = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} {self.owner_id} {self.created_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit events are append-only")


def hash_identifier(value: str) -> str:
    """Keyed hash of an end-user id, so the audit log never keeps it in the clear."""
    return hmac.new(
        settings.SECRET_KEY.encode(), value.encode("utf-8"), hashlib.sha256
    ).hexdigest()[:32]
