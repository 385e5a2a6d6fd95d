"""A tour of the client: paging, round-trips, errors, streaming and the async client."""

import anyio

from aimemory import (
    AsyncMemoryClient,
    ChatResponse,
    MemoryClient,
    NotFoundError,
    RateLimitError,
    ValidationError,
)


def sync_tour() -> None:
    with MemoryClient(timeout=3, max_retries=2) as client:
        note = client.memories.create(user_id="user_123", type="fact", content="Lives in Lisbon")
        copy = client.memories.create(**note.model_dump())
        client.memories.update(copy.id, importance=3)

        for memory in client.memories.list(user_id="user_123", page_size=50):
            print(memory.created_at.isoformat(), memory.content)
        page = client.memories.list_page(user_id="user_123", page_size=10)
        print(len(page.memories), "memories; next page:", page.next_cursor)

        try:
            client.memories.create(user_id="user_123", type="fact", content="x", importance=9)
        except ValidationError as error:
            print(error.status_code, error.detail, error.errors)
        except RateLimitError as error:
            print("retry in", error.retry_after)
        try:
            client.memories.get(copy.id, timeout=1)
        except NotFoundError as error:
            print(error.detail)

        for item in client.chat(user_id="user_123", message="Where do I live?", stream=True):
            if isinstance(item, ChatResponse):
                print("\n", item.usage)
            else:
                print(item, end="", flush=True)


async def async_tour() -> None:
    async with AsyncMemoryClient() as client:
        await client.memories.upsert(
            user_id="user_123", type="preference", key="ui_theme", content="Likes dark mode"
        )
        context = await client.memories.context(user_id="user_123", query="theme", limit=3)
        for scored in context.memories:
            print(round(scored.relevance_score, 2), scored.content)
        async for memory in client.memories.list(user_id="user_123"):
            print(memory.id)
        stream = await client.chat(user_id="user_123", message="Which theme?", stream=True)
        async for item in stream:
            print(item)


if __name__ == "__main__":
    sync_tour()
    anyio.run(async_tour)
