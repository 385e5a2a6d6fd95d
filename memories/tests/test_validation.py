"""Every create rule at its boundary, through the HTTP API: the last legal value answers 200,
the first illegal one 400 with a JSON body naming the field, and a 400 leaves no row."""

import json

import pytest

from memories.models import Memory, MemoryTerm

URL = "/api/v1/memory"
BASE = {"user_id": "user_1", "type": "fact", "content": "likes tea"}


def post(client, **fields):
    return client.post(URL, {**BASE, **fields}, format="json")


def post_raw(client, raw: str | bytes):
    data = raw.encode() if isinstance(raw, str) else raw
    return client.generic("POST", URL, data, content_type="application/json")


def assert_accepted(response, **expected):
    assert response.status_code == 200, response.content
    body = response.json()
    for name, value in expected.items():
        assert body[name] == value, name
    row = Memory.objects.get(pk=body["id"])
    for name, value in expected.items():
        assert getattr(row, name) == value, name
    return body


def assert_rejected(response, field: str | None = None):
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if field is not None:
        assert field in body["errors"], body
        assert body["errors"][field]
    assert not Memory.objects.exists()
    assert not MemoryTerm.objects.exists()
    return body


def nested(levels: int) -> dict:
    """A metadata object `levels` deep (the object itself is level 1)."""
    value: object = "leaf"
    for _ in range(levels - 1):
        value = {"n": value}
    return {"n": value}


def metadata_of_size(size: int) -> dict:
    metadata = {"p": ""}
    overhead = len(json.dumps(metadata, separators=(",", ":")).encode())
    metadata["p"] = "x" * (size - overhead)
    return metadata


def compact_size(metadata) -> int:
    return len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())


# --- content --------------------------------------------------------------------------


def test_content_of_10000_chars_is_accepted(client):
    assert_accepted(post(client, content="a" * 10_000), content="a" * 10_000)


def test_content_of_10000_non_ascii_chars_is_accepted(client):
    # Characters, not bytes: 10,000 four-byte characters are within the limit.
    assert_accepted(post(client, content="😀" * 10_000), content="😀" * 10_000)


def test_content_of_10001_chars_is_400(client):
    assert_rejected(post(client, content="a" * 10_001), "content")


@pytest.mark.parametrize("content", ["", " ", "   \n\t ", "\u3000"])
def test_empty_or_whitespace_content_is_400(client, content):
    assert_rejected(post(client, content=content), "content")


def test_content_is_stored_without_trimming(client):
    assert_accepted(post(client, content="  likes tea \n"), content="  likes tea \n")


def test_missing_content_is_400(client):
    assert_rejected(client.post(URL, {"user_id": "u", "type": "fact"}, format="json"), "content")


# --- user_id and key ------------------------------------------------------------------


def test_user_id_of_255_chars_is_accepted(client):
    assert_accepted(post(client, user_id="u" * 255), user_id="u" * 255)


def test_user_id_of_256_chars_is_400(client):
    assert_rejected(post(client, user_id="u" * 256), "user_id")


@pytest.mark.parametrize("user_id", ["", None])
def test_empty_or_null_user_id_is_400(client, user_id):
    assert_rejected(post(client, user_id=user_id), "user_id")


def test_missing_user_id_is_400(client):
    assert_rejected(client.post(URL, {"type": "fact", "content": "x"}, format="json"), "user_id")


def test_key_of_255_chars_is_accepted(client):
    assert_accepted(post(client, key="k" * 255), key="k" * 255)


def test_key_of_256_chars_is_400(client):
    assert_rejected(post(client, key="k" * 256), "key")


def test_null_key_is_accepted(client):
    assert_accepted(post(client, key=None), key=None)


# --- confidence and importance --------------------------------------------------------


@pytest.mark.parametrize("confidence", [0, 0.0, 1, 1.0, 0.5])
def test_confidence_in_range_is_accepted(client, confidence):
    assert_accepted(post(client, confidence=confidence), confidence=float(confidence))


@pytest.mark.parametrize("confidence", [-0.01, 1.01, -1, 2, 1.0000001])
def test_confidence_out_of_range_is_400(client, confidence):
    assert_rejected(post(client, confidence=confidence), "confidence")


@pytest.mark.parametrize("importance", [1, 2, 3, 4, 5, 3.0])
def test_importance_in_range_is_accepted(client, importance):
    assert_accepted(post(client, importance=importance), importance=int(importance))


@pytest.mark.parametrize("importance", [0, 6, -1, 2.5])
def test_importance_out_of_range_is_400(client, importance):
    assert_rejected(post(client, importance=importance), "importance")


