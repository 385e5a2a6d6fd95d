from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class RateLimitHeadersMiddleware:
    """Adds the X-RateLimit-* headers to every response of a request that took a token."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        decision = getattr(request, "ratelimit", None)
        if decision is not None:
            for name, value in decision.headers().items():
                response[name] = value
            if not decision.allowed:
                response["Retry-After"] = str(decision.retry_after)
        return response
