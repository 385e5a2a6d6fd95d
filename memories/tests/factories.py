from memories import services
from memories.serializers import MemorySerializer, now_context


def make_memory(owner_id: str, *, user_id: str = "user_1", now=None, **fields):
    """Create a memory through the same validation and service as the API."""
    data = {"user_id": user_id, "type": "fact", "content": "likes tea", **fields}
    context = now_context()
    if now is not None:
        context["now"] = now
    serializer = MemorySerializer(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return services.create_memory(
        owner_id=owner_id, data=serializer.validated_data, now=context["now"]
    )
