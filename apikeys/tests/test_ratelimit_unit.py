"""Token bucket arithmetic on a controlled clock, and the database backend on its own."""

import time

import pytest

from apikeys.models import RateLimitBucket
from apikeys.services import create_api_key
from apikeys.throttling import BucketDecision, _take_database, take_token

# --- take_token: refill, cap, fractions ------------------------------------------------


def test_full_bucket_gives_a_token():
    assert take_token(tokens=60.0, updated_at=100.0, now=100.0, limit=60) == (True, 59.0)


def test_empty_bucket_refuses_and_keeps_its_tokens():
    assert take_token(tokens=0.0, updated_at=100.0, now=100.0, limit=60) == (False, 0.0)


def test_refill_is_limit_per_minute():
    # 60/minute is one token a second: ten seconds earn ten tokens, one is taken.
    assert take_token(tokens=0.0, updated_at=100.0, now=110.0, limit=60) == (True, 9.0)
    # 6/minute is one token every ten seconds.
    allowed, tokens = take_token(tokens=0.0, updated_at=100.0, now=125.0, limit=6)
    assert allowed
    assert tokens == pytest.approx(1.5)


def test_refill_stops_at_the_limit():
    assert take_token(tokens=5.0, updated_at=0.0, now=10_000.0, limit=30) == (True, 29.0)


def test_a_lower_limit_caps_the_tokens_at_once():
    assert take_token(tokens=500.0, updated_at=100.0, now=100.0, limit=10) == (True, 9.0)


def test_fractional_tokens_accumulate_until_one_is_whole():
    allowed, tokens = take_token(tokens=0.0, updated_at=100.0, now=100.5, limit=60)
    assert not allowed
    assert tokens == pytest.approx(0.5)
    allowed, tokens = take_token(tokens=tokens, updated_at=100.5, now=100.9, limit=60)
    assert not allowed
    assert tokens == pytest.approx(0.9)
    allowed, tokens = take_token(tokens=tokens, updated_at=100.9, now=101.0, limit=60)
    assert allowed
    assert tokens == pytest.approx(0.0)


def test_a_clock_that_goes_back_refills_nothing():
    assert take_token(tokens=0.5, updated_at=100.0, now=90.0, limit=60) == (False, 0.5)


# --- BucketDecision: headers -----------------------------------------------------------


def _decision(*, tokens: float, limit: int = 60, now: float = 1000.0, allowed=True):
    return BucketDecision(allowed=allowed, limit=limit, tokens=tokens, now=now)


@pytest.mark.parametrize(
    ("tokens", "remaining"),
    [(59.0, 59), (2.999, 2), (3.0 - 1e-12, 3), (0.99, 0), (0.0, 0), (-0.5, 0)],
)
def test_remaining_is_the_whole_tokens_left(tokens, remaining):
    assert _decision(tokens=tokens).remaining == remaining


@pytest.mark.parametrize(
    ("tokens", "limit", "retry_after"),
    [
        (0.0, 60, 1),  # exactly one second
        (0.5, 60, 1),  # half a second rounds up
        (0.999, 60_000, 1),  # microseconds still say 1
        (0.0, 7, 9),  # 60/7 = 8.57 s rounds up
        (0.25, 6, 8),  # 0.75 token at 0.1 token/s = 7.5 s
        (0.0, 1, 60),  # exactly 60 s, not 61 from float error
        (3.0, 60, 1),  # tokens left: never below 1
    ],
)
def test_retry_after_is_whole_seconds_to_the_next_token(tokens, limit, retry_after):
    assert _decision(tokens=tokens, limit=limit, allowed=False).retry_after == retry_after


@pytest.mark.parametrize(
    ("tokens", "limit", "now", "reset"),
    [
        (59.0, 60, 1000.0, 1001),  # one token at one a second
        (59.0, 60, 1000.2, 1002),  # 1001.2 rounds up
        (0.0, 60, 1000.0, 1060),  # empty: a full minute
        (0.0, 6, 1000.0, 1060),  # a full minute whatever the limit
        (4.5, 6, 1000.0, 1015),  # 1.5 tokens at 0.1 token/s
        (60.0, 60, 1000.0, 1000),  # already full
    ],
)
def test_reset_is_when_the_bucket_is_full_again(tokens, limit, now, reset):
    assert _decision(tokens=tokens, limit=limit, now=now).reset == reset


def test_headers_carry_limit_remaining_and_reset():
    assert _decision(tokens=41.7, limit=60, now=1000.0).headers() == {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "41",
        "X-RateLimit-Reset": "1019",
    }


# --- the database backend --------------------------------------------------------------


@pytest.fixture
def small_key(db):
    return create_api_key(owner_id="acme", rate_limit_per_minute=5).api_key


def test_new_key_starts_full_then_a_burst_of_limit_is_allowed(small_key):
    decisions = [_take_database(small_key) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True] * 5
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    assert all(d.limit == 5 for d in decisions)
    refused = _take_database(small_key)
    assert not refused.allowed
    assert refused.remaining == 0
    # 5/minute: the next token is about 12 s away.
    assert 11 <= refused.retry_after <= 12
    bucket = RateLimitBucket.objects.get(key_id=small_key.pk)
    assert bucket.allowed is False
    assert bucket.tokens < 1


def test_database_clock_is_unix_seconds(small_key):
    before = time.time()
    decision = _take_database(small_key)
    after = time.time()
    # Same machine, so the database clock is within a second of ours.
    assert before - 1 < decision.now < after + 1
    assert decision.reset == pytest.approx(decision.now + 12, abs=1)


def test_bucket_time_never_goes_back(small_key):
    first = _take_database(small_key)
    # As a statement that waited for the row lock would see: a row from the future.
    RateLimitBucket.objects.filter(key_id=small_key.pk).update(updated_at=first.now + 3600)
    second = _take_database(small_key)
    assert second.allowed
    assert second.now == first.now + 3600
    assert second.tokens == pytest.approx(first.tokens - 1)


def test_lowering_the_limit_caps_the_tokens_on_the_next_request(db):
    api_key = create_api_key(owner_id="acme", rate_limit_per_minute=100).api_key
    assert _take_database(api_key).remaining == 99
    api_key.rate_limit_per_minute = 3
    api_key.save(update_fields=["rate_limit_per_minute"])
    decisions = [_take_database(api_key) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert all(d.limit == 3 for d in decisions)


def test_raising_the_limit_keeps_the_tokens_and_refills_faster(small_key):
    for _ in range(5):
        _take_database(small_key)
    small_key.rate_limit_per_minute = 600
    small_key.save(update_fields=["rate_limit_per_minute"])
    decision = _take_database(small_key)
    # Not a fresh bucket of 600: the spent tokens stay spent.
    assert decision.remaining < 5
    assert decision.limit == 600
