from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from memories import services, text
from memories.models import Memory, MemoryEmbedding, MemoryTerm
from memories.retrieval import build_summary
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db


def context(client, query, user_id="u1", **extra):
    response = client.post(
        "/api/v1/memory/context", {"user_id": user_id, "query": query, **extra}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()


def contents(body):
    return [m["content"] for m in body["memories"]]


def index_snapshot():
    terms = sorted(
        MemoryTerm.objects.values_list(
            "memory_id", "owner_id", "user_id", "term", "tf", "doc_length", "expires_at"
        ),
        key=repr,
    )
    counts = sorted(Memory.objects.values_list("id", "term_count", "content_hash"))
    return terms, counts


def test_matching_memory_ranks_first_with_full_contract_fields(client):
    make_memory("acme", user_id="u1", content="Works as a pediatric nurse in Lisbon")
    make_memory("acme", user_id="u1", content="Has a beagle called Rex", importance=5)
    make_memory("acme", user_id="u1", content="Enjoys hiking in the mountains")
    body = context(client, "What does she do for a living? Is she a nurse?", limit=2)
    first = body["memories"][0]
    assert first["content"] == "Works as a pediatric nurse in Lisbon"
    assert first["memory_type"] == first["type"] == "fact"
    assert 0 < first["relevance_score"] <= 1
    assert first["relevance_score"] > body["memories"][1]["relevance_score"]
    assert {"id", "owner_id", "user_id", "created_at", "metadata", "ingestion_mode"} <= set(first)
    assert (
        body["context_summary"].splitlines()[0] == "- (fact) Works as a pediatric nurse in Lisbon"
    )


def test_inflected_and_related_words_match(client):
    make_memory("acme", user_id="u1", content="Ran the Boston marathon last spring")
    make_memory("acme", user_id="u1", content="Allergic to peanuts")
    make_memory("acme", user_id="u1", content="Prefers window seats on flights", importance=5)
    assert contents(context(client, "running races?", limit=1)) == [
        "Ran the Boston marathon last spring"
    ]
    assert contents(context(client, "any food allergies?", limit=1)) == ["Allergic to peanuts"]


def test_generic_question_falls_back_to_importance_then_recency(client):
    now = timezone.now()
    make_memory(
        "acme", user_id="u1", content="Old low note", importance=1, now=now - timedelta(days=9)
    )
    make_memory(
        "acme",
        user_id="u1",
        content="Prefers concise answers",
        importance=5,
        now=now - timedelta(days=5),
    )
    make_memory("acme", user_id="u1", content="Recent medium note", importance=3, now=now)
    make_memory(
        "acme", user_id="u1", content="Older medium note", importance=3, now=now - timedelta(days=3)
    )
    body = context(client, "zzqx", limit=4)
    assert contents(body) == [
        "Prefers concise answers",
        "Recent medium note",
        "Older medium note",
        "Old low note",
    ]
    scores = [m["relevance_score"] for m in body["memories"]]
    assert scores == sorted(scores, reverse=True)
    assert contents(context(client, "", limit=2)) == [
        "Prefers concise answers",
        "Recent medium note",
    ]


def test_deleted_expired_and_other_scopes_never_returned(client, client_for, other_key):
    past = timezone.now() - timedelta(hours=2)
    make_memory("acme", user_id="u1", content="tea lover soft deleted")
    services.soft_delete_memory(memory=Memory.objects.get(user_id="u1"))
    make_memory("acme", user_id="u1", content="tea lover expired", ttl_seconds=60, now=past)
    make_memory("acme", user_id="u2", content="tea lover other user")
    make_memory("globex", user_id="u1", content="tea lover other owner")
    make_memory("acme", user_id="u1", content="tea lover live")
    assert contents(context(client, "tea lover", limit=10)) == ["tea lover live"]
    assert contents(context(client_for(other_key), "tea lover", limit=10)) == [
        "tea lover other owner"
    ]


def test_same_words_hash_differently_per_owner_and_user(client):
    a = make_memory("acme", user_id="u1", content="kayak")
    b = make_memory("acme", user_id="u2", content="kayak")
    c = make_memory("globex", user_id="u1", content="kayak")
    hashes = [
        set(MemoryTerm.objects.filter(memory=m).values_list("term", flat=True)) for m in (a, b, c)
    ]
    assert hashes[0].isdisjoint(hashes[1])
    assert hashes[0].isdisjoint(hashes[2])


def test_filters_limit_and_summary_budget(client):
    make_memory("acme", user_id="u1", type="preference", content="Likes green tea", importance=2)
    make_memory("acme", user_id="u1", type="fact", content="Drinks tea daily", importance=5)
    assert contents(context(client, "tea", types=["preference"])) == ["Likes green tea"]
    assert contents(context(client, "tea", min_importance=4)) == ["Drinks tea daily"]
    body = context(client, "tea", max_chars=20)
    assert len(body["context_summary"]) == 20
    assert body["context_summary"].endswith("…")
    assert len(context(client, "tea", limit=1)["memories"]) == 1


def test_summary_is_deterministic_and_within_budget():
    memories = [Memory(type="fact", content=f"memory number {i} " * 3) for i in range(10)]
    for budget in (1, 16, 17, 60, 200, 10_000):
        summary = build_summary(memories, budget)
        assert len(summary) <= budget
        assert summary == build_summary(memories, budget)
    assert build_summary(memories, 10_000).count("\n") == 9


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"query": "x"},
        {"user_id": "u1", "limit": 0},
        {"user_id": "u1", "limit": 51},
        {"user_id": "u1", "limit": True},
        {"user_id": "u1", "types": ["opinion"]},
        {"user_id": "u1", "types": "fact"},
        {"user_id": "u1", "query": 5},
        {"user_id": "u1", "max_chars": 0},
        {"user_id": "u1\x00"},
        [],
    ],
)
def test_bad_context_input_is_400(client, body):
    response = client.post("/api/v1/memory/context", body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"]


def test_context_query_count_is_constant(client, django_assert_max_num_queries):
    for i in range(60):
        make_memory("acme", user_id="u1", content=f"note {i} about tea and coffee")
    # Authentication (key, last use), the rate-limit bucket, the ranking statement, its
    # feedback round (pseudo-relevance feedback), the chosen rows.
    with django_assert_max_num_queries(6):
        body = context(client, "tea coffee", limit=10)
    assert len(body["memories"]) == 10


def test_index_follows_every_write_path(client):
    memory = make_memory("acme", user_id="u1", content="Plays the violin")
    assert contents(context(client, "violin")) == ["Plays the violin"]
    client.patch(f"/api/v1/memory/{memory.id}", {"content": "Plays the cello"}, format="json")
    assert contents(context(client, "violin cello", limit=1)) == ["Plays the cello"]
    assert context(client, "violin")["memories"][0]["relevance_score"] < 0.8  # fallback only
    client.delete(f"/api/v1/memory/{memory.id}/soft")
    assert not MemoryTerm.objects.filter(memory_id=memory.id).exists()
    other = make_memory("acme", user_id="u1", content="Speaks Japanese")
    client.delete(f"/api/v1/memory/{other.id}")
    assert not MemoryTerm.objects.exists()


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["create", "patch_content", "patch_key", "patch_other", "patch_expiry", "soft", "hard"]
        ),
        st.integers(min_value=0, max_value=5),
        st.sampled_from(["Loves jazz music", "Works remotely", "Café in Paris", "ran 5 km", ""]),
    ),
    min_size=1,
    max_size=12,
)


