from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from memories import services
from memories.idempotency import HEADER, KEY_ERROR, REPLAYED_HEADER, idempotent
from memories.models import Memory, MemoryVersion
from memories.retrieval import build_summary, retrieve_context
from memories.serializers import (
    ContextRequestSerializer,
    ContextResponseSerializer,
    MemoryBatchDeleteResponseSerializer,
    MemoryBatchDeleteSerializer,
    MemoryBatchResponseSerializer,
    MemoryBatchSerializer,
    MemoryListQuerySerializer,
    MemorySerializer,
    MemoryStatsSerializer,
    MemoryUpsertResponseSerializer,
    MemoryUpsertSerializer,
    MemoryVersionSerializer,
    OptionalUserQuerySerializer,
    UserQuerySerializer,
    memory_payload,
    version_payload,
)
from memoryproject.parsing import query_params
from memoryproject.schema import error_responses
from replicas.routing import read_only

TAGS = ["memories"]


IDEMPOTENCY_PARAMETERS = [
    OpenApiParameter(
        HEADER,
        str,
        OpenApiParameter.HEADER,
        required=False,
        pattern=r"^[\x21-\x7e]{1,255}$",
        description="Makes the write safe to retry: the first 2xx response is kept for 24 "
        "hours and replayed for the same key, method, path and JSON body (compared after "
        "parsing), with `Idempotent-Replayed: true`. The same key with another request is a "
        "422; while the first request runs, a 409. Keys are scoped to the owner. "
        + KEY_ERROR.replace("Must be", "Value:"),
    ),
    OpenApiParameter(
        REPLAYED_HEADER,
        str,
        OpenApiParameter.HEADER,
        response=[200],
        enum=["true"],
        description="Present on a replayed response.",
    ),
]


def _created_payload(memories: list[Memory]) -> dict:
    return memory_payload(memories[0])


class MemoryCollectionView(APIView):
    @extend_schema(
        summary="Create a memory",
        operation_id="memories_create",
        tags=TAGS,
        parameters=IDEMPOTENCY_PARAMETERS,
        request=MemorySerializer,
        responses={200: MemorySerializer, **error_responses(400, 409, 413, 422)},
    )
    @idempotent(user_ids=lambda body: [body["user_id"]], respond=_created_payload)
    def post(self, request, keep=None):
        serializer = MemorySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        memories = services.create_memories(
            owner_id=request.auth.owner_id, items=[serializer.validated_data], keep=keep
        )
        return Response(_created_payload(memories))

    @extend_schema(
        summary="List a user's live memories, newest first",
        operation_id="memories_list",
        description="A bare JSON array. When more rows exist, the `Link` header holds the "
        'next page\'s URL (`rel="next"`) and `X-Next-Cursor` its cursor.',
        tags=TAGS,
        parameters=[
            MemoryListQuerySerializer,
            OpenApiParameter(
                "Link",
                str,
                OpenApiParameter.HEADER,
                response=[200],
                description='`<URL of the next page>; rel="next"`, when there is one.',
            ),
            OpenApiParameter(
                "X-Next-Cursor",
                str,
                OpenApiParameter.HEADER,
                response=[200],
                description="The `cursor` value of the next page, when there is one.",
            ),
        ],
        responses={
            200: OpenApiResponse(MemorySerializer(many=True), description="Live memories."),
            **error_responses(400),
        },
    )
    @read_only
    def get(self, request):
        params = query_params(MemoryListQuerySerializer, request)
        page, last = services.list_memories(owner_id=request.auth.owner_id, **params)
        response = Response([memory_payload(memory) for memory in page])
        if last is not None:
            cursor = services.encode_cursor(last)
            query = request.query_params.copy()
            query["cursor"] = cursor
            url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
            response["Link"] = f'<{url}>; rel="next"'
            response["X-Next-Cursor"] = cursor
        return response


MEMORY_ID = OpenApiParameter(
    "memory_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Memory UUID"
)


