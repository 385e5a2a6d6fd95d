import json

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import services
from chat.concurrency import TOO_MANY, acquire_long_request
from chat.serializers import (
    ChatRequestSerializer,
    ChatResponseSerializer,
    ExtractRequestSerializer,
    ExtractResponseSerializer,
    candidate_payload,
)
from memoryproject.schema import ERROR, error_responses


def llm_error_responses() -> dict:
    """The errors of an endpoint that waits on the LLM: a 429 also for the per-owner bound
    on such requests, a 503 also when this server has no room for one more."""
    return {
        **error_responses(400, 413, 502, 504),
        429: OpenApiResponse(
            ERROR,
            description="`Rate limit exceeded`, or `" + TOO_MANY + "` when the owner already "
            "holds LLM_MAX_CONCURRENT_PER_OWNER requests that wait on the LLM; see "
            "`Retry-After`.",
        ),
        503: OpenApiResponse(
            ERROR,
            description="Database or LLM unavailable, or this server is busy with other LLM "
            "requests (retry after `Retry-After`).",
        ),
    }


def extraction_payload(result, *, user_id: str, saved: bool) -> dict:
    return {
        "user_id": user_id,
        "saved": saved,
        "candidates": [candidate_payload(c) for c in result.candidates],
        "dropped": result.dropped,
    }


class ExtractView(APIView):
    @extend_schema(
        summary="Extract candidate memories from a conversation with the LLM",
        operation_id="memories_extract",
        description="Every candidate is validated like a client-created memory; invalid ones "
        "are listed in `dropped`. With `save: true` valid ones are stored in one transaction: "
        "a candidate whose key matches a live memory updates it, identical content is not "
        "stored twice.",
        tags=["llm"],
        request=ExtractRequestSerializer,
        responses={200: ExtractResponseSerializer, **llm_error_responses()},
    )
    def post(self, request):
        serializer = ExtractRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        params = serializer.validated_data
        with acquire_long_request(owner_id=request.auth.owner_id):
            result = services.extract_memories(owner_id=request.auth.owner_id, **params)
        return Response(extraction_payload(result, user_id=params["user_id"], saved=params["save"]))


def chat_payload(result, *, user_id: str) -> dict:
    return {
        "response": result.response,
        "model": result.model,
        "usage": result.usage,
        "memories_used": [
            {
                "id": str(m.id),
                "type": m.type,
                "content": m.content,
                "relevance_score": m.relevance_score,
            }
            for m in result.memories
        ],
        "extraction": extraction_payload(result.extraction, user_id=user_id, saved=True)
        if result.extraction
        else None,
        "extraction_error": result.extraction_error,
    }


def server_sent_events(events, *, user_id: str):
    """text/event-stream: `delta` events ({"content"}), then `done` (the same body as a
    non-streamed answer) or `error` ({"detail"})."""
    for name, data in events:
        if name == "delta":
            data = {"content": data}
        elif name == "done":
            data = chat_payload(data, user_id=user_id)
        else:
            data = {"detail": data}
        yield f"event: {name}\ndata: {json.dumps(data)}\n\n"


class ChatView(APIView):
    @extend_schema(
        summary="Chat with the user's memories injected into the system prompt",
        operation_id="chat_create",
        description="With `stream: true` the answer is `text/event-stream`: `delta` events "
        '(`{"content": "..."}`) as the model writes, then one `done` event whose data is the '
        'same object a non-streamed answer returns, or an `error` event (`{"detail": "..."}`) '
        "if the LLM stream breaks off. Errors before the first delta are plain JSON errors.",
        tags=["llm"],
        request=ChatRequestSerializer,
        responses={
            (200, "application/json"): ChatResponseSerializer,
            (200, "text/event-stream"): inline_serializer(
                "ChatStreamEvent",
                {
                    "event": serializers.ChoiceField(choices=["delta", "done", "error"]),
                    "data": serializers.CharField(
                        help_text='JSON: {"content"} for delta, the ChatResponse object for '
                        'done, {"detail"} for error.'
                    ),
                },
            ),
            **llm_error_responses(),
        },
    )
    def post(self, request):
        serializer = ChatRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        params = dict(serializer.validated_data)
        params.setdefault("history", [])
        user_id = params["user_id"]
        slot = acquire_long_request(owner_id=request.auth.owner_id)
        if not params.pop("stream"):
            with slot:
                result = services.chat(owner_id=request.auth.owner_id, **params)
            return Response(chat_payload(result, user_id=user_id))
        try:
            events = services.chat_stream(owner_id=request.auth.owner_id, **params)
        except BaseException:
            slot.release()
            raise
        # The slot is held until the stream ends: Django closes the content when the
        # answer is complete, and the server does when the client goes away.
        content = services.ClosingIterator(
            server_sent_events(events, user_id=user_id), events.close, slot.release
        )
        response = StreamingHttpResponse(content, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # proxies must not hold the deltas back
        return response
