"""What the Python client (aimemory) adds per call over raw httpx.

Both sides send the same request through the same httpx.Client and read the JSON answer;
the client also builds its headers, checks its retry rules and turns the JSON into typed
models. By default the answers come from an in-process httpx.MockTransport, so the figure
is the client's own CPU time, without network noise. With --url and --key, both sides call
a running service over keep-alive instead (then the difference is within the noise).

    .venv/bin/python bench/sdk_overhead.py [--calls 1000] [--rounds 7]
    .venv/bin/python bench/sdk_overhead.py --url http://127.0.0.1:10000 --key KEY
"""

import argparse
import json
import time
import uuid

import httpx
from aimemory import MemoryClient

MEMORY = {
    "id": str(uuid.uuid4()),
    "owner_id": "acme",
    "user_id": "user_123",
    "type": "preference",
    "content": "User prefers dark mode and works in fintech",
    "confidence": 1.0,
    "key": "ui_theme",
    "value": "dark",
    "importance": 4,
    "metadata": {"source": "settings"},
    "ttl_seconds": None,
    "expires_at": None,
    "ingestion_mode": "explicit",
    "is_deleted": False,
    "created_at": "2026-02-04T12:00:00Z",
    "updated_at": "2026-02-04T12:00:00Z",
}
CONTEXT = {
    "memories": [{**MEMORY, "memory_type": "preference", "relevance_score": 0.9}] * 5,
    "context_summary": "- [preference] User prefers dark mode and works in fintech\n" * 5,
}
LIST = [MEMORY] * 20


def mock_answer(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/context"):
        return httpx.Response(200, json=CONTEXT)
    if request.url.path == "/api/v1/memory" and request.method == "GET":
        return httpx.Response(200, json=LIST)
    return httpx.Response(200, json=MEMORY)


def per_call_us(raw, typed, calls: int, rounds: int) -> tuple[float, float]:
    """The best round's mean time per call of each, in microseconds. Rounds alternate, so
    that both sides see the same load on a shared machine; the best round is the one with
    the least interference."""
    raw(), typed()
    results: dict[object, list[float]] = {raw: [], typed: []}
    for _ in range(rounds):
        for function in (raw, typed):
            started = time.perf_counter()
            for _ in range(calls):
                function()
            results[function].append((time.perf_counter() - started) / calls * 1e6)
    return min(results[raw]), min(results[typed])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--url")
    parser.add_argument("--key")
    args = parser.parse_args()

    if args.url:
        http = httpx.Client()
        base, key = args.url.rstrip("/"), args.key
        with MemoryClient(api_key=key, base_url=base, http_client=httpx.Client()) as warm:
            MEMORY["id"] = warm.memories.create(
                user_id="user_123", type="fact", content="Works in fintech"
            ).id
    else:
        http = httpx.Client(transport=httpx.MockTransport(mock_answer))
        base, key = "http://memory.test", "aimsk_live_bench"
    headers = {"Authorization": f"Bearer {key}"}
    client = MemoryClient(api_key=key, base_url=base, http_client=http)
    memory_id = MEMORY["id"]
    context_body = {"user_id": "user_123", "query": "Which theme?", "limit": 5}
    create_body = {"user_id": "user_123", "type": "fact", "content": "Works in fintech"}

    cases = {
        "get": (
            lambda: http.get(f"{base}/api/v1/memory/{memory_id}", headers=headers).json(),
            lambda: client.memories.get(memory_id),
        ),
        "context (5 memories)": (
            lambda: http.post(
                f"{base}/api/v1/memory/context",
                headers={**headers, "Content-Type": "application/json"},
                content=json.dumps(context_body),
            ).json(),
            lambda: client.memories.context(**context_body),
        ),
        "list page (20 memories)": (
            lambda: http.get(
                f"{base}/api/v1/memory", params={"user_id": "user_123"}, headers=headers
            ).json(),
            lambda: client.memories.list_page(user_id="user_123"),
        ),
    }
    if not args.url:  # creates against a real service would fill its database
        cases["create"] = (
            lambda: http.post(
                f"{base}/api/v1/memory",
                headers={**headers, "Content-Type": "application/json"},
                content=json.dumps(create_body),
            ).json(),
            lambda: client.memories.create(**create_body),
        )
    calls = args.calls if not args.url else min(args.calls, 500)
    transport = "MockTransport" if not args.url else args.url
    print(f"{calls} calls a round, best of {args.rounds} rounds, transport: {transport}")
    print(f"{'call':26} {'raw httpx µs':>13} {'aimemory µs':>12} {'overhead µs':>12}")
    for name, (raw, typed) in cases.items():
        raw_us, typed_us = per_call_us(raw, typed, calls, args.rounds)
        print(f"{name:26} {raw_us:13.1f} {typed_us:12.1f} {typed_us - raw_us:12.1f}")


if __name__ == "__main__":
    main()
