import threading

from django.db import connections

from memories import services
from memories.serializers import MemorySerializer


def make_memory(owner_id: str, *, user_id: str = "user_1", now=None, **fields):
    """Create a memory through the same validation and service as the API; `now`
    backdates it (the service's clock otherwise)."""
    data = {"user_id": user_id, "type": "fact", "content": "likes tea", **fields}
    serializer = MemorySerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return services.create_memory(owner_id=owner_id, data=serializer.validated_data, now=now)


def run_concurrently(*actions) -> list[str]:
    """Run each action in its own thread (its own database connection); the names of the
    exceptions they raised."""
    errors: list[str] = []

    def run(action):
        try:
            action()
        except Exception as exc:  # reported to the test, not lost in the thread
            errors.append(type(exc).__name__)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    return errors