class MemoryDetailView(APIView):
    @extend_schema(
        summary="Get one live memory",
        operation_id="memories_get",
        tags=TAGS,
        parameters=[MEMORY_ID],
        responses={200: MemorySerializer, **error_responses(404)},
    )
    @read_only
    def get(self, request, memory_id):
        return Response(
            memory_payload(
                services.live_memory(owner_id=request.auth.owner_id, memory_id=memory_id)
            )
        )

    @extend_schema(
        summary="Change fields of a live memory",
        operation_id="memories_update",
        description="Same validation as create; `updated_at` moves; `user_id` cannot change "
        "(it is ignored, like the read-only fields, so a memory read from the API can be sent "
        "back). Changing `ttl_seconds` recomputes `expires_at` from `created_at`.",
        tags=TAGS,
        parameters=[MEMORY_ID],
        request=MemorySerializer,
        responses={200: MemorySerializer, **error_responses(400, 404, 413)},
    )
    def patch(self, request, memory_id):
        # Validated against the row as it is now, locked: rules mode derives key and value
        # from the current content and type, which a concurrent change could alter.
        with transaction.atomic():
            memory = services.live_memory(
                owner_id=request.auth.owner_id, memory_id=memory_id, lock=True
            )
            serializer = MemorySerializer(memory, data=request.data, partial=True)
            serializer.is_valid(raise_exception=True)
            memory = services.update_memory(
                memory=memory, data=serializer.validated_data, locked=True
            )
        return Response(memory_payload(memory))

    @extend_schema(
        summary="Delete a memory for good (any state)",
        operation_id="memories_delete",
        tags=TAGS,
        parameters=[MEMORY_ID],
        responses={
            200: inline_serializer(
                "HardDeleted",
                {"id": serializers.UUIDField(), "deleted": serializers.BooleanField()},
            ),
            **error_responses(404),
        },
    )
    def delete(self, request, memory_id):
        # only(): a hard delete must work even for a row no configured key can decrypt.
        rows = Memory.objects.for_owner(request.auth.owner_id).filter(pk=memory_id)
        memory = rows.only("pk", "owner_id").first()
        if memory is None:
            raise NotFound()
        services.hard_delete_memory(memory=memory, actor=str(request.auth.pk))
        return Response({"id": str(memory_id), "deleted": True})


class MemorySoftDeleteView(APIView):
    @extend_schema(
        summary="Soft-delete a live memory (final in v1)",
        operation_id="memories_soft_delete",
        description="Sets `is_deleted` and moves `updated_at`; the row stays for audit. "
        "With `user_id`, a memory of another user is a 404.",
        tags=TAGS,
        parameters=[MEMORY_ID, OptionalUserQuerySerializer],
        responses={200: MemorySerializer, **error_responses(400, 404)},
    )
    def delete(self, request, memory_id):
        params = query_params(OptionalUserQuerySerializer, request)
        memory = services.live_memory(
            owner_id=request.auth.owner_id, memory_id=memory_id, user_id=params.get("user_id")
        )
        memory = services.soft_delete_memory(memory=memory)
        return Response(memory_payload(memory))


class MemoryStatsView(APIView):
    @extend_schema(
        summary="Memory counts for one user",
        operation_id="memories_stats",
        tags=TAGS,
        parameters=[UserQuerySerializer],
        responses={200: MemoryStatsSerializer, **error_responses(400)},
    )
    @read_only
    def get(self, request):
        params = query_params(UserQuerySerializer, request)
        stats = services.memory_stats(owner_id=request.auth.owner_id, user_id=params["user_id"])
        return Response(MemoryStatsSerializer(stats).data)


class MemoryContextView(APIView):
    @extend_schema(
        summary="The memories that matter for the current message",
        operation_id="memories_context",
        description="Ranks the user's live memories against `query` on an encrypted "
        "keyword index (BM25 with related words), blended with importance and recency; "
        "queries that match nothing fall back to importance, then recency.",
        tags=TAGS,
        request=ContextRequestSerializer,
        responses={200: ContextResponseSerializer, **error_responses(400, 413)},
    )
    @read_only
    def post(self, request):
        serializer = ContextRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        params = dict(serializer.validated_data)
        max_chars = params.pop("max_chars")
        memories = retrieve_context(owner_id=request.auth.owner_id, **params)
        return Response(
            {
                "memories": [
                    {
                        **memory_payload(memory),
                        "memory_type": memory.type,
                        "relevance_score": memory.relevance_score,  # type: ignore[attr-defined]
                    }
                    for memory in memories
                ],
                "context_summary": build_summary(memories, max_chars),
            }
        )


