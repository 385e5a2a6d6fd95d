from django.urls import include, path

from floor.views import FloorMemoryView
from memoryproject.urls import handler400, handler403, handler404, handler500  # noqa: F401

urlpatterns = [
    path("floor/memory", FloorMemoryView.as_view(), name="floor-memory"),
    path("", include("memoryproject.urls")),
]
