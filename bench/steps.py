"""The CPU cost of each step of a create and a list, alone, in microseconds per call (the
minimum over repeats of process_time), for bench/inprocess.py --steps. Run inside a set-up
Django process: the steps use the configured database and Redis."""

import io
import json
import time
import timeit

REPEATS = 5


def cost(function, number: int = 2000) -> float:
    """Microseconds of CPU per call: the least over REPEATS runs of `number` calls."""
    timer = timeit.Timer(function, timer=time.process_time)
    return min(timer.repeat(REPEATS, number)) / number * 1e6


def report(name: str, micros: float, note: str = "") -> None:
    print(f"  {name:<58} {micros:8.1f} us  {note}", flush=True)


def measure_all(*, key: str, owner: str, user: str, body: bytes) -> None:
    from django.db import connection
    from rest_framework import serializers
    from rest_framework.parsers import JSONParser
    from rest_framework.renderers import JSONRenderer

    from apikeys.authentication import find_key
    from apikeys.models import ApiKey, hash_key
    from apikeys.throttling import take
    from memories import services
    from memories.fieldcopy import ShallowFieldCopies
    from memories.serializers import (
        ContextRequestSerializer,
        MemoryBatchDeleteSerializer,
        MemoryBatchSerializer,
        MemoryListQuerySerializer,
        MemorySerializer,
        memory_payload,
    )

    data = json.loads(body)
    query = {"user_id": user, "limit": "20"}
    print("validation")
    report("MemorySerializer(data).is_valid(), create body",
           cost(lambda: MemorySerializer(data=data).is_valid()))  # fmt: skip
    report("MemoryListQuerySerializer(data).is_valid()",
           cost(lambda: MemoryListQuerySerializer(data=query).is_valid()))  # fmt: skip
    print("building a serializer's fields: as configured / with DRF's deep copies")
    for cls in (MemorySerializer, MemoryListQuerySerializer, ContextRequestSerializer,
                MemoryBatchSerializer, MemoryBatchDeleteSerializer):  # fmt: skip
        configured = cost(lambda cls=cls: cls().fields)
        deep = cost(lambda cls=cls: serializers.Serializer.get_fields(cls()))
        mark = " (ShallowFieldCopies)" if issubclass(cls, ShallowFieldCopies) else ""
        report(f"  {cls.__name__}", configured, f"/ {deep:.1f} us{mark}")

    print("JSON")
    api_key = find_key(hash_key(key))
    page, _ = services.list_memories(owner_id=owner, user_id=user, limit=20)
    payloads = [memory_payload(m) for m in page]
    parser, renderer = JSONParser(), JSONRenderer()
    report("DRF JSONParser.parse(create body)", cost(lambda: parser.parse(io.BytesIO(body))))
    report("DRF JSONRenderer.render(one memory)", cost(lambda: renderer.render(payloads[0])))
    report("DRF JSONRenderer.render(20 memories)", cost(lambda: renderer.render(payloads), 500))
    try:
        import orjson
    except ImportError:
        print("  (orjson not installed)")
    else:
        report("orjson.loads(create body)", cost(lambda: orjson.loads(body)))
        report("orjson.dumps(one memory)", cost(lambda: orjson.dumps(payloads[0])))
        report("orjson.dumps(20 memories) + isascii()",
               cost(lambda: orjson.dumps(payloads).isascii(), 500))  # fmt: skip

    print("per-request fixed costs")
    report("find_key(hash) (one indexed SELECT, compiled once)",
           cost(lambda: find_key(hash_key(key)), 500))  # fmt: skip
    report("the same key through the ORM (filter().first(), as the floor)",
           cost(lambda: ApiKey.objects.filter(key_hash=hash_key(key)).first(), 500))  # fmt: skip
    report("rate limit: take() (one Redis script call)", cost(lambda: take(api_key), 500))
    report("health check: connection.is_usable() (SELECT 1)", cost(connection.is_usable, 500))
    from django.conf import settings

    report("a settings look-up (settings.REDIS_URL)", cost(lambda: settings.REDIS_URL, 100_000))
    middleware_costs(key)

    print("create: what the service adds to the floor's INSERT")
    from django.db import connections
    from django.utils import timezone

    from memories.models import Memory, MemoryVersion

    validated = MemorySerializer(data=data)
    validated.is_valid(raise_exception=True)
    fields = validated.validated_data
    memory = Memory(owner_id=owner, created_at=timezone.now(), updated_at=timezone.now(), **fields)
    memory.apply_ttl()
    memory.measure_content()
    db = connections["default"]
    report("index terms: _prepare_index (stems, keyed hashes)",
           cost(lambda: services._prepare_index(memory)))  # fmt: skip
    report("history: VersionRow() + its row values (snapshot encrypted)",
           cost(lambda: services._row_values(services.VersionRow(
               memory, event=MemoryVersion.Event.CREATED, number=1), db)))  # fmt: skip
    report("the memory's row values (its envelope encrypted)",
           cost(lambda: services._row_values(memory, db)))  # fmt: skip
    envelope = Memory._meta.get_field("envelope")
    report("  of which one encryption of the envelope",
           cost(lambda: envelope.get_prep_value(memory.envelope)))  # fmt: skip
    report("services.create_memory (the above and the one INSERT statement)",
           cost(lambda: services.create_memory(owner_id=owner, data={**fields}), 300))  # fmt: skip

    print("list")
    page_of_20 = lambda: services.list_memories(owner_id=owner, user_id=user, limit=20)  # noqa: E731
    report("services.list_memories(limit=20): query, 21 rows decrypted", cost(page_of_20, 200))
    from memories.models import Memory as Row

    def floor_page():
        rows = Row.objects.live().filter(owner_id=owner, user_id=user)
        return list(rows.order_by("-created_at", "-id")[:20])

    report("the floor's query: 20 rows decrypted", cost(floor_page, 200))
    report("memory_payload x 20", cost(lambda: [memory_payload(m) for m in page], 500))
    report("the next page's cursor", cost(lambda: services.encode_cursor(page[-1]), 5000))


