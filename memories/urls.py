import uuid

from django.urls import path, re_path, register_converter

from memories import views


class MemoryIdConverter:
    """Any spelling uuid.UUID reads (upper case, braces, no hyphens), parsed once here; a
    segment that is not a UUID does not match, so `memory/batch` and the like are free."""

    regex = "[^/]+"  # as <str:>; to_python refuses what is not a UUID

    def to_python(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)  # ValueError: this route does not match

    def to_url(self, value) -> str:
        return str(value)


register_converter(MemoryIdConverter, "memory_id")

urlpatterns = [
    path("memory", views.MemoryCollectionView.as_view(), name="memory-collection"),
    path("memory/batch", views.MemoryBatchView.as_view(), name="memory-batch"),
    path("memory/batch/delete", views.MemoryBatchDeleteView.as_view(), name="memory-batch-delete"),
    path("memory/upsert", views.MemoryUpsertView.as_view(), name="memory-upsert"),
    path("memory/context", views.MemoryContextView.as_view(), name="memory-context"),
    path("memory/stats", views.MemoryStatsView.as_view(), name="memory-stats"),
    path("memory/<memory_id:memory_id>", views.MemoryDetailView.as_view(), name="memory-detail"),
    path(
        "memory/<memory_id:memory_id>/soft",
        views.MemorySoftDeleteView.as_view(),
        name="memory-soft",
    ),
    path(
        "memory/<memory_id:memory_id>/history",
        views.MemoryHistoryView.as_view(),
        name="memory-history",
    ),
    # Any other path under memory/ (a newline included, which <path:> would not match).
    re_path(r"^memory/(?P<rest>[\s\S]+)\Z", views.MemoryNotFoundView.as_view()),
]
