"""Idempotency-Key on the four memory writes: a retry never stores twice."""

import contextlib
import json
import threading
from datetime import timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys.services import create_api_key
from memories import crypto
from memories.idempotency import key_lock_id, request_hash
from memories.models import IdempotentRequest, IdempotentRequestUser, Memory
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db

URL = "/api/v1/memory"
BODY = {"user_id": "u1", "type": "fact", "content": "Plays the cello"}
REUSED = {"detail": "Idempotency-Key was used with a different request"}
RUNNING = {"detail": "A request with this Idempotency-Key is still in progress"}


def post(client, path=URL, body=BODY, key="key-1", raw: str | None = None):
    data = raw if raw is not None else json.dumps(body)
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(path, data, content_type="application/json", **headers)


def test_a_retry_replays_the_first_response_and_stores_nothing_twice(client):
    first = post(client)
    # The same JSON, other key order and spacing.
    again = post(client, raw='{ "content": "Plays the cello",\n "type":"fact", "user_id": "u1"}')

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Memory.objects.count() == 1
    assert "X-RateLimit-Remaining" in again


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (URL, {**BODY, "content": "Plays the viola"}),
        (URL, {**BODY, "importance": 3}),
        (f"{URL}/upsert", {**BODY, "key": "instrument"}),
        (f"{URL}/batch", {"memories": [BODY]}),
    ],
    ids=["other-content", "extra-field", "other-path", "batch"],
)
def test_the_same_key_with_another_request_is_422(client, path, body):
    post(client)
    response = post(client, path=path, body=body)
    assert (response.status_code, response.json()) == (422, REUSED)
    assert Memory.objects.count() == 1


@pytest.mark.parametrize(
    "key", ["", "has space", "x" * 256, "caf\u00e9", "tab\there"], ids=["empty", "space", "256",
    "non-ascii", "tab"]
)  # fmt: skip
def test_a_malformed_key_is_a_400_and_stores_nothing(client, key):
    response = post(client, key=key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert not Memory.objects.exists()
    assert not IdempotentRequest.objects.exists()


def test_the_longest_key_is_accepted(client):
    assert post(client, key="~" * 255).status_code == 200
    assert post(client, key="~" * 255)["Idempotent-Replayed"] == "true"


def test_a_failed_request_is_not_kept_and_may_be_retried(client):
    bad = post(client, body={**BODY, "importance": 9})
    assert bad.status_code == 400
    assert not IdempotentRequest.objects.exists()

    fixed = post(client)
    assert fixed.status_code == 200
    assert "Idempotent-Replayed" not in fixed
    assert Memory.objects.count() == 1


def test_keys_are_scoped_to_the_owner_and_shared_by_its_keys(client, client_for, other_key):
    first = post(client)
    second_key_same_owner = client_for(create_api_key(owner_id="acme"))
    replay = post(second_key_same_owner)
    other_owner = post(client_for(other_key))

    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert other_owner.status_code == 200
    assert "Idempotent-Replayed" not in other_owner
    assert other_owner.json()["owner_id"] == "globex"
    assert Memory.objects.count() == 2


@contextlib.contextmanager
def another_worker_running(owner_id: str, key: str):
    """A request with this key in flight on another connection (another worker or host):
    its transaction holds the key's lock. Leaving the block closes the connection without
    committing, as a worker that dies mid-request does."""
    settings = connection.settings_dict
    worker = psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None, port=settings["PORT"] or None,
    )  # fmt: skip
    try:
        worker.execute("SELECT pg_advisory_xact_lock(%s)", [key_lock_id(owner_id, key)])
        yield worker
    finally:
        worker.close()  # no COMMIT: the lock goes with the connection


pytestmark_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="advisory locks are PostgreSQL's"
)


