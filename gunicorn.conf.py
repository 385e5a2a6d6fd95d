"""gunicorn settings for the Procfile's web process."""

import multiprocessing
import os

# One worker per core, at least two; WEB_CONCURRENCY overrides.
workers = int(os.environ.get("WEB_CONCURRENCY") or max(2, multiprocessing.cpu_count()))
bind = f"0.0.0.0:{os.environ.get('PORT') or 10000}"
# Chat with extract=true may wait for two LLM calls (OPENAI_TIMEOUT_SECONDS each).
timeout = 120
graceful_timeout = 20
keepalive = 5
# Application logs are JSON lines on stderr; gunicorn's access log would repeat them.
accesslog = None
errorlog = "-"
