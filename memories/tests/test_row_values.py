"""services._row_values takes a shortcut past get_db_prep_save for the common field
classes on PostgreSQL: it must give exactly what the fields themselves give."""

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection
from django.db.models import Model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memories import services
from memories.models import Memory, MemoryVersion

NOW = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
MEMORIES = [
    {"user_id": "u1", "type": "fact", "content": "Lives in Lisbon"},
    {"user_id": "ü-2", "type": "preference", "content": "Thème: sombre", "key": "theme",
     "value": {"mode": "dark", "n": [1, 2.5]}, "importance": 5, "confidence": 0.25,
     "ttl_seconds": 3600, "metadata": {"source": "test"}, "ingestion_mode": "rules"},
    {"user_id": "u3", "type": "event", "content": "x", "importance": 1, "confidence": 1,
     "ttl_seconds": 10**9, "value": None},
]  # fmt: skip


def generic(instance: Model) -> list:
    return [
        field.get_db_prep_save(field.pre_save(instance, True), connection)
        for field in services._insert_fields(type(instance))
    ]


def comparable(values: list) -> list:
    # Django wraps integers in psycopg's typed ints: compare the type and the number.
    return [(type(value).__name__, value) for value in values]


@pytest.mark.django_db
@pytest.mark.parametrize("data", MEMORIES)
@pytest.mark.parametrize("literal", [False, True], ids=["bound", "literal"])
def test_the_shortcut_gives_what_the_fields_give(data, literal):
    memory = Memory(owner_id="acme", created_at=NOW, updated_at=NOW + timedelta(seconds=1), **data)
    memory.apply_ttl()
    memory.measure_content()
    services._prepare_index(memory)
    version = services.VersionRow(memory, event=MemoryVersion.Event.CREATED, number=1)
    for row, instance in ((memory, memory), (version, version.instance())):
        fast = services._row_values(row, connection, literal=literal)
        # Encrypted fields take the fields' own path, with a new nonce each time: their
        # positions are compared by decrypting, the rest as they are.
        expected = generic(instance)
        fields = services._insert_fields(type(instance))
        for position, field in enumerate(fields):
            if "Encrypted" in type(field).__name__:
                assert field.from_db_value(fast[position], None, connection) == (
                    field.from_db_value(expected[position], None, connection)
                ), field.name
                fast[position] = expected[position] = None
        if literal:  # numbers as they are, for an array literal: the same numbers
            assert fast == expected
        else:
            assert comparable(fast) == comparable(expected)


def test_a_new_memory_row_leaves_the_legacy_columns_out():
    names = {field.name for field in services._insert_fields(Memory)}
    assert names.isdisjoint(Memory.LEGACY_FIELDS)
    assert {"envelope", "content_hash", "id"} <= names


def test_postgresql_takes_the_shortcut_for_most_columns():
    if connection.vendor != "postgresql":
        pytest.skip("the shortcut is PostgreSQL's only")
    shortcut = [
        name for name, prepare in services._preparers(Memory, "postgresql") if prepare is None
    ]
    assert {"id", "owner_id", "user_id", "type", "created_at", "is_deleted"} <= set(shortcut)


# --- a batch's columns as array literals ------------------------------------------------

# What an array literal must escape or keep: quotes, backslashes, braces, commas, spaces,
# the word NULL, the empty string; and any other storable text.
awkward = st.sampled_from(['"', "\\", "{", "}", ",", " ", "NULL", "null", "", "é\n"])
storable_text = st.lists(
    st.one_of(
        awkward,
        st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    ),
    max_size=4,
).map("".join)
# Hypothesis takes naive bounds and adds the time zone itself.
EARLIEST, LATEST = datetime(1, 1, 2), datetime(9999, 12, 30)  # noqa: DTZ001
ARRAY_TYPES = [
    ("varchar", storable_text),
    ("uuid", st.uuids()),
    ("timestamptz", st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))]),
                                 min_value=EARLIEST, max_value=LATEST)),
    ("bigint", st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    ("double precision", st.floats(allow_nan=False, allow_infinity=False)),
    ("boolean", st.booleans()),
]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(("sql_type", "values"), ARRAY_TYPES, ids=[t for t, _ in ARRAY_TYPES])
def test_an_array_literal_reads_back_as_the_values_it_was_built_from(sql_type, values):
    if connection.vendor != "postgresql":
        pytest.skip("array literals are PostgreSQL's")

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.one_of(st.none(), values), max_size=6))
    def check(column):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT %s::{sql_type}[]", [services._array_literal(column)])
            (back,) = cursor.fetchone()
        assert back == column
        assert [type(v) for v in back] == [type(v) for v in column]

    check()


@pytest.mark.django_db
def test_a_literal_row_reads_back_as_the_row_itself():
    # A whole memory row and version row as literals (choices, encrypted text, numbers
    # without the driver's wrappers, timestamps), read back column by column.
    if connection.vendor != "postgresql":
        pytest.skip("array literals are PostgreSQL's")
    memory = Memory.new(owner_id="acme", at=NOW, **MEMORIES[1])
    memory.apply_ttl()
    memory.measure_content()
    services._prepare_index(memory)
    version = services.VersionRow(memory, event=MemoryVersion.Event.CREATED, number=1)
    for row, model in ((memory, Memory), (version, MemoryVersion)):
        values = services._row_values(row, connection, literal=True)
        fields = services._insert_fields(model)
        with connection.cursor() as cursor:
            for field, value in zip(fields, values, strict=True):
                element = field.db_type(connection).split("(")[0]
                cursor.execute(f"SELECT (%s::{element}[])[1]", [services._array_literal([value])])
                (back,) = cursor.fetchone()
                assert back == value, field.name


@pytest.mark.parametrize(
    "data",
    [
        *MEMORIES,
        {"user_id": "u", "type": "fact"},
        {"user_id": "u", "type": "fact", "content": "x", "metadata": None},
        {"user_id": "u", "type": "fact", "value": [1, "two"]},
    ],
)
def test_memory_new_builds_what_the_model_constructor_builds(data):
    fast = Memory.new(owner_id="acme", at=NOW, **data)
    slow = Memory(owner_id="acme", created_at=NOW, updated_at=NOW, **data)

    def state(memory: Memory) -> dict:
        values = {f.attname: getattr(memory, f.attname) for f in Memory._meta.concrete_fields}
        values.pop("id")  # uuid4 for each
        values.pop("envelope")  # None until first read when nothing enveloped was given
        return {**values, "enveloped": memory._enveloped(), "adding": memory._state.adding}

    assert state(fast) == state(slow)
    assert isinstance(fast.id, uuid.UUID)
    assert fast.id != slow.id
    with pytest.raises(TypeError, match="colour"):
        Memory.new(owner_id="acme", at=NOW, colour="red", **data)