@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=ACTIONS)
def test_index_after_random_writes_equals_a_rebuild(db, actions):
    Memory.objects.all().delete()
    for action, pick, words in actions:
        live = list(Memory.objects.filter(is_deleted=False).order_by("created_at"))
        target = live[pick % len(live)] if live else None
        content = words or "plain note"
        if action == "create" or target is None:
            make_memory("acme", user_id=f"u{pick % 2}", content=content)
        elif action == "patch_content":
            services.update_memory(memory=target, data={"content": content})
        elif action == "patch_key":
            services.update_memory(memory=target, data={"key": f"music_{pick}"})
        elif action == "patch_other":
            services.update_memory(memory=target, data={"importance": 1 + pick % 5})
        elif action == "patch_expiry":
            expires_at = timezone.now() + timedelta(hours=pick - 2)  # some already expired
            services.update_memory(memory=target, data={"expires_at": expires_at})
        elif action == "soft":
            services.soft_delete_memory(memory=target)
        else:
            services.hard_delete_memory(memory=target, actor="test")
    incremental = index_snapshot()
    call_command("reindex_memories", "--all", stdout=None, stderr=None)
    assert index_snapshot() == incremental


def test_reindex_command_rebuilds_stale_rows(client, capsys):
    memory = make_memory("acme", user_id="u1", content="Collects vinyl records")
    MemoryTerm.objects.all().delete()
    Memory.objects.filter(pk=memory.pk).update(index_version=text.INDEX_VERSION - 1)
    call_command("reindex_memories")
    assert "1 stale" in capsys.readouterr().out
    assert Memory.objects.get(pk=memory.pk).index_version == text.INDEX_VERSION
    assert contents(context(client, "vinyl"))[0] == "Collects vinyl records"


def test_embeddings_rerank_semantic_matches(client, embedding_server):
    make_memory("acme", user_id="u1", content="Never eats meat", importance=1)
    make_memory("acme", user_id="u1", content="Has a beagle", importance=5)
    call_command("backfill_embeddings")  # vectors are made after the response
    assert MemoryEmbedding.objects.count() == 2
    assert "meat" not in repr(list(MemoryEmbedding.objects.values_list("vector")))  # no text
    body = context(client, "what should I cook for dinner", limit=1)
    assert contents(body) == ["Never eats meat"]
    sent = [r["input"] for r in embedding_server.embedding_requests()]
    assert ["what should I cook for dinner"] in sent


def test_embedding_failure_degrades_to_lexical(client, embedding_server):
    embedding_server.embedding_status = 500
    make_memory("acme", user_id="u1", content="Never eats meat")
    make_memory("acme", user_id="u1", content="Has a beagle", importance=5)
    with pytest.raises(CommandError, match="run the command again"):
        call_command("backfill_embeddings")
    assert MemoryEmbedding.objects.count() == 0
    assert contents(context(client, "beagle", limit=1)) == ["Has a beagle"]


def test_memory_without_a_vector_is_scored_on_the_blended_scale(client, embedding_server):
    make_memory("acme", user_id="u1", content="Never eats meat")
    call_command("backfill_embeddings")  # vectors are made after the response
    # This one has no vector (its embedding failed, or is not made yet).
    make_memory("acme", user_id="u1", content="Has a beagle")
    assert MemoryEmbedding.objects.count() == 1
    lexical_only = context(client, "beagle", user_id="u1")  # embeddings still on
    beagle = lexical_only["memories"][0]
    assert beagle["content"] == "Has a beagle"
    # It counts as the others' median similarity (here: the meat memory's, near 0) rather
    # than keeping its pure lexical score (about 0.95) beside blended ones.
    assert beagle["relevance_score"] < 0.6
    assert beagle["relevance_score"] > lexical_only["memories"][1]["relevance_score"]
