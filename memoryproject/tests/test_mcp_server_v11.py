"""aimemory-mcp's remember with a key, which needs the upsert endpoint of API v1.1."""

import pytest

from memoryproject.tests.test_mcp_server import call_all, connect  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow


def test_remember_with_a_key_creates_then_updates(connect, api_key_text, user_id):  # noqa: F811
    theme = {"type": "preference", "key": "ui_theme"}
    first, second, again, listed = call_all(
        connect,
        api_key_text,
        user_id,
        [
            ("remember", {**theme, "content": "Prefers dark mode", "value": "dark"}),
            ("remember", {**theme, "content": "Prefers light mode now", "value": "light"}),
            ("remember", {**theme, "content": "Prefers light mode now", "value": "light"}),
            ("list_memories", {}),
        ],
    )

    assert [r.structured_content["result"] for r in (first, second, again)] == [
        "created",
        "updated",
        "unchanged",
    ]
    memory_id = first.structured_content["memory"]["id"]
    assert second.structured_content["memory"]["id"] == memory_id
    assert second.structured_content["memory"]["value"] == "light"
    assert [m["id"] for m in listed.structured_content["memories"]] == [memory_id]
