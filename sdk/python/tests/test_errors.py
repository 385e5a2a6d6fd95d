import httpx
import pytest

import aimemory
from aimemory import (
    AIMemoryError,
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from tests.mockapi import Recorder

STATUS_CLASSES = [
    (400, ValidationError),
    (401, AuthenticationError),
    (403, APIStatusError),
    (404, NotFoundError),
    (405, APIStatusError),
    (409, APIStatusError),
    (413, APIStatusError),
    (422, APIStatusError),
    (429, RateLimitError),
    (500, APIStatusError),
    (502, APIStatusError),
    (503, ServiceUnavailableError),
    (504, APIStatusError),
]


@pytest.mark.parametrize(("status", "error_class"), STATUS_CLASSES)
def test_every_error_status_raises_its_class_with_status_and_detail(
    sync_client, status, error_class
):
    recorder = Recorder(httpx.Response(status, json={"detail": f"says {status}"}))
    client = sync_client(recorder, max_retries=0)

    with pytest.raises(error_class) as caught:
        client.memories.get("6f1c2a4e-1d2b-4c3d-8e9f-0a1b2c3d4e5f")

    error = caught.value
    assert type(error) is error_class
    assert isinstance(error, APIStatusError)
    assert isinstance(error, AIMemoryError)
    assert error.status_code == status
    assert error.detail == f"says {status}"
    assert str(status) in str(error)
    assert f"says {status}" in str(error)
    assert len(recorder.requests) == 1


def test_validation_error_keeps_every_field_message(sync_client):
    body = {
        "detail": "importance: Ensure this value is less than or equal to 5.",
        "errors": {"importance": ["Ensure this value is less than or equal to 5."]},
    }
    client = sync_client(Recorder(httpx.Response(400, json=body)))

    with pytest.raises(ValidationError) as caught:
        client.memories.create(user_id="u", type="fact", content="x", importance=9)

    assert caught.value.detail == body["detail"]
    assert caught.value.errors == body["errors"]


def test_rate_limit_error_carries_retry_after(sync_client):
    answer = httpx.Response(
        429, json={"detail": "Rate limit exceeded"}, headers={"Retry-After": "7"}
    )
    client = sync_client(Recorder(answer), max_retries=0)

    with pytest.raises(RateLimitError) as caught:
        client.memories.stats(user_id="u")

    assert caught.value.retry_after == 7
    assert caught.value.detail == "Rate limit exceeded"


def test_error_without_json_body_gets_a_detail_anyway(sync_client):
    client = sync_client(Recorder(httpx.Response(502, text="<html>bad gateway</html>")))

    with pytest.raises(APIStatusError) as caught:
        client.memories.stats(user_id="u")

    assert caught.value.status_code == 502
    assert caught.value.detail == "<html>bad gateway</html>"
    empty = sync_client(Recorder(httpx.Response(500)))
    with pytest.raises(APIStatusError) as caught:
        empty.memories.stats(user_id="u")
    assert caught.value.detail == "Internal Server Error"


def test_success_with_an_unexpected_body_is_a_response_error(sync_client):
    client = sync_client(Recorder(httpx.Response(200, text="<html>captive portal</html>")))

    with pytest.raises(APIResponseError):
        client.memories.get("x")


def test_connection_failure_is_a_connection_error(sync_client):
    client = sync_client(Recorder(httpx.ConnectError("refused")), max_retries=0)

    with pytest.raises(APIConnectionError):
        client.memories.get("x")


def test_timeout_is_a_timeout_error(sync_client):
    client = sync_client(Recorder(httpx.ReadTimeout("slow")), max_retries=0)

    with pytest.raises(APITimeoutError) as caught:
        client.memories.context(user_id="u", query="q")
    assert isinstance(caught.value, APIConnectionError)


def test_every_exception_is_importable_from_the_package():
    for name in [
        "AIMemoryError",
        "AuthenticationError",
        "NotFoundError",
        "ValidationError",
        "RateLimitError",
        "ServiceUnavailableError",
        "APIStatusError",
    ]:
        error_class = getattr(aimemory, name)
        assert issubclass(error_class, aimemory.AIMemoryError)


@pytest.mark.anyio
async def test_async_client_maps_errors_the_same_way(async_client):
    recorder = Recorder(httpx.Response(404, json={"detail": "Not found."}))
    async with async_client(recorder) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.memories.get("x")
    assert caught.value.detail == "Not found."
