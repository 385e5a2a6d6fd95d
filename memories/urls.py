from django.urls import path

from memories import views

urlpatterns = [
    path("memory", views.MemoryCollectionView.as_view(), name="memory-collection"),
    path("memory/context", views.MemoryContextView.as_view(), name="memory-context"),
    path("memory/stats", views.MemoryStatsView.as_view(), name="memory-stats"),
    path("memory/<str:memory_id>", views.MemoryDetailView.as_view(), name="memory-detail"),
    path("memory/<str:memory_id>/soft", views.MemorySoftDeleteView.as_view(), name="memory-soft"),
]
