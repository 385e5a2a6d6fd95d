from rest_framework import serializers

from memories.serializers import MemorySerializer


class ExportRecordSerializer(MemorySerializer):
    state = serializers.ChoiceField(choices=["live", "deleted", "expired"])


class ExportCountsSerializer(serializers.Serializer):
    memories = serializers.IntegerField(help_text="All memory rows: live, deleted, expired.")
    live = serializers.IntegerField()
    deleted = serializers.IntegerField()
    expired = serializers.IntegerField()
    memory_embeddings = serializers.IntegerField(help_text="Stored embedding vectors.")


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
        help_text="Rows removed per kind: memories, memory_terms, memory_embeddings.",
    )
    total = serializers.IntegerField()
