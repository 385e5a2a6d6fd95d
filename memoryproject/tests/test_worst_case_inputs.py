"""No input that the limits allow costs more than about a second of server time: every
string field of every endpoint at its maximum length, in shapes built to be worst cases
for parsers, tokenisers, the index and the ranking query."""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memories.models import MAX_CONTENT_CHARS
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db

# Generous for a shared 2-core CI machine, and still far below what any of the faults it
# guards against cost (seconds to minutes).
BOUND_SECONDS = 1.5


def shapes(length: int) -> dict[str, str]:
    """Strings of exactly `length` characters that stress a different part each."""
    cjk = " ".join(map(chr, range(0x4E00, 0x4E00 + length)))  # distinct one-letter words
    consonants = "bcdfghjklmnpqrtvwxz"
    words = " ".join(a + b + c for a in consonants for b in consonants for c in consonants)
    shapes = {
        "rule-spaces": "fact:" + " " * length,
        "rule-equals": "fact:" + "=" * length,
        "rule-colons": ":" * length,
        "spaces-then-word": " " * (length - 1) + "x",
        "stop-words": "a " * length,
        "one-letter-words": cjk,
        "distinct-words": words,
        "emoji": "\U0001f600" * length,
        "combining": "e\u0301" * length,
        "brackets": "[" * length,
        "apostrophes": "'s" * length,
        "newlines": "x\n" * length,
    }
    return {name: (text * 2)[:length] for name, text in shapes.items()}


CONTENT_SHAPES = shapes(MAX_CONTENT_CHARS)
ID_SHAPES = shapes(255)


def timed(call):
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    assert response.status_code < 500, response.content[:300]
    assert elapsed < BOUND_SECONDS, f"{elapsed:.2f} s"
    return response


@pytest.fixture
def crowded_user():
    """A user whose memories share common words, so postings lists are long."""
    for n in range(60):
        make_memory("acme", user_id="u1", content=f"a note about tea and coffee number {n}")
    return "u1"


@pytest.mark.parametrize("shape", CONTENT_SHAPES)
def test_create_patch_and_context_with_the_longest_text(client, crowded_user, shape):
    text = CONTENT_SHAPES[shape]
    for mode in ("explicit", "rules"):
        body = {"user_id": crowded_user, "type": "fact", "content": text, "ingestion_mode": mode}
        created = timed(lambda body=body: client.post("/api/v1/memory", body, format="json"))
        if created.status_code != 200:
            continue
        url = f"/api/v1/memory/{created.json()['id']}"
        change = {"content": text[::-1], "value": text[:2000], "key": text[:255]}
        timed(lambda url=url, change=change: client.patch(url, change, format="json"))
    query = {"user_id": crowded_user, "query": text, "limit": 50, "max_chars": 100_000}
    response = timed(lambda: client.post("/api/v1/memory/context", query, format="json"))
    assert response.status_code == 200


@pytest.mark.parametrize("shape", ID_SHAPES)
def test_every_identifier_at_its_longest(client, shape):
    user_id = ID_SHAPES[shape]
    create = {"user_id": user_id, "type": "fact", "content": "x", "key": user_id}
    timed(lambda: client.post("/api/v1/memory", create, format="json"))
    params = {"user_id": user_id, "key": user_id, "limit": 100}
    timed(lambda: client.get("/api/v1/memory", params))
    timed(lambda: client.get("/api/v1/memory/stats", {"user_id": user_id}))
    timed(lambda: client.get("/api/v1/gdpr/export", {"user_id": user_id}))
    timed(lambda: client.delete(f"/api/v1/gdpr/delete?user_id={user_id}"))
    timed(lambda: client.get("/api/v1/memory", {"user_id": "u", "cursor": user_id[:200]}))


@pytest.mark.parametrize("shape", ["rule-spaces", "one-letter-words", "newlines", "brackets"])
def test_llm_endpoints_with_the_longest_conversation(client, llm_server, crowded_user, shape):
    text = CONTENT_SHAPES[shape]
    history = [{"role": "user", "content": text}] * 100
    chat = {"user_id": crowded_user, "message": text, "history": history, "memory_limit": 50}
    timed(lambda: client.post("/api/v1/chat", chat, format="json"))
    extract = {"user_id": crowded_user, "messages": history, "save": True}
    timed(lambda: client.post("/api/v1/memory/extract", extract, format="json"))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    unit=st.text(min_size=1, max_size=4),
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=50),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=40,
    ),
)
def test_generated_repetitions_at_the_limit(client, unit, value):
    """Any short unit repeated to the maximum length, beside any JSON value."""
    content = (unit * MAX_CONTENT_CHARS)[:MAX_CONTENT_CHARS]
    for mode in ("explicit", "rules"):
        body = {
            "user_id": "gen", "type": "fact", "content": content, "ingestion_mode": mode,
            "value": value, "metadata": {"v": value},
        }  # fmt: skip
        timed(lambda body=body: client.post("/api/v1/memory", body, format="json"))
    query = {"user_id": "gen", "query": content, "limit": 50}
    timed(lambda: client.post("/api/v1/memory/context", query, format="json"))
