"""Property: any JSON object built from the Contract v1 fields, with valid or invalid
values, is either stored and read back exactly (200) or refused with a JSON 400 that
leaves no row behind. Never a 500."""

import json
import math
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone

from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from memories.models import MAX_TTL_SECONDS, Memory
from memories.rules import parse_rule

URL = "/api/v1/memory"
TYPES = ["fact", "preference", "event", "system"]

# Text that is sometimes unstorable: lone surrogates and NUL mixed into ordinary text.
unstorable_char = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\x00"])
texts = st.one_of(
    st.text(max_size=20),
    st.text(max_size=20),
    st.tuples(st.text(max_size=5), unstorable_char, st.text(max_size=5)).map("".join),
    st.sampled_from(["", " ", "\n\t", "\u3000"]),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and ±Infinity come out as non-standard JSON tokens
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(texts, children, max_size=3)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(texts, json_values, max_size=4)


def deep_object(levels: int) -> dict:
    value: object = 1
    for _ in range(levels - 1):
        value = {"d": value}
    return {"d": value}


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: dt_timezone(timedelta(minutes=minutes))
)
datetimes = st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), offsets))
rule_content = st.builds(
    lambda t, k, v: f"{t}:{k}={v}",
    st.sampled_from([*TYPES, "opinion", "FACT"]),
    st.text(alphabet="abc_ =:", max_size=6),
    st.one_of(st.just("42"), st.just("true"), st.just("1e999"), st.text(max_size=6)),
)

FIELDS = {
    "user_id": st.one_of(
        st.text(min_size=1, max_size=20),
        st.sampled_from(["u" * 255, "u" * 256]),
        json_values,
    ),
    "type": st.one_of(st.sampled_from(TYPES), st.sampled_from(TYPES), json_values),
    "memory_type": st.one_of(st.sampled_from(TYPES), json_values),
    "content": st.one_of(
        st.text(min_size=1, max_size=40),
        rule_content,
        st.integers(min_value=9_999, max_value=10_002).map(lambda n: "c" * n),
        json_values,
    ),
    "confidence": st.one_of(st.floats(min_value=-0.5, max_value=1.5), numbers, json_values),
    "key": st.one_of(
        st.none(), st.text(max_size=20), st.sampled_from(["k" * 255, "k" * 256]), json_values
    ),
    "value": json_values,
    "importance": st.one_of(
        st.none(),
        st.integers(min_value=-1, max_value=7),
        st.sampled_from([1.0, 4.0, 2.5]),
        json_values,
    ),
    "metadata": st.one_of(
        st.none(),
        json_objects,
        st.sampled_from([deep_object(5), deep_object(6), {"p": "x" * 5114}, {"p": "x" * 5115}]),
        json_values,
    ),
    "ttl_seconds": st.one_of(
        st.none(),
        st.integers(min_value=-2, max_value=10**6),
        st.sampled_from([MAX_TTL_SECONDS, MAX_TTL_SECONDS + 1]),
        json_values,
    ),
    "expires_at": st.one_of(st.none(), datetimes.map(datetime.isoformat), json_values),
    "ingestion_mode": st.one_of(
        st.sampled_from(["explicit", "rules", "rules", "automatic"]), json_values
    ),
    "owner_id": json_values,
    "is_deleted": json_values,
    "unknown_field": json_values,
}
REQUIRED = ("user_id", "content", "type")