@pytest.mark.parametrize("path", [URL, f"{URL}/batch", f"{URL}/upsert"])
def test_a_reused_key_with_an_invalid_body_is_422_not_400(client, path):
    """The key is judged before the body: a client that reused a key learns that, not
    only that its second body was invalid."""
    post(client)
    response = post(client, path=path, body={"user_id": "u1", "type": "nonsense"})
    assert (response.status_code, response.json()) == (422, REUSED)
    fresh = post(client, path=path, body={"user_id": "u1", "type": "nonsense"}, key="key-new")
    assert fresh.status_code == 400
    assert Memory.objects.count() == 1


@pytestmark_postgres
def test_a_held_key_with_an_invalid_body_is_409(client):
    with another_worker_running("acme", "key-1"):
        response = post(client, body={"user_id": "u1", "type": "nonsense"})
        assert (response.status_code, response.json()) == (409, RUNNING)
    assert post(client, body={"user_id": "u1", "type": "nonsense"}).status_code == 400
    assert not IdempotentRequest.objects.exists()


@pytestmark_postgres
def test_a_running_request_makes_the_same_key_409_and_a_crash_frees_it(client):
    with another_worker_running("acme", "key-1"):
        response = post(client)
        other_key = post(client, key="key-2")
        assert (response.status_code, response.json()) == (409, RUNNING)
        assert other_key.status_code == 200  # only that key is held
        assert Memory.objects.count() == 1

    # The worker died without committing: the key is free at once, nothing was kept.
    retried = post(client)
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried
    assert Memory.objects.count() == 2
    assert post(client)["Idempotent-Replayed"] == "true"


@pytestmark_postgres
def test_a_batch_whose_key_is_held_is_409_and_stores_nothing(client):
    with another_worker_running("acme", "key-1"):
        response = post(client, path=f"{URL}/batch", body={"memories": [BODY, BODY]})
        assert (response.status_code, response.json()) == (409, RUNNING)
    assert Memory.objects.count() == 0
    assert IdempotentRequest.objects.count() == IdempotentRequestUser.objects.count() == 0
    assert post(client, path=f"{URL}/batch", body={"memories": [BODY, BODY]}).status_code == 200


