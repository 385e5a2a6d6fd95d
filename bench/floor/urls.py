from django.urls import include, path

from floor.views import FloorCreateView

urlpatterns = [
    path("floor/memory", FloorCreateView.as_view(), name="floor-create"),
    path("", include("memoryproject.urls")),
]
