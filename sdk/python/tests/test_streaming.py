import json

import httpx
import pytest

from aimemory import APIConnectionError, APIStatusError, ChatResponse
from aimemory._core import ServerSentEvent, SSEDecoder
from tests.mockapi import Recorder

DONE = {
    "response": "Use dark mode.",
    "model": "gpt-4o-mini",
    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    "memories_used": [
        {"id": "m1", "type": "preference", "content": "Likes dark mode", "relevance_score": 0.9}
    ],
    "extraction": None,
    "extraction_error": None,
}


def sse(*events: tuple[str, dict]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


class ChunkedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self):
        yield from self.chunks

    async def __aiter__(self):
        for chunk in self.chunks:
            yield chunk


def chunked(body: bytes, size: int):
    def answer(request: httpx.Request) -> httpx.Response:
        parts = [body[i : i + size] for i in range(0, len(body), size)]
        return httpx.Response(
            200, headers={"Content-Type": "text/event-stream"}, stream=ChunkedStream(parts)
        )

    return answer


FULL = sse(
    ("delta", {"content": "Use "}),
    ("delta", {"content": "dark "}),
    ("delta", {"content": "mode."}),
    ("done", DONE),
)


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_stream_yields_deltas_then_the_full_answer(sync_client, size):
    recorder = Recorder(chunked(FULL, size))
    client = sync_client(recorder)

    items = list(client.chat(user_id="u", message="theme?", stream=True))

    assert items[:-1] == ["Use ", "dark ", "mode."]
    assert isinstance(items[-1], ChatResponse)
    assert items[-1].response == "Use dark mode."
    assert items[-1].memories_used[0].relevance_score == 0.9
    request = recorder.requests[0]
    assert json.loads(request.content)["stream"] is True
    assert request.headers["Accept"] == "text/event-stream"


def test_stream_keeps_the_final_answer(sync_client):
    client = sync_client(Recorder(chunked(FULL, 10)))

    with client.chat(user_id="u", message="theme?", stream=True) as stream:
        answer = stream.text()

    assert answer.response == "Use dark mode."
    assert stream.final == answer


def test_error_event_raises_the_matching_exception(sync_client):
    body = sse(
        ("delta", {"content": "Use "}),
        ("error", {"detail": "The LLM server did not answer in time."}),
    )
    client = sync_client(Recorder(chunked(body, 5)))

    stream = client.chat(user_id="u", message="theme?", stream=True)
    assert next(stream) == "Use "
    with pytest.raises(APIStatusError) as caught:
        next(stream)

    assert caught.value.detail == "The LLM server did not answer in time."
    assert caught.value.status_code == 502


def test_error_event_with_a_status_maps_by_status(sync_client):
    body = sse(("error", {"detail": "LLM timed out", "status": 504}))
    client = sync_client(Recorder(chunked(body, 5)))

    with pytest.raises(APIStatusError) as caught:
        list(client.chat(user_id="u", message="theme?", stream=True))

    assert caught.value.status_code == 504


@pytest.mark.parametrize("cut", [0, 10, len(FULL) // 2, len(FULL) - 30, len(FULL) - 1])
def test_a_stream_cut_mid_event_raises_instead_of_ending_quietly(sync_client, cut):
    client = sync_client(Recorder(chunked(FULL[:cut], 3)))

    with pytest.raises(APIConnectionError):
        list(client.chat(user_id="u", message="theme?", stream=True))


def test_an_error_before_the_stream_starts_is_a_plain_error(sync_client):
    answer = httpx.Response(503, json={"detail": "The LLM is not configured."})
    client = sync_client(Recorder(answer), max_retries=0)

    with pytest.raises(APIStatusError) as caught:
        client.chat(user_id="u", message="theme?", stream=True)

    assert caught.value.status_code == 503
    assert caught.value.detail == "The LLM is not configured."


def test_sse_decoder_handles_comments_multiline_data_and_crlf():
    decoder = SSEDecoder()
    lines = [": keep-alive", "event: delta", 'data: {"a":', "data: 1}", "", "", "data:x", ""]
    events = [e for e in (decoder.feed(line) for line in lines) if e is not None]

    assert events == [ServerSentEvent("delta", '{"a":\n1}'), ServerSentEvent("message", "x")]


@pytest.mark.anyio
@pytest.mark.parametrize("size", [1, 4096])
async def test_async_stream_yields_deltas_then_the_full_answer(async_client, size):
    async with async_client(Recorder(chunked(FULL, size))) as client:
        stream = await client.chat(user_id="u", message="theme?", stream=True)
        items = [item async for item in stream]

    assert items[:-1] == ["Use ", "dark ", "mode."]
    assert isinstance(items[-1], ChatResponse)


@pytest.mark.anyio
async def test_async_stream_cut_mid_event_raises(async_client):
    async with async_client(Recorder(chunked(FULL[:-5], 16))) as client:
        stream = await client.chat(user_id="u", message="theme?", stream=True)
        with pytest.raises(APIConnectionError):
            async for _ in stream:
                pass


def test_crlf_line_endings_are_understood(sync_client):
    body = FULL.replace(b"\n", b"\r\n")
    client = sync_client(Recorder(chunked(body, 3)))

    items = list(client.chat(user_id="u", message="theme?", stream=True))

    assert items[-1].response == "Use dark mode."
