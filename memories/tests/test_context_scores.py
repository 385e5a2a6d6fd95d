"""Context scores (v1.1): relevance_score comparable across queries, min_score, and the
ranking steps that decide it (pseudo-relevance feedback keeps expansion terms hashed)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db

DIARY = [
    "Took the dog to the vet for a limp on Tuesday",
    "Booked flights to Lisbon for the spring holiday",
    "Reads crime novels before bed",
    "Plays five-a-side football on Thursday evenings",
    "Prefers green tea to coffee in the afternoon",
    "Sister Emma is getting married in June",
    "Bought a second-hand road bike",
    "Is learning Portuguese with an app",
]


def context(client, query, user_id="u1", **extra):
    response = client.post(
        "/api/v1/memory/context", {"user_id": user_id, "query": query, **extra}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()


def scores(body):
    return {m["content"]: m["relevance_score"] for m in body["memories"]}


def test_full_match_outscores_the_best_match_of_a_one_common_word_query(client):
    # INTERFACE.md "Context scores (v1.1)": for one user, a memory containing every word of
    # the query scores higher for that query than the best match of another query that
    # shares only one common word ("tea", in several memories) with any memory.
    for content in DIARY:
        make_memory("acme", user_id="u1", content=content)
    make_memory("acme", user_id="u1", content="Bought a tea set for Emma")
    make_memory("acme", user_id="u1", content="Drinks tea with breakfast")
    full = context(client, "crime novels before bed")
    assert full["memories"][0]["content"] == "Reads crime novels before bed"
    partial = context(client, "which vegetarian restaurants serve decent tea")
    best_partial = partial["memories"][0]
    assert "tea" in best_partial["content"]
    assert full["memories"][0]["relevance_score"] > best_partial["relevance_score"]
    # And not only just: the full match is near the top of the scale, the other far below.
    assert full["memories"][0]["relevance_score"] >= 0.75
    assert best_partial["relevance_score"] <= 0.5


def test_score_does_not_depend_on_how_well_other_memories_match(client):
    # Relative scores made the best hit score the same whatever it was; now the same
    # memory scores the same for the same query whether or not better matches exist.
    for content in DIARY:
        make_memory("acme", user_id="u1", content=content)
        make_memory("acme", user_id="u2", content=content)
    make_memory("acme", user_id="u2", content="Drinks green tea every afternoon at work")
    alone = scores(context(client, "green tea every afternoon", user_id="u1", limit=20))
    beaten = scores(context(client, "green tea every afternoon", user_id="u2", limit=20))
    tea = "Prefers green tea to coffee in the afternoon"
    assert max(beaten, key=beaten.get) != tea
    assert abs(alone[tea] - beaten[tea]) < 0.1


def test_a_query_that_matches_nothing_scores_low(client):
    make_memory("acme", user_id="u1", content="Reads crime novels", importance=5)
    body = context(client, "violin lessons")
    assert body["memories"][0]["content"] == "Reads crime novels"
    assert body["memories"][0]["relevance_score"] <= 0.2


def test_min_score_leaves_out_weak_matches_before_limit(client):
    for content in DIARY:
        make_memory("acme", user_id="u1", content=content)
    everything = context(client, "green tea", limit=50)
    assert len(everything["memories"]) == len(DIARY)  # v1: no cut-off without min_score
    cut = context(client, "green tea", limit=1, min_score=0.5)
    assert [m["content"] for m in cut["memories"]] == [
        "Prefers green tea to coffee in the afternoon"
    ]
    assert cut["memories"][0]["relevance_score"] >= 0.5
    assert context(client, "green tea", min_score=1)["memories"] == []
    kept = context(client, "green tea", limit=50, min_score=0)
    assert len(kept["memories"]) == len(DIARY)
    assert "coffee" in kept["context_summary"]
    assert context(client, "green tea", min_score=0.99)["context_summary"] == ""


@pytest.mark.parametrize("bad", [-0.01, 1.01, "high", None, True, [0.5]])
def test_min_score_out_of_range_or_not_a_number_is_a_400(client, bad):
    response = client.post(
        "/api/v1/memory/context",
        {"user_id": "u1", "query": "tea", "min_score": bad},
        format="json",
    )
    assert response.status_code == 400
    assert "min_score" in response.json()["errors"]


def test_feedback_finds_a_memory_through_the_best_match_and_sends_no_word(client):
    # "binoculars" is not in the query, but in the best match: the other memory that
    # mentions binoculars rises above unrelated, more important memories. Expansion stems
    # reach the database hashed, like query terms.
    make_memory("acme", user_id="u1", content="Started birdwatching with borrowed binoculars")
    make_memory("acme", user_id="u1", content="The new binoculars arrived, very sharp lenses")
    for content in DIARY:
        make_memory("acme", user_id="u1", content=content, importance=5)
    with CaptureQueriesContext(connection) as queries:
        body = context(client, "birdwatching")
    ranked = [m["content"] for m in body["memories"]]
    assert ranked[:2] == [
        "Started birdwatching with borrowed binoculars",
        "The new binoculars arrived, very sharp lenses",
    ]
    executed = " ".join(q["sql"] for q in queries.captured_queries).lower()
    assert "binocular" not in executed
    assert "birdwatch" not in executed


def test_question_words_do_not_match_memories(client):
    # "probably" shapes the question; it is not what the question is about.
    make_memory("acme", user_id="u1", content="Will probably sell the old piano")
    make_memory("acme", user_id="u1", content="Went hiking in the Alps last summer")
    body = context(client, "Would she probably go hiking?")
    assert body["memories"][0]["content"] == "Went hiking in the Alps last summer"
    assert body["memories"][1]["relevance_score"] <= 0.2  # "probably" matched nothing
