"""Listing: newest first, limits, filters, cursor paging over every live memory exactly
once; and list, stats and create cost the same number of queries for 1 or 50 memories."""

import base64
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from memories import services
from memories.tests.factories import make_memory

URL = "/api/v1/memory"


def make_many(count: int, owner_id: str = "acme", user_id: str = "user_1", **fields) -> list:
    """count memories one second apart, oldest first."""
    start = timezone.now() - timedelta(days=1)
    return [
        make_memory(
            owner_id,
            user_id=user_id,
            content=f"memory number {n}",
            now=start + timedelta(seconds=n),
            **fields,
        )
        for n in range(count)
    ]


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert isinstance(body, list)
    return [m["id"] for m in body]


def next_link(response) -> str | None:
    link = response.get("Link")
    if link is None:
        return None
    url, rel = link.split(";")
    assert rel.strip() == 'rel="next"'
    return url.strip().removeprefix("<").removesuffix(">")


# --- order and limit ------------------------------------------------------------------


def test_newest_first(client):
    memories = make_many(5)
    assert ids(client.get(URL, {"user_id": "user_1"})) == [str(m.id) for m in reversed(memories)]


def test_empty_list_is_an_empty_array_without_link(client):
    response = client.get(URL, {"user_id": "user_1"})
    assert response.json() == []
    assert "Link" not in response
    assert "X-Next-Cursor" not in response


def test_default_limit_is_20(client):
    memories = make_many(25)
    response = client.get(URL, {"user_id": "user_1"})
    assert ids(response) == [str(m.id) for m in reversed(memories)][:20]
    assert next_link(response) is not None


def test_limit_100_is_the_maximum(client):
    make_many(101)
    response = client.get(URL, {"user_id": "user_1", "limit": 100})
    assert len(ids(response)) == 100
    assert next_link(response) is not None


def test_exact_page_has_no_next_link(client):
    make_many(20)
    response = client.get(URL, {"user_id": "user_1"})
    assert len(ids(response)) == 20
    assert "Link" not in response


@pytest.mark.parametrize("limit", ["0", "-1", "101", "1000", "abc", "1.5", ""])
def test_limit_out_of_range_is_400(client, limit):
    make_many(2)
    response = client.get(URL, {"user_id": "user_1", "limit": limit})
    assert response.status_code == 400
    assert "limit" in response.json()["errors"]


@pytest.mark.parametrize("limit", ["1", "100"])
def test_limit_at_the_edges_is_accepted(client, limit):
    make_many(3)
    assert len(ids(client.get(URL, {"user_id": "user_1", "limit": limit}))) == min(3, int(limit))


@pytest.mark.parametrize("query", ["", "?user_id=", "?limit=5", "?user_id=" + "u" * 256])
def test_user_id_is_required(client, query):
    response = client.get(URL + query)
    assert response.status_code == 400
    assert "user_id" in response.json()["errors"]


def test_only_live_memories_of_that_user_are_listed(client):
    live = make_memory("acme", content="live")
    deleted = make_memory("acme", content="deleted")
    services.soft_delete_memory(memory=deleted)
    make_memory("acme", content="expired", ttl_seconds=1, now=timezone.now() - timedelta(hours=1))
    make_memory("acme", user_id="user_2", content="other user")
    make_memory("globex", content="other owner")
    assert ids(client.get(URL, {"user_id": "user_1"})) == [str(live.id)]


# --- filters --------------------------------------------------------------------------


@pytest.fixture
def mixed(db):
    now = timezone.now() - timedelta(hours=1)
    rows = [
        ("fact", "drink", 1),
        ("preference", "drink", 3),
        ("preference", "theme", 5),
        ("event", None, None),
        ("fact", "theme", 4),
    ]
    return [
        make_memory(
            "acme",
            type=memory_type,
            key=key,
            importance=importance,
            content=f"row {n}",
            now=now + timedelta(seconds=n),
        )
        for n, (memory_type, key, importance) in enumerate(rows)
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"type": "preference"}, [2, 1]),
        ({"type": "system"}, []),
        ({"key": "drink"}, [1, 0]),
        ({"key": "nope"}, []),
        ({"min_importance": 3}, [4, 2, 1]),
        ({"min_importance": 5}, [2]),
        ({"min_importance": 1}, [4, 2, 1, 0]),
        ({"type": "fact", "min_importance": 2}, [4]),
        ({"type": "preference", "key": "theme", "min_importance": 5}, [2]),
    ],
)
def test_filters(client, mixed, params, expected):
    response = client.get(URL, {"user_id": "user_1", **params})
    assert ids(response) == [str(mixed[n].id) for n in expected]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "opinion"}, "type"),
        ({"min_importance": 0}, "min_importance"),
        ({"min_importance": 6}, "min_importance"),
        ({"min_importance": "x"}, "min_importance"),
        ({"key": "k" * 256}, "key"),
    ],
)
def test_bad_filters_are_400(client, params, field):
    response = client.get(URL, {"user_id": "user_1", **params})
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_filters_apply_across_pages(client):
    make_many(30, importance=1)
    wanted = make_many(25, importance=4)
    seen: list[str] = []
    url = f"{URL}?user_id=user_1&min_importance=4&limit=10"
    while url:
        response = client.get(url)
        seen += ids(response)
        url = next_link(response)
    assert seen == [str(m.id) for m in reversed(wanted)]


