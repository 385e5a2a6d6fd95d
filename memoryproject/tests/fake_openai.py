"""A local OpenAI-compatible HTTP server for tests: scripted replies, recorded requests.

Speaks just enough of /v1/chat/completions and /v1/embeddings for the official client.
"""

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self):
        self.requests: list[dict] = []
        self.replies: list[dict] = []  # consumed in order; then the default reply
        self.default_reply = {"content": "ok"}
        self.embedding_status = 200
        self.embedding_stall = 0.0  # seconds each embeddings request waits before answering
        # Stalls ("stall", "stall_after", embedding_stall) end early when this is set.
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def script(self, *replies: dict) -> None:
        """Each reply: {"content": str} | {"status": int, "error": str} | {"raw": bytes}
        (sent as is with status 200) | plus "delay": seconds. Streamed requests get the
        content word by word; "break_after": N sends garbage after N chunks; "stall": seconds
        to wait, sending nothing, before the answer (or, with "stall_after": N, after N
        chunks of a stream), unless release is set first; "chunk_delay": seconds between
        chunks."""
        self.replies.extend(replies)

    def chat_requests(self) -> list[dict]:
        return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def embedding_requests(self) -> list[dict]:
        return [r["body"] for r in self.requests if r["path"].endswith("/embeddings")]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: dict) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(
                    {
                        "path": self.path,
                        "body": body,
                        "authorization": self.headers.get("Authorization"),
                    }
                )
                if self.path.endswith("/embeddings"):
                    return self._embeddings(body)
                reply = fake.replies.pop(0) if fake.replies else fake.default_reply
                if reply.get("delay"):
                    time.sleep(reply["delay"])
                if reply.get("stall") and "stall_after" not in reply:
                    fake.release.wait(reply["stall"])
                if "raw" in reply:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply["raw"])))
                    self.end_headers()
                    self.wfile.write(reply["raw"])
                    return None
                if reply.get("status", 200) != 200:
                    return self._send(
                        reply["status"],
                        {"error": {"message": reply.get("error", "boom"), "type": "server_error"}},
                    )
                if body.get("stream"):
                    return self._stream(body, reply)
                if "response_format" in body and reply.get("refuse_response_format"):
                    return self._send(
                        400, {"error": {"message": "response_format unsupported", "type": "x"}}
                    )
                self._send(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "fake-model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply["content"]},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                    },
                )

            def _stream(self, body, reply):
                """Server-sent chunks, one per word; usage last when asked for."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                words = reply["content"].split(" ")
                pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
                chunks = [{"delta": {"role": "assistant", "content": p}} for p in pieces]
                chunks.append({"delta": {}, "finish_reason": "stop"})
                for position, choice in enumerate(chunks):
                    if reply.get("break_after") == position:
                        self.wfile.write(b"data: {not json\n\n")
                        return
                    if reply.get("stall_after") == position:
                        fake.release.wait(reply.get("stall", 3600))
                    if reply.get("chunk_delay") and position:
                        time.sleep(reply["chunk_delay"])
                    event = {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": body.get("model", "fake-model"),
                        "choices": [{"index": 0, "finish_reason": None, **choice}],
                    }
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
                    event = {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": body.get("model", "fake-model"),
                        "choices": [],
                        "usage": usage,
                    }
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def _embeddings(self, body):
                if fake.embedding_stall:
                    fake.release.wait(fake.embedding_stall)
                if fake.embedding_status != 200:
                    return self._send(fake.embedding_status, {"error": {"message": "down"}})
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                data = [
                    {"object": "embedding", "index": i, "embedding": embed(text)}
                    for i, text in enumerate(inputs)
                ]
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": body.get("model"),
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    },
                )

        return Handler


TOPICS = {
    "food": ("eat", "food", "vegetarian", "meat", "dinner", "cook", "restaurant", "diet"),
    "work": ("job", "work", "nurse", "engineer", "office", "living", "career"),
    "pets": ("dog", "cat", "pet", "beagle", "puppy"),
}


def embed(text: str) -> list[float]:
    """Deterministic toy embedding: one dimension per topic, plus a small hash spread."""
    lowered = text.lower()
    vector = [float(sum(word in lowered for word in words)) for words in TOPICS.values()]
    digest = hashlib.sha256(lowered.encode()).digest()
    vector += [b / 2550 for b in digest[:5]]
    return vector
