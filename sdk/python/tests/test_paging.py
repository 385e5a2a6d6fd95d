import httpx
import pytest

from tests.mockapi import Recorder, memory

PAGES = {
    None: ([memory(id="m5", content="five"), memory(id="m4", content="four")], "c2"),
    "c2": ([memory(id="m3", content="three"), memory(id="m2", content="two")], "c3"),
    "c3": ([memory(id="m1", content="one")], None),
}


def paged(request: httpx.Request) -> httpx.Response:
    rows, next_cursor = PAGES[request.url.params.get("cursor")]
    headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
    if next_cursor:
        headers["Link"] = f'<{request.url.copy_set_param("cursor", next_cursor)}>; rel="next"'
    return httpx.Response(200, json=rows, headers=headers)


def test_list_follows_the_cursor_to_the_end(sync_client):
    recorder = Recorder(paged)
    client = sync_client(recorder)

    memories = list(client.memories.list(user_id="user_123", page_size=2))

    assert [m.id for m in memories] == ["m5", "m4", "m3", "m2", "m1"]
    assert [r.url.params.get("cursor") for r in recorder.requests] == [None, "c2", "c3"]
    assert all(r.url.params["limit"] == "2" for r in recorder.requests)
    assert all(r.url.params["user_id"] == "user_123" for r in recorder.requests)


def test_list_is_lazy(sync_client):
    recorder = Recorder(paged)
    client = sync_client(recorder)

    memories = client.memories.list(user_id="user_123", page_size=2)
    assert recorder.requests == []
    assert next(memories).id == "m5"
    assert next(memories).id == "m4"
    assert len(recorder.requests) == 1
    assert next(memories).id == "m3"
    assert len(recorder.requests) == 2


def test_list_passes_filters_and_stops_at_limit(sync_client):
    recorder = Recorder(paged)
    client = sync_client(recorder)

    memories = list(
        client.memories.list(
            user_id="u", type="preference", key="ui_theme", min_importance=3, page_size=2, limit=3
        )
    )

    assert [m.id for m in memories] == ["m5", "m4", "m3"]
    params = recorder.requests[0].url.params
    assert (params["type"], params["key"], params["min_importance"]) == (
        "preference",
        "ui_theme",
        "3",
    )
    assert len(recorder.requests) == 2


def test_list_page_gives_one_page_and_its_cursor(sync_client):
    recorder = Recorder(paged)
    client = sync_client(recorder)

    first = client.memories.list_page(user_id="u", page_size=2)
    last = client.memories.list_page(user_id="u", page_size=2, cursor="c3")

    assert [m.content for m in first.memories] == ["five", "four"]
    assert first.next_cursor == "c2"
    assert [m.content for m in last.memories] == ["one"]
    assert last.next_cursor is None


def test_list_of_no_memories_is_empty(sync_client):
    client = sync_client(Recorder(httpx.Response(200, json=[])))

    assert list(client.memories.list(user_id="nobody")) == []


@pytest.mark.anyio
async def test_async_list_follows_the_cursor(async_client):
    recorder = Recorder(paged)
    async with async_client(recorder) as client:
        ids = [m.id async for m in client.memories.list(user_id="u", page_size=2)]

    assert ids == ["m5", "m4", "m3", "m2", "m1"]
    assert len(recorder.requests) == 3
