"""Clients wired to httpx.MockTransport: each test answers requests with a script and
reads back the requests the client sent."""

import httpx
import pytest

from aimemory import AsyncMemoryClient, MemoryClient
from tests.mockapi import Recorder


@pytest.fixture
def sync_client():
    made: list[MemoryClient] = []

    def make(recorder: Recorder, **options) -> MemoryClient:
        http = httpx.Client(transport=httpx.MockTransport(recorder))
        options.setdefault("api_key", "aimsk_live_test")
        made.append(MemoryClient(http_client=http, **options))
        return made[-1]

    yield make
    for client in made:
        client._http.close()


@pytest.fixture
def async_client():
    def make(recorder: Recorder, **options) -> AsyncMemoryClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
        options.setdefault("api_key", "aimsk_live_test")
        return AsyncMemoryClient(http_client=http, **options)

    return make
