"""A URL configuration for tests only: a view that crashes, to see the JSON 500."""

from django.urls import path


def crash(request):
    raise RuntimeError("boom with secret detail")


urlpatterns = [path("crash", crash)]
