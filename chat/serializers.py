from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from memories.models import MAX_CONTENT_CHARS
from memories.serializers import JsonObjectSerializer, UserIdField, ValueField
from memoryproject.parsing import StrictCharField

MAX_MESSAGES = 100


class MessageSerializer(JsonObjectSerializer):
    role = serializers.ChoiceField(choices=["user", "assistant"])
    content = StrictCharField(max_length=MAX_CONTENT_CHARS, trim_whitespace=False)


@extend_schema_serializer(component_name="Extract")  # ExtractRequest, not ExtractRequestRequest
class ExtractRequestSerializer(JsonObjectSerializer):
    user_id = UserIdField()
    messages = MessageSerializer(  # type: ignore[call-arg]  # many=True takes ListSerializer's
        many=True, required=False, max_length=MAX_MESSAGES, help_text="The conversation."
    )
    text = StrictCharField(
        max_length=MAX_CONTENT_CHARS,
        required=False,
        trim_whitespace=False,
        help_text="Shorthand for one user message.",
    )
    save = serializers.BooleanField(  # type: ignore[assignment]  # a field, not the method
        default=False, help_text="Store the valid candidates (default: only return them)."
    )

    def validate(self, attrs):
        messages = attrs.get("messages") or []
        if "text" in attrs:
            messages = [*messages, {"role": "user", "content": attrs.pop("text")}]
        if not messages:
            raise serializers.ValidationError({"messages": ["Send messages or text."]})
        attrs["messages"] = messages
        return attrs


class CandidateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["not_saved", "created", "updated", "duplicate"],
        help_text="not_saved (save was false), created, updated (a live memory with the "
        "same key), duplicate (identical content already stored).",
    )
    memory_id = serializers.UUIDField(allow_null=True, help_text="Set when saved.")
    type = serializers.CharField()
    content = serializers.CharField()
    key = serializers.CharField(allow_null=True)
    value = ValueField(allow_null=True)
    confidence = serializers.FloatField()
    importance = serializers.IntegerField(allow_null=True)


class DroppedSerializer(serializers.Serializer):
    index = serializers.IntegerField(
        allow_null=True, help_text="Position in the model's list, or null for the whole reply."
    )
    reason = serializers.CharField()
    candidate = serializers.JSONField(allow_null=True)


class ExtractResponseSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    saved = serializers.BooleanField()
    candidates = CandidateSerializer(many=True)
    dropped = DroppedSerializer(many=True)


@extend_schema_serializer(component_name="Chat")  # ChatRequest, not ChatRequestRequest
class ChatRequestSerializer(JsonObjectSerializer):
    user_id = UserIdField()
    message = StrictCharField(max_length=MAX_CONTENT_CHARS, trim_whitespace=False)
    history = MessageSerializer(  # type: ignore[call-arg]  # many=True takes ListSerializer's
        many=True, required=False, max_length=MAX_MESSAGES, help_text="Prior turns, oldest first."
    )
    memory_limit = serializers.IntegerField(min_value=0, max_value=50, default=5)
    extract = serializers.BooleanField(
        default=False, help_text="Extract and save memories from this exchange."
    )
    stream = serializers.BooleanField(
        default=False, help_text="Answer as text/event-stream (see the description)."
    )

    def validate_message(self, message):
        if not message.strip():
            raise serializers.ValidationError("Must not be empty.")
        return message


class MemoryUsedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.CharField()
    content = serializers.CharField()
    relevance_score = serializers.FloatField()


class ChatResponseSerializer(serializers.Serializer):
    response = serializers.CharField()
    model = serializers.CharField()
    usage = serializers.DictField(child=serializers.IntegerField())
    memories_used = MemoryUsedSerializer(many=True)
    extraction = ExtractResponseSerializer(
        allow_null=True, help_text="With extract=true: what was extracted and saved."
    )
    extraction_error = serializers.CharField(
        allow_null=True, help_text="Why extraction failed, when it did (the answer stands)."
    )


def candidate_payload(candidate: dict) -> dict:
    data, memory = candidate["data"], candidate.get("memory")
    return {
        "status": candidate["status"],
        "memory_id": str(memory.id) if memory else None,
        "type": data["type"],
        "content": data["content"],
        "key": data.get("key"),
        "value": data.get("value"),
        "confidence": data.get("confidence", 1.0),
        "importance": data.get("importance"),
    }
