"""The canonical flow: store a memory, retrieve context, inject it into an LLM prompt."""

from openai import OpenAI

from aimemory import MemoryClient

memory = MemoryClient()  # reads AIMEMORY_API_KEY and AIMEMORY_BASE_URL
memory.memories.create(
    user_id="user_123", type="preference", content="Prefers dark mode, works in fintech"
)

question = "What theme should I use for the UI?"
context = memory.memories.context(user_id="user_123", query=question, limit=5)
system = f"You are a helpful assistant.\n\nUser context:\n{context.context_summary}"

answer = OpenAI().chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
)
print(answer.choices[0].message.content)