EXAMPLE_ID = "3f0c2a9e-5b1d-4c6e-9a7f-2d8b1e4c6a10"
EXAMPLE_MEMORY = {
    "id": EXAMPLE_ID, "owner_id": "my_customer_001", "user_id": "user_123",
    "type": "preference", "content": "User prefers dark mode", "confidence": 1.0,
    "key": "ui_theme", "value": "dark", "importance": 4, "metadata": {}, "ttl_seconds": None,
    "expires_at": None, "ingestion_mode": "explicit", "is_deleted": False,
    "created_at": "2026-11-29T10:00:00Z", "updated_at": "2026-11-29T10:00:00Z",
}  # fmt: skip
EXAMPLE_BODY = {
    "user_id": "user_123", "type": "preference", "content": "User prefers dark mode",
    "key": "ui_theme", "value": "dark", "importance": 4,
}  # fmt: skip
BATCH_EXAMPLES = [
    OpenApiExample(
        "Two memories",
        request_only=True,
        value={
            "memories": [
                EXAMPLE_BODY,
                {"user_id": "user_123", "type": "fact", "content": "Lives in Lisbon"},
            ]
        },
    ),
    OpenApiExample("Stored", response_only=True, value={"memories": [EXAMPLE_MEMORY]}),
]
UPSERT_EXAMPLES = [
    OpenApiExample("Keep the theme current", request_only=True, value=EXAMPLE_BODY),
    OpenApiExample(
        "Updated",
        response_only=True,
        value={
            "result": "updated",
            "memory": {**EXAMPLE_MEMORY, "updated_at": "2026-11-29T11:00:00Z"},
        },
    ),
]
BATCH_DELETE_EXAMPLES = [
    OpenApiExample(
        "Two ids",
        request_only=True,
        value={"ids": [EXAMPLE_ID, "0d8e3a57-1f0e-4c55-a8a4-6e1dd2b8a111"]},
    ),
    OpenApiExample(
        "One deleted, one unknown",
        response_only=True,
        value={"deleted": [EXAMPLE_ID], "not_found": ["0d8e3a57-1f0e-4c55-a8a4-6e1dd2b8a111"]},
    ),
]
HISTORY_EXAMPLES = [
    OpenApiExample(
        "Created, then changed",
        response_only=True,
        value=[
            {
                "version": 1,
                "event": "created",
                "recorded_at": "2026-11-29T10:00:00Z",
                "type": "preference",
                "content": "User prefers light mode",
                "key": "ui_theme",
                "value": "light",
                "importance": 4,
                "confidence": 1.0,
                "metadata": {},
                "expires_at": None,
            },
            {
                "version": 2,
                "event": "updated",
                "recorded_at": "2026-11-29T11:00:00Z",
                "type": "preference",
                "content": "User prefers dark mode",
                "key": "ui_theme",
                "value": "dark",
                "importance": 4,
                "confidence": 1.0,
                "metadata": {},
                "expires_at": None,
            },
        ],
    )
]


def _memory_users(memories: list[dict]) -> list[str]:
    return [memory["user_id"] for memory in memories]


def _batch_payload(memories: list[Memory]) -> dict:
    return {"memories": [memory_payload(memory) for memory in memories]}


class MemoryBatchView(APIView):
    @extend_schema(
        summary="Create up to 100 memories, all or nothing",
        operation_id="memories_create_batch",
        description="Each item is exactly a `POST /api/v1/memory` body and is validated the "
        "same way. If any item is invalid, nothing is stored and the 400's `errors` is "
        '`{"memories": {"<index>": {<field>: [messages]}}}` for the bad items only. One '
        "request: one rate-limit token.",
        tags=TAGS,
        parameters=IDEMPOTENCY_PARAMETERS,
        request=MemoryBatchSerializer,
        responses={200: MemoryBatchResponseSerializer, **error_responses(400, 409, 413, 422)},
        examples=BATCH_EXAMPLES,
    )
    @idempotent(user_ids=lambda body: _memory_users(body["memories"]), respond=_batch_payload)
    def post(self, request, keep=None):
        serializer = MemoryBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        memories = services.create_memories(
            owner_id=request.auth.owner_id,
            items=serializer.validated_data["memories"],
            keep=keep,
        )
        return Response(_batch_payload(memories))


