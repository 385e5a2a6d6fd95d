from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from apikeys.models import ApiKey, AuditEvent
from apikeys.services import OPERATOR, revoke_api_key


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic in the stubs only
    """Keys are created by `manage.py generate_api_key`; the secret is never shown."""

    list_display = [
        "prefix",
        "owner_id",
        "rate_limit_per_minute",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["owner_id", "prefix", "=id"]
    readonly_fields = ["id", "owner_id", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = [*readonly_fields[:3], "rate_limit_per_minute", "metadata", *readonly_fields[3:]]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # revoked keys stay for audit

    @admin.action(description="Revoke selected keys (cannot be undone)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset.filter(revoked_at__isnull=True):
            revoke_api_key(key_id=api_key.pk, actor=f"{OPERATOR}:{request.user.get_username()}")
        self.message_user(request, "Selected keys are revoked.", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic in the stubs only
    list_display = ["created_at", "event", "owner_id", "actor", "target"]
    list_filter = ["event", "created_at", "owner_id"]
    search_fields = ["owner_id", "target", "actor"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
