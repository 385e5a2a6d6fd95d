"""The mock service of the unit tests: a scripted httpx.MockTransport handler."""

from collections.abc import Callable

import httpx

Handler = Callable[[httpx.Request], httpx.Response]

MEMORY = {
    "id": "6f1c2a4e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
    "owner_id": "acme",
    "user_id": "user_123",
    "type": "preference",
    "content": "User prefers dark mode",
    "confidence": 1.0,
    "key": "ui_theme",
    "value": "dark",
    "importance": 4,
    "metadata": {"source": "settings"},
    "ttl_seconds": None,
    "expires_at": None,
    "ingestion_mode": "explicit",
    "is_deleted": False,
    "created_at": "2026-02-04T12:00:00Z",
    "updated_at": "2026-02-04T12:00:01.500000Z",
}


def memory(**changes) -> dict:
    return {**MEMORY, **changes}


class Recorder:
    """A MockTransport handler that records each request and answers from a script (one
    response or exception per request, the last one repeated)."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            # A fresh response each time: a response object can be read only once.
            return httpx.Response(
                answer.status_code, headers=answer.headers, content=answer.content
            )
        return answer(request)