@pytestmark_postgres
@pytest.mark.django_db(transaction=True)
def test_a_create_meeting_another_request_that_keeps_the_key_is_409_then_422(api_key):
    """Another request (an upsert, say) holds the key and has written its response, not yet
    committed: the create is told the key is in use and stores nothing; once that request
    committed, the create is a different request."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}")
    upsert = {"method": "POST", "path": f"{URL}/upsert", "data": {**BODY, "key": "k"}}
    now = timezone.now()
    with another_worker_running("acme", "key-1") as worker:
        table = IdempotentRequest._meta.db_table
        worker.execute(
            f"INSERT INTO {table} (owner_id, key, request_hash, response_status, "  # noqa: S608 - table name from the model
            "response_body, created_at, expires_at) VALUES (%s, %s, %s, 200, %s, %s, %s)",
            ["acme", "key-1", request_hash(**upsert), crypto.encrypt_json({}), now,
             now + timedelta(hours=1)],
        )  # fmt: skip
        response = post(client)
        assert (response.status_code, response.json()) == (409, RUNNING)
        assert Memory.objects.count() == 0
        worker.commit()

        response = post(client)
        assert (response.status_code, response.json()) == (422, REUSED)
    assert Memory.objects.count() == 0
    assert IdempotentRequestUser.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_batches_store_one_batch(api_key):
    body = {"memories": [BODY, {**BODY, "user_id": "u2"}]}
    results = run_together(api_key, 6, lambda client: post(client, path=f"{URL}/batch", body=body))
    assert results.count((200, None)) == 1
    assert {status for status, _ in results} <= {200, 409}
    assert Memory.objects.filter(owner_id="acme").count() == 2
    assert IdempotentRequestUser.objects.count() == 2


@pytestmark_postgres
def test_the_lock_is_per_owner(client, client_for, other_key):
    with another_worker_running("globex", "key-1"):
        assert post(client).status_code == 200
        assert post(client_for(other_key)).status_code == 409


def test_a_replay_takes_a_rate_limit_token(client_for):
    client = client_for(create_api_key(owner_id="acme", rate_limit_per_minute=2))
    statuses = [post(client).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert Memory.objects.count() == 1


def test_an_expired_response_is_not_replayed(client):
    post(client)
    IdempotentRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = post(client, body={**BODY, "content": "Plays the viola"})

    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response
    assert Memory.objects.count() == 2
    assert post(client, body={**BODY, "content": "Plays the viola"})["Idempotent-Replayed"]


def test_a_replaced_expired_response_lists_only_its_own_users(client):
    post(client, path=f"{URL}/batch", body={"memories": [BODY, {**BODY, "user_id": "u2"}]})
    IdempotentRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert post(client, body={**BODY, "user_id": "u3"}).status_code == 200

    users = IdempotentRequestUser.objects.values_list("request__key", "user_id")
    assert list(users) == [("key-1", "u3")]
    assert IdempotentRequest.objects.get().expires_at > timezone.now()


def test_purge_command_deletes_expired_records_only(client, capsys):
    post(client, key="old")
    post(client, key="new")
    IdempotentRequest.objects.filter(key="old").update(expires_at=timezone.now())

    call_command("purge_idempotency_keys")

    assert "Deleted 1 expired" in capsys.readouterr().out
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["new"]
    assert list(IdempotentRequestUser.objects.values_list("request__key", flat=True)) == ["new"]


def test_kept_responses_are_encrypted_at_rest(client):
    marker = "okapi-marker-51d2"
    post(client, body={**BODY, "content": f"Saw an {marker}"})
    table = connection.ops.quote_name(IdempotentRequest._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - table name from the model
        rows = cursor.fetchall()
    assert len(rows) == 1
    assert marker not in repr(rows)
    assert marker in post(client, body={**BODY, "content": f"Saw an {marker}"}).json()["content"]


def test_every_write_endpoint_replays(client):
    memory = make_memory("acme")
    calls = [
        (f"{URL}/batch", {"memories": [BODY, {**BODY, "user_id": "u2"}]}),
        (f"{URL}/upsert", {**BODY, "key": "instrument"}),
        (f"{URL}/batch/delete", {"ids": [str(memory.pk)]}),
    ]
    for n, (path, body) in enumerate(calls):
        first = post(client, path=path, body=body, key=f"k{n}")
        again = post(client, path=path, body=body, key=f"k{n}")
        assert first.status_code == 200, first.json()
        assert (again.json(), again["Idempotent-Replayed"]) == (first.json(), "true")
    assert Memory.objects.count() == 3  # two from the batch, one upserted; one deleted
    users = IdempotentRequestUser.objects.values_list("request__key", "user_id")
    assert sorted(users) == [("k0", "u1"), ("k0", "u2"), ("k1", "u1")]


def test_gdpr_erasure_removes_kept_responses_holding_the_user(client):
    post(client, key="mine")
    post(client, path=f"{URL}/batch", body={"memories": [BODY, {**BODY, "user_id": "u2"}]},
         key="both")  # fmt: skip
    post(client, body={**BODY, "user_id": "u2"}, key="theirs")

    erased = client.delete("/api/v1/gdpr/delete?user_id=u1").json()

    assert erased["deleted"]["idempotent_responses"] == 2
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["theirs"]
    again = post(client, key="mine")
    assert again.status_code == 200
    assert "Idempotent-Replayed" not in again


def run_together(api_key, count: int, send) -> list[tuple[int, str | None]]:
    """send(client) from count threads at once: (status, Idempotent-Replayed) of each."""
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}")
        try:
            barrier.wait(10)
            response = send(client)
            results.append((response.status_code, response.get("Idempotent-Replayed")))
        except Exception as exc:  # reported to the test, not lost in the thread
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert len(results) == count
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_requests_store_one_memory(api_key):
    results = run_together(api_key, 8, lambda client: post(client, key="same"))
    assert results.count((200, None)) == 1
    assert {status for status, _ in results} <= {200, 409}
    assert Memory.objects.filter(owner_id="acme").count() == 1
