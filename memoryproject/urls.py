from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from memoryproject import errors
from memoryproject.views import HealthView, StatusView

urlpatterns = [
    path("", StatusView.as_view(), name="status"),
    path("health", HealthView.as_view(), name="health"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("admin/", include("apikeys.urls")),  # the login, behind the lockout
    path("admin/", admin.site.urls),
    # chat first: its /memory/extract must win over the memories app's catch-all for
    # other paths under memory/ (a malformed memory id never matches <memory_id:>).
    path("api/v1/", include("chat.urls")),
    path("api/v1/", include("memories.urls")),
    path("api/v1/gdpr/", include("gdpr.urls")),
    # Anything else is a JSON 404, in DEBUG too (Django's debug 404 page is HTML), for every
    # method: CSRF would otherwise refuse a POST to an unknown path with a 403.
    re_path(r"^", csrf_exempt(errors.handler404)),
]

handler400 = errors.handler400
handler403 = errors.handler403
handler404 = errors.handler404
handler500 = errors.handler500