def middleware_costs(key: str) -> None:
    """Each middleware's own work: the stack down to it, around a view that returns a ready
    response, less the stack above it."""
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIRequest
    from django.http import HttpResponse
    from django.utils.module_loading import import_string
    from inprocess import environ

    def request():
        return WSGIRequest(environ("POST", "/api/v1/memory", b"{}", key))

    def stack(paths):
        handler = lambda request: HttpResponse(b"{}", content_type="application/json")  # noqa: E731
        for path in reversed(paths):
            handler = import_string(path)(handler)
        return handler

    previous = cost(lambda: stack([])(request()), 5000)
    report("a request object and a response (no middleware)", previous)
    for n, path in enumerate(settings.MIDDLEWARE, start=1):
        handler = stack(settings.MIDDLEWARE[:n])
        total = cost(lambda handler=handler: handler(request()), 5000)
        report(f"  {path.rsplit('.', 1)[1]}", total - previous)
        previous = total


def batch_costs(*, owner: str, bodies: list[dict]) -> None:
    """Each step of a batch create of len(bodies) memories, alone, per memory: what the
    batch's ratio to single creates is made of."""
    from django.db import connections
    from django.utils import timezone
    from psycopg import ClientCursor

    from memories import services
    from memories.models import MemoryVersion
    from memories.serializers import MemoryBatchSerializer, memory_payload

    count = len(bodies)
    per = lambda micros: micros / count  # noqa: E731
    db = connections["default"]
    db.ensure_connection()
    body = json.dumps({"memories": bodies}).encode()
    from rest_framework.parsers import JSONParser
    from rest_framework.renderers import JSONRenderer

    print(f"batch of {count}: microseconds per memory")
    report("JSONParser.parse(body)", per(cost(lambda: JSONParser().parse(io.BytesIO(body)), 50)))
    data = {"memories": bodies}
    report("MemoryBatchSerializer(data).is_valid()",
           per(cost(lambda: MemoryBatchSerializer(data=data).is_valid(), 50)))  # fmt: skip
    validated = MemoryBatchSerializer(data=data)
    validated.is_valid(raise_exception=True)
    items = validated.validated_data["memories"]
    now = timezone.now()

    def build():
        return [services._new_memory(owner_id=owner, at=now, data=item) for item in items]

    report("_new_memory (Memory.new, expiry, sizes)", per(cost(build, 50)))
    memories = build()
    report("_prepare_index", per(cost(lambda: [services._prepare_index(m) for m in memories], 50)))
    terms = [services._prepare_index(m) for m in memories]

    def versions():
        return [services.VersionRow(m, event=MemoryVersion.Event.CREATED, number=1)
                for m in memories]  # fmt: skip

    report("VersionRow() (snapshot)", per(cost(versions, 50)))
    rows = versions()
    report(
        "_row_values(memory)",
        per(cost(lambda: [services._row_values(m, db, literal=True) for m in memories], 50)),
    )
    report(
        "_row_values(version)",
        per(cost(lambda: [services._row_values(v, db, literal=True) for v in rows], 50)),
    )

    def params():
        return services._create_params(memories, terms, db)

    report("all statement parameters (_create_params)", per(cost(params, 50)))
    sql = services._create_sql(db.alias, 2)
    values = params()
    mogrify = ClientCursor(db.connection).mogrify
    report(
        "psycopg: the statement with its parameters bound",
        per(cost(lambda: mogrify(sql, values), 50)),
    )
    renderer = JSONRenderer()
    report("response: memory_payload", per(cost(lambda: [memory_payload(m) for m in memories], 50)))
    payload = {"memories": [memory_payload(m) for m in memories]}
    report("response: JSONRenderer.render", per(cost(lambda: renderer.render(payload), 50)))
    create = lambda: services.create_memories(owner_id=owner, items=items)  # noqa: E731
    report("services.create_memories (all but JSON, and the database)", per(cost(create, 20)))
