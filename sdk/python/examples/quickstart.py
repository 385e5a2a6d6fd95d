"""The canonical flow: store a memory, retrieve context, inject it into an LLM prompt."""

from openai import OpenAI

from aimemory import MemoryClient

memory = MemoryClient()  # reads AIMEMORY_API_KEY and AIMEMORY_BASE_URL
memory.memories.create(
    user_id="user_123",
    type="preference",
    content="User prefers dark mode and works in fintech",
    key="ui_theme",
    value="dark",
    importance=4,
)

question = "What theme should I use for the UI?"
context = memory.memories.context(user_id="user_123", query=question, limit=5)
system_prompt = f"""You are a helpful assistant.

User Context:
{context.context_summary}

Use this context to personalize your responses."""

llm = OpenAI()
answer = llm.chat.completions.create(
    model="gpt-4o-mini",
    messages=[
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": question},
    ],
)
print(answer.choices[0].message.content)
