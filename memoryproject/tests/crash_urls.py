"""A URL configuration for tests only: the service's own URLs, plus a view that crashes
(to see the JSON 500) and one that warns (to see the warning logged as JSON)."""

import warnings

from django.http import JsonResponse
from django.urls import path

from memoryproject.urls import urlpatterns as service_urlpatterns


def crash(request):
    raise RuntimeError("boom with secret detail")


def warn(request):
    warnings.warn("a warning from a view", UserWarning, stacklevel=1)
    return JsonResponse({"warned": True})


urlpatterns = [path("crash", crash), path("warn", warn), *service_urlpatterns]
