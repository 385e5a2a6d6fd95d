"""gunicorn settings for the Procfile's web process."""

import logging
import multiprocessing
import os

from gunicorn.glogging import Logger

from memoryproject import gunicorn_errors
from memoryproject.logging import JsonFormatter
from memoryproject.startup import require_settings

# Incomplete settings stop the master here with one line, before any worker prints a
# traceback for the same reason.
require_settings()

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

# Request limits, set deliberately (gunicorn answers these itself, before Django): the
# longest request line a valid request needs is about 6.5 KB (a list query whose user_id
# and key are 255 four-byte characters, percent-encoded, plus a cursor), so the line may be
# gunicorn's maximum, 8,190 bytes; past it, 414. Header fields: 100 at most, each 8,190
# bytes at most (431). Bodies are limited by Django (1 MiB, 413).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# gunicorn's own error pages are HTML; the interface promises JSON for every error.
gunicorn_errors.install()


class JsonLogger(Logger):
    """gunicorn's own lines (start, workers, signals, its errors) as JSON, like the
    application's; Python warnings in the master go the same way."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
        logging.captureWarnings(True)
        warnings_log = logging.getLogger("py.warnings")
        warnings_log.handlers = list(self.error_log.handlers)
        warnings_log.propagate = False


logger_class = JsonLogger
