import uuid

from django.db import transaction
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from memories import services
from memories.models import Memory
from memories.retrieval import build_summary, retrieve_context
from memories.serializers import (
    ContextRequestSerializer,
    ContextResponseSerializer,
    MemoryListQuerySerializer,
    MemorySerializer,
    MemoryStatsSerializer,
    OptionalUserQuerySerializer,
    UserQuerySerializer,
    memory_payload,
    now_context,
)
from memoryproject.schema import error_responses

TAGS = ["memories"]


def parse_memory_id(memory_id: str) -> uuid.UUID:
    """A path's memory id; a malformed one is a 404, like an id that does not exist."""
    try:
        return uuid.UUID(memory_id)
    except ValueError:
        raise NotFound() from None


def get_live_memory(request, memory_id: str, user_id: str | None = None) -> Memory:
    """The caller's live memory, or 404 exactly like a memory that never existed."""
    parsed = parse_memory_id(memory_id)
    rows = Memory.objects.for_owner(request.auth.owner_id).live().filter(pk=parsed)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    memory = rows.first()
    if memory is None:
        raise NotFound()
    return memory


def query_params(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class MemoryCollectionView(APIView):
    @extend_schema(
        summary="Create a memory",
        operation_id="memories_create",
        tags=TAGS,
        request=MemorySerializer,
        responses={200: MemorySerializer, **error_responses(400, 413)},
    )
    def post(self, request):
        serializer = MemorySerializer(data=request.data, context=now_context())
        serializer.is_valid(raise_exception=True)
        memory = services.create_memory(
            owner_id=request.auth.owner_id,
            data=serializer.validated_data,
            now=serializer.context["now"],
        )
        return Response(memory_payload(memory))

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


MEMORY_ID = OpenApiParameter("memory_id", str, OpenApiParameter.PATH, description="Memory UUID")


class MemoryDetailView(APIView):
    @extend_schema(
        summary="Get one live memory",
        operation_id="memories_get",
        tags=TAGS,
        parameters=[MEMORY_ID],
        responses={200: MemorySerializer, **error_responses(404)},
    )
    def get(self, request, memory_id):
        return Response(memory_payload(get_live_memory(request, memory_id)))

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
        parsed = parse_memory_id(memory_id)
        # Validated against the row as it is now, locked: rules mode derives key and value
        # from the current content and type, which a concurrent change could alter.
        with transaction.atomic():
            memory = services.lock_live_memory(owner_id=request.auth.owner_id, memory_id=parsed)
            serializer = MemorySerializer(memory, data=request.data, partial=True)
            serializer.is_valid(raise_exception=True)
            memory = services.update_memory(memory=memory, data=serializer.validated_data)
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
        try:
            parsed = uuid.UUID(memory_id)
        except ValueError:
            raise NotFound() from None
        # only(): a hard delete must work even for a row no configured key can decrypt.
        rows = Memory.objects.for_owner(request.auth.owner_id).filter(pk=parsed)
        memory = rows.only("pk", "owner_id").first()
        if memory is None:
            raise NotFound()
        services.hard_delete_memory(memory=memory, actor=str(request.auth.pk))
        return Response({"id": str(parsed), "deleted": True})


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
        memory = get_live_memory(request, memory_id, user_id=params.get("user_id"))
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
                        "relevance_score": memory.relevance_score,
                    }
                    for memory in memories
                ],
                "context_summary": build_summary(memories, max_chars),
            }
        )
