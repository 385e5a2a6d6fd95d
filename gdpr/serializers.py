from rest_framework import serializers

from memories.serializers import MemorySerializer, MemoryVersionSerializer


class ExportRecordSerializer(MemorySerializer):
    state = serializers.ChoiceField(choices=["live", "deleted", "expired"])
    history = MemoryVersionSerializer(many=True, help_text="The memory's versions, oldest first.")


class ExportCountsSerializer(serializers.Serializer):
    memories = serializers.IntegerField(help_text="All memory rows: live, deleted, expired.")
    live = serializers.IntegerField()
    deleted = serializers.IntegerField()
    expired = serializers.IntegerField()
    memory_embeddings = serializers.IntegerField(help_text="Stored embedding vectors.")
    memory_versions = serializers.IntegerField(help_text="History entries of these memories.")
    idempotent_responses = serializers.IntegerField(
        help_text="Responses kept for Idempotency-Key retries (24 hours) that hold the user's "
        "data; the same data is in `memories`. Erased with the user."
    )


class ExportSerializer(serializers.Serializer):
    owner_id = serializers.CharField()
    user_id = serializers.CharField()
    exported_at = serializers.DateTimeField()
    counts = ExportCountsSerializer()
    memories = ExportRecordSerializer(many=True, help_text="Oldest first, every state.")


class ErasureSerializer(serializers.Serializer):
    owner_id = serializers.CharField()
    user_id = serializers.CharField()
    deleted = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Rows removed per kind: idempotent_responses, memory_terms, "
        "memory_embeddings, memory_versions, memories.",
    )
    total = serializers.IntegerField()