class MemoryBatchDeleteView(APIView):
    @extend_schema(
        summary="Delete up to 100 memories for good",
        operation_id="memories_delete_batch",
        description="In one transaction, each audited like `DELETE /api/v1/memory/{id}`. An "
        "id of another owner, or of no memory, is in `not_found`.",
        tags=TAGS,
        parameters=IDEMPOTENCY_PARAMETERS,
        request=MemoryBatchDeleteSerializer,
        responses={
            200: MemoryBatchDeleteResponseSerializer,
            **error_responses(400, 409, 413, 422),
        },
        examples=BATCH_DELETE_EXAMPLES,
    )
    @idempotent(user_ids=lambda body: [])  # ids only: no end user's data
    def post(self, request):
        serializer = MemoryBatchDeleteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deleted, not_found = services.hard_delete_memories(
            owner_id=request.auth.owner_id,
            ids=serializer.validated_data["ids"],
            actor=str(request.auth.pk),
        )
        return Response(
            {"deleted": [str(pk) for pk in deleted], "not_found": [str(pk) for pk in not_found]}
        )


class MemoryUpsertView(APIView):
    @extend_schema(
        summary="Create or update the user's memory with this key",
        operation_id="memories_upsert",
        description="Validated exactly like a create, with `key` required. The user's newest "
        "live memory with that key gets the fields the request gives (the others keep their "
        "values; `ttl_seconds` counts from its `created_at`, as in PATCH); without one, a "
        "memory is created. Concurrent upserts of one key never create two memories.",
        tags=TAGS,
        parameters=IDEMPOTENCY_PARAMETERS,
        request=MemoryUpsertSerializer,
        responses={200: MemoryUpsertResponseSerializer, **error_responses(400, 409, 413, 422)},
        examples=UPSERT_EXAMPLES,
    )
    @idempotent(user_ids=lambda body: [body["memory"]["user_id"]])
    def post(self, request):
        serializer = MemoryUpsertSerializer(data=request.data, context={"defer_ttl_check": True})
        serializer.is_valid(raise_exception=True)

        def as_new():
            conflict = getattr(serializer, "ttl_conflict", None)
            if conflict:
                raise ValidationError(conflict)
            return serializer.validated_data

        def as_a_change(existing):
            # An update is validated as PATCH validates it: rules mode against the memory's
            # current type and key, a TTL from its created_at; unless that cannot differ.
            if serializer.holds_as_a_change_of(existing):
                return serializer.validated_data
            change = MemorySerializer(existing, data=request.data, partial=True)
            change.is_valid(raise_exception=True)
            return change.validated_data

        result, memory = services.upsert_memory(
            owner_id=request.auth.owner_id,
            data=serializer.validated_data,
            validate_new=as_new,
            revalidate=as_a_change,
        )
        return Response({"result": result, "memory": memory_payload(memory)})


class MemoryHistoryView(APIView):
    @extend_schema(
        summary="A memory's versions, oldest first",
        operation_id="memories_history",
        description="Version 1 is the creation; every PATCH, upsert, extraction with save "
        "and soft delete adds one; the last one is the memory's current state. A soft-deleted "
        "memory keeps its history; a hard delete removes it. The newest 100 versions of a "
        "memory are kept.",
        tags=TAGS,
        parameters=[MEMORY_ID],
        responses={
            200: OpenApiResponse(MemoryVersionSerializer(many=True), description="Oldest first."),
            **error_responses(404),
        },
        examples=HISTORY_EXAMPLES,
    )
    @read_only
    def get(self, request, memory_id):
        if not Memory.objects.for_owner(request.auth.owner_id).filter(pk=memory_id).exists():
            raise NotFound()
        versions = MemoryVersion.objects.filter(memory_id=memory_id).order_by("version")
        return Response([version_payload(version) for version in versions])


class MemoryNotFoundView(APIView):
    """Any other path under memory/: the JSON 404 a malformed memory id always got, after
    authentication, as before."""

    schema = None

    def get(self, request, rest):
        raise NotFound()

    post = patch = delete = put = options = get