# Valid values, so that a good share of bodies is stored and read back.
good_text = st.text(st.characters(exclude_characters="\x00"), max_size=30)
good_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        good_text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(good_text, children, max_size=3)
    ),
    max_leaves=8,
)
VALID = {
    "user_id": good_text.filter(bool),
    "type": st.sampled_from(TYPES),
    "content": st.one_of(good_text.filter(str.strip), rule_content),
    "confidence": st.floats(min_value=0.0, max_value=1.0),
    "key": st.one_of(st.none(), good_text),
    "value": good_json,
    "importance": st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
    "metadata": st.one_of(st.none(), st.dictionaries(good_text, good_json, max_size=3)),
    "ttl_seconds": st.one_of(st.none(), st.integers(min_value=1, max_value=10**6)),
    "ingestion_mode": st.sampled_from(["explicit", "rules"]),
}
valid_bodies = st.fixed_dictionaries(
    {name: VALID[name] for name in REQUIRED},
    optional={name: s for name, s in VALID.items() if name not in REQUIRED},
)


@st.composite
def one_field_off(draw):
    """A valid body with one field replaced by anything at all."""
    body = draw(valid_bodies)
    name = draw(st.sampled_from(sorted(FIELDS)))
    body[name] = draw(FIELDS[name])
    return body


bodies = st.one_of(
    valid_bodies,
    one_field_off(),
    st.fixed_dictionaries(
        {name: FIELDS[name] for name in REQUIRED},
        optional={name: s for name, s in FIELDS.items() if name not in REQUIRED},
    ),
    st.fixed_dictionaries({}, optional=FIELDS),
)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_read_back(sent: dict, body: dict) -> None:
    """The 200 body holds exactly what was sent (or its documented default)."""
    assert body["owner_id"] == "acme"
    assert body["is_deleted"] is False
    assert body["user_id"] == sent["user_id"]
    assert body["type"] == sent.get("type", sent.get("memory_type"))
    assert body["content"] == sent["content"]
    assert body["confidence"] == sent.get("confidence", 1.0)
    assert body["importance"] == sent.get("importance")
    assert body["metadata"] == (sent.get("metadata") or {})
    assert body["ingestion_mode"] == sent.get("ingestion_mode", "explicit")
    rule = parse_rule(sent["content"]) if body["ingestion_mode"] == "rules" else None
    if rule is not None:
        assert (body["key"], body["value"]) == (rule.key, rule.value)
    else:
        assert body["key"] == sent.get("key")
        assert body["value"] == sent.get("value")
    if sent.get("ttl_seconds") is not None:
        assert body["ttl_seconds"] == sent["ttl_seconds"]
        created_at = parse_time(body["created_at"])
        assert parse_time(body["expires_at"]) == created_at + timedelta(seconds=sent["ttl_seconds"])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_any_body_is_stored_exactly_or_refused_cleanly(db, client, body):
    raw = json.dumps(body)  # ensure_ascii: lone surrogates travel as \udXXX escapes
    rows_before = Memory.objects.count()

    response = client.generic("POST", URL, raw.encode(), content_type="application/json")

    assert response.status_code in (200, 400), response.content
    event(f"status {response.status_code}")
    assert response["Content-Type"].startswith("application/json")
    payload = response.json()
    if response.status_code == 400:
        assert isinstance(payload["detail"], str)
        assert payload["detail"]
        assert isinstance(payload.get("errors", {}), dict)
        assert Memory.objects.count() == rows_before
        return

    assert Memory.objects.count() == rows_before + 1
    sent = json.loads(raw)  # what the server saw, after JSON's own round trip
    assert all(not isinstance(v, float) or math.isfinite(v) for v in (sent.get("confidence"), 0.0))
    assert_read_back(sent, payload)
    row = Memory.objects.get(pk=payload["id"])
    assert (row.content, row.key, row.value, row.metadata) == (
        payload["content"],
        payload["key"],
        payload["value"],
        payload["metadata"],
    )
    assert (row.confidence, row.importance) == (payload["confidence"], payload["importance"])
    fetched = client.get(f"{URL}/{payload['id']}")
    expires_at = payload["expires_at"]
    if expires_at is not None and parse_time(expires_at) <= timezone.now():
        assert fetched.status_code == 404
        assert fetched.json() == {"detail": "Not found."}
    else:
        assert fetched.status_code == 200
        assert fetched.json() == payload