def test_null_importance_is_accepted(client):
    assert_accepted(post(client, importance=None), importance=None)


# --- metadata -------------------------------------------------------------------------


def test_metadata_five_levels_deep_is_accepted(client):
    assert_accepted(post(client, metadata=nested(5)), metadata=nested(5))


def test_metadata_six_levels_deep_is_400(client):
    assert_rejected(post(client, metadata=nested(6)), "metadata")


def test_arrays_count_as_levels(client):
    five = {"a": [[[["leaf"]]]]}
    assert_accepted(post(client, metadata=five), metadata=five)
    Memory.objects.all().delete()
    assert_rejected(post(client, metadata={"a": [[[[["leaf"]]]]]}), "metadata")


def test_metadata_of_5120_bytes_is_accepted(client):
    metadata = metadata_of_size(5120)
    assert compact_size(metadata) == 5120
    assert_accepted(post(client, metadata=metadata), metadata=metadata)


def test_metadata_of_5121_bytes_is_400(client):
    metadata = metadata_of_size(5121)
    assert compact_size(metadata) == 5121
    assert_rejected(post(client, metadata=metadata), "metadata")


def test_metadata_size_counts_utf8_bytes_not_characters(client):
    # 2,000 three-byte characters: 2,008 characters but 6,008 bytes.
    metadata = {"p": "€" * 2000}
    assert compact_size(metadata) > 5120
    assert_rejected(post(client, metadata=metadata), "metadata")


def test_metadata_size_ignores_whitespace_in_the_request(client):
    # Pretty-printed on the wire, 5,120 bytes once compact.
    metadata = metadata_of_size(5120)
    raw = json.dumps({**BASE, "metadata": metadata}, indent=8)
    assert_accepted(post_raw(client, raw), metadata=metadata)


@pytest.mark.parametrize("metadata", [[], [1], "x", 1, 1.5, True])
def test_metadata_that_is_not_an_object_is_400(client, metadata):
    assert_rejected(post(client, metadata=metadata), "metadata")


def test_null_metadata_becomes_empty_object(client):
    assert_accepted(post(client, metadata=None), metadata={})


# --- TTL ------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [0, -1, -3600])
def test_ttl_zero_or_negative_is_400(client, ttl):
    assert_rejected(post(client, ttl_seconds=ttl), "ttl_seconds")


def test_ttl_sets_expires_at_from_created_at(client):
    body = assert_accepted(post(client, ttl_seconds=3600), ttl_seconds=3600)
    row = Memory.objects.get(pk=body["id"])
    assert (row.expires_at - row.created_at).total_seconds() == 3600


def test_ttl_with_consistent_expires_at_is_accepted(client):
    first = post(client, ttl_seconds=60).json()
    response = post(client, ttl_seconds=60, expires_at=first["expires_at"])
    # Within the 1-second tolerance of created_at + ttl_seconds.
    assert response.status_code == 200, response.json()


def test_ttl_with_inconsistent_expires_at_is_400(client):
    assert_rejected(post(client, ttl_seconds=60, expires_at="2030-01-01T00:00:00Z"), "expires_at")


def test_expires_at_alone_is_accepted(client):
    body = assert_accepted(post(client, expires_at="2099-01-01T00:00:00Z"), ttl_seconds=None)
    assert body["expires_at"] == "2099-01-01T00:00:00Z"


@pytest.mark.parametrize("expires_at", ["tomorrow", "2030-13-01T00:00:00Z", 12345, True, []])
def test_unparseable_expires_at_is_400(client, expires_at):
    assert_rejected(post(client, expires_at=expires_at), "expires_at")


# --- text that cannot be stored -------------------------------------------------------


@pytest.mark.parametrize("field", ["content", "user_id", "key"])
def test_nul_character_in_text_is_400(client, field):
    assert_rejected(post(client, **{field: "a\x00b"}), field)


@pytest.mark.parametrize("field", ["value", "metadata"])
def test_nul_character_inside_json_is_400(client, field):
    payload = {"k": "a\x00b"} if field == "metadata" else "a\x00b"
    assert_rejected(post(client, **{field: payload}), field)


def test_nul_character_in_metadata_key_is_400(client):
    assert_rejected(post(client, metadata={"a\x00": 1}), "metadata")


