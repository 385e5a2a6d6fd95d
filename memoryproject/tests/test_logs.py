"""Every line a server writes is one JSON object, whatever wrote it: gunicorn itself,
Django's request logger, the request log, a crash, a Python warning."""

import json
import os
import signal

import pytest

from conftest import http
from memoryproject.tests.servers import child_pids

pytestmark = pytest.mark.slow


def test_every_log_line_of_a_server_is_json(start_server):
    server = start_server(workers=2, DJANGO_SETTINGS_MODULE="memoryproject.tests.crash_settings")
    key = server.new_key()

    chat = http("POST", server.url + "/api/v1/chat", key, {"user_id": "u1", "message": "hi"})
    assert chat[0] == 503  # no LLM configured
    assert http("GET", server.url + "/no/such/path")[0] == 404
    assert http("GET", server.url + "/crash")[0] == 500
    assert http("GET", server.url + "/warn")[0] == 200
    # The gunicorn master: the shell's child, or the shell itself when it exec'd gunicorn.
    master = (child_pids(server.process.pid) or [server.process.pid])[0]
    os.kill(master, signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0

    lines = [line for line in server.log.read_text().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    assert all(isinstance(r, dict) and r["level"] and r["logger"] for r in records)

    def logged(logger: str, text: str) -> list[dict]:
        return [r for r in records if r["logger"] == logger and text in r["message"]]

    assert logged("gunicorn.error", "Starting gunicorn")
    assert logged("gunicorn.error", "Shutting down")
    assert logged("django.request", "Service Unavailable: /api/v1/chat")
    assert logged("django.request", "Internal Server Error: /crash")
    crash = logged("memoryproject.errors", "unhandled exception: RuntimeError")
    assert "boom with secret detail" in crash[0]["exception"]  # the traceback, in the line
    assert logged("py.warnings", "a warning from a view")
    statuses = {r.get("path"): r.get("status") for r in logged("memoryproject.request", "")}
    assert statuses["/api/v1/chat"] == 503
    assert statuses["/no/such/path"] == 404