# --- cursor paging --------------------------------------------------------------------


def test_cursor_paging_walks_every_live_memory_exactly_once(client):
    memories = make_many(45)
    pages: list[list[str]] = []
    url = f"{URL}?user_id=user_1&limit=20"
    while url:
        response = client.get(url)
        pages.append(ids(response))
        link = next_link(response)
        if link:
            query = parse_qs(urlparse(link).query)
            assert query["cursor"] == [response["X-Next-Cursor"]]
            assert query["user_id"] == ["user_1"]
            assert query["limit"] == ["20"]
            assert urlparse(link).path == URL
        url = link
    assert [len(p) for p in pages] == [20, 20, 5]
    assert [i for page in pages for i in page] == [str(m.id) for m in reversed(memories)]


def test_cursor_paging_breaks_ties_in_created_at(client):
    # Same created_at for all: order and paging fall back to the id.
    now = timezone.now() - timedelta(minutes=1)
    memories = [make_memory("acme", content=f"m {n}", now=now) for n in range(7)]
    seen: list[str] = []
    url = f"{URL}?user_id=user_1&limit=3"
    while url:
        response = client.get(url)
        seen += ids(response)
        url = next_link(response)
    assert sorted(seen) == sorted(str(m.id) for m in memories)
    assert len(seen) == len(set(seen)) == 7
    assert seen == sorted(seen, reverse=True)


def test_cursor_survives_deletes_between_pages(client):
    memories = list(reversed(make_many(6)))
    first = client.get(URL, {"user_id": "user_1", "limit": 3})
    assert ids(first) == [str(m.id) for m in memories[:3]]
    services.soft_delete_memory(memory=memories[3])
    second = client.get(next_link(first))
    assert ids(second) == [str(m.id) for m in memories[4:]]
    assert "Link" not in second


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "WyJ4IiwgInkiXQ",  # ["x", "y"]
        "WzEsIDJd",  # [1, 2]
        "eyJhIjogMX0",  # {"a": 1}
        "WyIyMDI0LTAxLTAxVDAwOjAwOjAwIiwgIjEiXQ",  # naive time, bad uuid
        "x" * 201,
        "é",
    ],
)
def test_bad_cursor_is_400(client, cursor):
    make_many(3)
    response = client.get(URL, {"user_id": "user_1", "cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()["errors"]


def test_cursor_with_nul_is_400(client):
    response = client.get(URL + "?user_id=user_1&cursor=%00")
    assert response.status_code == 400


def forged(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        forged(["2024-01-01T00:00:00+00:00", 5]),
        forged(["2024-01-01T00:00:00+00:00", {"a": 1}]),
        forged([1, "00000000-0000-0000-0000-000000000000"]),
        forged(["0001-01-01T00:00:00+14:00", "00000000-0000-0000-0000-000000000000"]),
        forged(["2024-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"]),
        forged({"a": 1}),
        "!!!",
        "",
    ],
)
def test_forged_cursor_is_400(client, cursor):
    make_memory("acme", user_id="u1")
    response = client.get("/api/v1/memory", {"user_id": "u1", "cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()["errors"]


# --- constant query counts ------------------------------------------------------------


def count_queries(call) -> int:
    call()  # warm up once-a-minute bookkeeping (key last_used_at)
    with CaptureQueriesContext(connection) as context:
        response = call()
    assert response.status_code == 200, response.content
    return len(context.captured_queries)


def test_list_costs_the_same_queries_for_1_and_50_memories(client):
    make_many(1, user_id="one")
    make_many(50, user_id="fifty", key="k", importance=3)

    one = count_queries(lambda: client.get(URL, {"user_id": "one", "limit": 100}))
    fifty = count_queries(lambda: client.get(URL, {"user_id": "fifty", "limit": 100}))

    assert one == fifty
    assert len(client.get(URL, {"user_id": "fifty", "limit": 100}).json()) == 50


def test_stats_cost_the_same_queries_for_1_and_50_memories(client):
    make_many(1, user_id="one")
    make_many(50, user_id="fifty", importance=2)
    for n, memory in enumerate(make_many(10, user_id="fifty", type="event", importance=5)):
        if n % 2:
            services.soft_delete_memory(memory=memory)

    one = count_queries(lambda: client.get(f"{URL}/stats", {"user_id": "one"}))
    fifty = count_queries(lambda: client.get(f"{URL}/stats", {"user_id": "fifty"}))

    assert one == fifty
    assert client.get(f"{URL}/stats", {"user_id": "fifty"}).json()["total"] == 55


def test_create_costs_the_same_queries_for_short_and_long_content(client):
    make_many(50, user_id="fifty")
    words = " ".join(f"word{n}" for n in range(50))

    short = count_queries(
        lambda: client.post(
            URL, {"user_id": "one", "type": "fact", "content": "tea"}, format="json"
        )
    )
    long = count_queries(
        lambda: client.post(
            URL, {"user_id": "fifty", "type": "fact", "content": words}, format="json"
        )
    )

    assert short == long