@pytest.mark.parametrize(
    ("field", "raw_value"),
    [
        ("content", '"tea \\ud800"'),
        ("content", '"\\udfff"'),
        ("user_id", '"u\\ud800"'),
        ("key", '"\\ud83d"'),
        ("value", '"\\ud800"'),
        ("value", '["ok", {"x": "\\udc00"}]'),
        ("metadata", '{"a": "\\ud800"}'),
        ("metadata", '{"\\ud800": 1}'),
    ],
)
def test_lone_surrogates_are_400(client, field, raw_value):
    fields = {k: json.dumps(v) for k, v in BASE.items()}
    fields[field] = raw_value
    raw = "{" + ",".join(f'"{k}": {v}' for k, v in fields.items()) + "}"
    assert_rejected(post_raw(client, raw), field)


def test_escaped_surrogate_pair_is_a_valid_character(client):
    raw = json.dumps({**BASE, "content": "tea 😀"})  # ensure_ascii: \ud83d\ude00
    assert "\\ud83d\\ude00" in raw
    assert_accepted(post_raw(client, raw), content="tea 😀")


# --- JSON types -----------------------------------------------------------------------

WRONG_TYPES = [
    ("user_id", 1),
    ("user_id", True),
    ("user_id", ["u"]),
    ("user_id", {"u": 1}),
    ("content", 1),
    ("content", 1.5),
    ("content", False),
    ("content", ["likes tea"]),
    ("content", {"text": "likes tea"}),
    ("content", None),
    ("type", 1),
    ("type", True),
    ("type", ["fact"]),
    ("type", None),
    ("type", "FACT"),
    ("memory_type", 1),
    ("memory_type", ["fact"]),
    ("confidence", "0.5"),
    ("confidence", True),
    ("confidence", False),
    ("confidence", None),
    ("confidence", [0.5]),
    ("confidence", {}),
    ("importance", "3"),
    ("importance", True),
    ("importance", [3]),
    ("importance", {}),
    ("key", 1),
    ("key", True),
    ("key", ["k"]),
    ("key", {"k": 1}),
    ("ttl_seconds", "60"),
    ("ttl_seconds", True),
    ("ttl_seconds", 1.5),
    ("ttl_seconds", [60]),
    ("ingestion_mode", 1),
    ("ingestion_mode", None),
    ("ingestion_mode", ["rules"]),
    ("ingestion_mode", "Rules"),
    ("metadata", "{}"),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES)
def test_wrong_json_type_is_400(client, field, value):
    assert_rejected(post(client, **{field: value}), field)


@pytest.mark.parametrize(
    ("field", "raw_value"),
    [
        ("confidence", "1e999"),
        ("confidence", "-1e999"),
        ("confidence", "1" + "0" * 400),
        ("importance", "1e999"),
        ("importance", "1" + "0" * 400),
        ("importance", "-" + "1" + "0" * 400),
        ("ttl_seconds", "1e999"),
        ("ttl_seconds", "1" + "0" * 400),
        ("ttl_seconds", "1e300"),
        ("value", "1e999"),
        ("value", "[1, -1e999]"),
        ("metadata", '{"n": 1e999}'),
    ],
)
def test_huge_numbers_are_400(client, field, raw_value):
    fields = {k: json.dumps(v) for k, v in BASE.items()}
    fields[field] = raw_value
    raw = "{" + ",".join(f'"{k}": {v}' for k, v in fields.items()) + "}"
    assert_rejected(post_raw(client, raw), field)


def test_huge_integer_value_is_stored_exactly(client):
    # Any JSON number is a legal value; a 401-digit integer is finite and round-trips.
    raw = json.dumps({**BASE, "value": 10**400})
    body = assert_accepted(post_raw(client, raw), value=10**400)
    assert body["value"] == 10**400


@pytest.mark.parametrize(
    "raw",
    [
        '{"user_id": "u", "type": "fact", "content": "x", "confidence": NaN}',
        '{"user_id": "u", "type": "fact", "content": "x", "confidence": Infinity}',
        '{"user_id": "u", "type": "fact", "content": "x", "value": -Infinity}',
        '{"user_id": "u", "type": "fact", "content": "x",',
        "{'user_id': 'u'}",
        "",
        "\xff\xfe",
        '{"user_id": "u", "type": "fact", "content": "x"} trailing',
    ],
)
def test_malformed_json_is_400(client, raw):
    response = post_raw(client, raw.encode("latin-1"))
    assert_rejected(response)


def test_invalid_utf8_body_is_400(client):
    assert_rejected(post_raw(client, b'{"user_id": "u", "type": "fact", "content": "\xc3\x28"}'))


@pytest.mark.parametrize("raw", ["[]", '"x"', "1", "null", "true", '[{"user_id": "u"}]'])
def test_body_that_is_not_an_object_is_400(client, raw):
    assert_rejected(post_raw(client, raw))


