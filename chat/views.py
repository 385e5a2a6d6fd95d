from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import services
from chat.serializers import (
    ChatRequestSerializer,
    ChatResponseSerializer,
    ExtractRequestSerializer,
    ExtractResponseSerializer,
    candidate_payload,
)
from memoryproject.schema import error_responses


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
        description="Every candidate is validated like a client-created memory; invalid ones "
        "are listed in `dropped`. With `save: true` valid ones are stored in one transaction: "
        "a candidate whose key matches a live memory updates it, identical content is not "
        "stored twice.",
        tags=["llm"],
        request=ExtractRequestSerializer,
        responses={200: ExtractResponseSerializer, **error_responses(400, 413, 502, 504)},
    )
    def post(self, request):
        serializer = ExtractRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        params = serializer.validated_data
        result = services.extract_memories(owner_id=request.auth.owner_id, **params)
        return Response(extraction_payload(result, user_id=params["user_id"], saved=params["save"]))


class ChatView(APIView):
    @extend_schema(
        summary="Chat with the user's memories injected into the system prompt",
        tags=["llm"],
        request=ChatRequestSerializer,
        responses={200: ChatResponseSerializer, **error_responses(400, 413, 502, 504)},
    )
    def post(self, request):
        serializer = ChatRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        params = dict(serializer.validated_data)
        params.setdefault("history", [])
        result = services.chat(owner_id=request.auth.owner_id, **params)
        return Response(
            {
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
                "extraction": extraction_payload(
                    result.extraction, user_id=params["user_id"], saved=True
                )
                if result.extraction
                else None,
                "extraction_error": result.extraction_error,
            }
        )
