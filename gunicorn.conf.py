"""gunicorn settings for the Procfile's web process."""

import logging
import math
import os
from pathlib import Path

from gunicorn.glogging import Logger

from memoryproject import gunicorn_errors
from memoryproject.logging import JsonFormatter
from memoryproject.startup import require_settings

# Incomplete settings stop the master here with one line, before any worker prints a
# traceback for the same reason.
require_settings()


def usable_cpus(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """The CPUs this process may run on: its affinity mask, lowered by a cgroup CPU quota
    (a container limited to 1.5 CPUs on a 64-core host gets 2, not 64)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    root = Path(cgroup_root)
    try:  # cgroup v2: "max 100000" or "<quota> <period>"
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        try:  # cgroup v1: a quota of -1 means none
            quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
            period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
            if quota > 0 and period > 0:
                cpus = min(cpus, math.ceil(quota / period))
        except (OSError, ValueError):
            pass
    return max(1, cpus or 1)


# One process per usable CPU, at least two; each runs WEB_THREADS threads, so a request
# that waits on the network (an LLM answer, a stream, a slow client) holds one thread, not
# the whole process. Django caps the requests that wait on the LLM at half the threads of
# a process, so short requests always find a thread.
# WEB_CONCURRENCY and WEB_THREADS override.
workers = int(os.environ.get("WEB_CONCURRENCY") or max(2, usable_cpus()))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS") or 8)


def post_fork(server, worker):
    # Django caps the requests that wait on the LLM at half of settings.WEB_THREADS: give
    # it the threads the worker really runs, however they were set (--threads,
    # GUNICORN_CMD_ARGS).
    from django.conf import settings

    settings.WEB_THREADS = server.cfg.threads


bind = f"0.0.0.0:{os.environ.get('PORT') or 10000}"
# With threads this is the time a process may go without a heartbeat, not a request's
# limit; requests end sooner by themselves: each LLM call by OPENAI_DEADLINE_SECONDS
# (chat with extract=true makes two).
timeout = 120
graceful_timeout = 20
# No keep-alive: each request is accepted by whichever process is free first. A kept
# connection stays with the process that accepted it, so a few busy clients (a proxy's
# pooled connections, a load test's) could pile onto one process while another idled,
# its threads sharing one interpreter lock, one CPU: 8 connections split 5 and 3 or 6 and
# 2 ran create at 125-150 req/s where 4 and 4 ran 240 (bench/run.py; docs/PERFORMANCE.md,
# "Keep-alive and worker balance"). A new local connection costs far less than that.
# GUNICORN_CMD_ARGS="--keep-alive 5" restores keep-alive. gunicorn also gives a new
# connection that sends nothing for 5 s this long again before closing it: about a
# second now, where it was 5 s.
keepalive = 0
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