@pytest.mark.parametrize(("opening", "closing"), [("[", "]"), ('{"a":', "}")])
def test_body_nested_deeper_than_the_parser_allows_is_400(client, opening, closing):
    depth = 100_000
    raw = '{"user_id": "u", "type": "fact", "content": "x", "value": ' + opening * depth
    raw += ("1" if opening != "[" else "") + closing * depth + "}"
    assert_rejected(post_raw(client, raw))


def test_deep_value_within_the_parser_limit_is_400(client):
    depth = 700
    raw = '{"user_id": "u", "type": "fact", "content": "x", "value": ' + "[" * depth
    raw += "]" * depth + "}"
    body = assert_rejected(post_raw(client, raw), "value")
    assert "levels deep" in body["errors"]["value"][0]


def nested_list(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(nested_list(6), id="six-levels"),
        pytest.param({"a": {"b": {"c": {"d": {"e": {}}}}}}, id="six-levels-of-objects"),
        pytest.param("é" * 5_000, id="10002-bytes"),
        pytest.param(["x" * 9_997], id="10001-bytes"),
    ],
)
def test_value_over_the_limits_is_400(client, value):
    body = assert_rejected(post(client, value=value), "value")
    assert "levels deep" in body["detail"] or "10000 bytes" in body["detail"]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(nested_list(5), id="five-levels"),
        pytest.param("é" * 4_999, id="10000-bytes"),
        pytest.param(["x" * 9_996], id="10000-bytes-list"),
    ],
)
def test_value_at_the_limits_is_stored(client, value):
    assert_accepted(post(client, value=value), value=value)


def test_value_limits_hold_on_patch(client):
    memory_id = assert_accepted(post(client, value=1))["id"]
    response = client.patch(f"{URL}/{memory_id}", {"value": ["x" * 10_000]}, format="json")
    assert response.status_code == 400
    assert "value" in response.json()["errors"]
    assert client.get(f"{URL}/{memory_id}").json()["value"] == 1


@pytest.mark.parametrize("depth", [50, 450])
def test_deep_metadata_is_400_not_500(client, depth):
    raw = '{"user_id": "u", "type": "fact", "content": "x", "metadata": ' + '{"a":' * depth
    raw += "1" + "}" * depth + "}"
    body = assert_rejected(post_raw(client, raw), "metadata")
    assert "levels deep" in body["detail"]


def test_unknown_field_is_400_naming_it_and_stores_nothing(client):
    body = assert_rejected(post(client, colour="blue"), "colour")
    assert body["detail"] == "colour: Unknown field."


def test_read_only_fields_are_known_and_ignored(client):
    body = assert_accepted(
        post(client, is_deleted=True, created_at="2000-01-01T00:00:00Z"), is_deleted=False
    )
    assert body["created_at"] != "2000-01-01T00:00:00Z"


def test_memory_type_differing_from_type_is_400(client):
    assert_rejected(post(client, type="fact", memory_type="preference"), "memory_type")


def test_unknown_memory_type_alias_is_400(client):
    assert_rejected(
        client.post(URL, {"user_id": "u", "content": "x", "memory_type": "opinion"}, format="json"),
        "memory_type",
    )


def test_form_encoded_body_is_415(client):
    response = client.post(URL, BASE)  # multipart
    assert response.status_code == 415
    assert "detail" in response.json()
    assert not Memory.objects.exists()


def test_every_error_names_its_first_message_in_detail(client):
    body = assert_rejected(post(client, importance=9, confidence=7))
    first_field = next(iter(body["errors"]))
    assert body["detail"] == f"{first_field}: {body['errors'][first_field][0]}"
    assert {"importance", "confidence"} <= set(body["errors"])


@pytest.mark.parametrize("field", ["type", "memory_type", "ingestion_mode"])
def test_lone_surrogate_in_a_choice_is_400_not_500(client, field):
    # The error message must not echo input that cannot be encoded as UTF-8.
    fields = {k: json.dumps(v) for k, v in BASE.items()}
    fields[field] = '"\\ud800"'
    raw = "{" + ",".join(f'"{k}": {v}' for k, v in fields.items()) + "}"
    body = assert_rejected(post_raw(client, raw), field)
    assert "\ud800" not in body["detail"]


def test_lone_surrogate_in_context_types_is_400_not_500(client):
    raw = '{"user_id": "u", "query": "tea", "types": ["\\ud800"]}'
    response = client.generic("POST", f"{URL}/context", raw.encode(), "application/json")
    assert response.status_code == 400
    assert "types" in response.json()["errors"]
