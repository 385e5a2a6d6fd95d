"""Project-wide fixtures: keys and clients for in-process tests, and real gunicorn servers
(on their own PostgreSQL database) for tests that need processes, workers and sockets."""

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from apikeys.services import create_api_key

ROOT = Path(__file__).resolve().parent
KEY_PATTERN = re.compile(r"aimsk_live_[A-Za-z0-9_-]+")


@pytest.fixture
def api_key(db):
    return create_api_key(owner_id="acme", rate_limit_per_minute=10_000)


@pytest.fixture
def other_key(db):
    return create_api_key(owner_id="globex", rate_limit_per_minute=10_000)


@pytest.fixture
def client_for():
    def make(issued) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
        return client

    return make


@pytest.fixture
def client(api_key, client_for) -> APIClient:
    return client_for(api_key)


# --- real processes -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, process=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def service_env(database_url: str, **overrides) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_EMBEDDING_MODEL"}
    }
    env.update(DATABASE_URL=database_url, DEBUG="true", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in overrides.items() if v is not None})
    for k in [k for k, v in overrides.items() if v is None]:
        env.pop(k, None)
    return env


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout


@pytest.fixture(scope="session")
def service_database_url() -> str:
    """A migrated database of its own for server processes (the in-process tests run in
    transactions that other processes cannot see)."""
    base = os.environ["DATABASE_URL"]
    if not base.startswith("postgres"):
        pytest.fail("server tests need DATABASE_URL to point at PostgreSQL")
    import psycopg

    name = base.rsplit("/", 1)[1].split("?")[0] + "_service"
    admin_url = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    manage(service_env(url), "migrate", "--noinput", "-v0")
    yield url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Server:
    def __init__(self, process, url: str, env: dict):
        self.process, self.url, self.env = process, url, env

    def new_key(self, owner_id: str = "acme", rate_limit: int = 10_000) -> str:
        output = manage(self.env, "generate_api_key", owner_id, "--rate-limit", str(rate_limit))
        return KEY_PATTERN.search(output).group(0)


@pytest.fixture(scope="session")
def start_server(service_database_url, tmp_path_factory):
    """Start gunicorn (the Procfile's web line) with env overrides; stopped at the end."""
    started: list[subprocess.Popen] = []

    def start(workers: int = 2, database_url: str | None = None, **overrides) -> Server:
        port = free_port()
        env = service_env(database_url or service_database_url, **overrides)
        env.update(PORT=str(port), WEB_CONCURRENCY=str(workers))
        log = tmp_path_factory.mktemp("server") / "gunicorn.log"
        procfile = (ROOT / "Procfile").read_text()
        web = next(line for line in procfile.splitlines() if line.startswith("web:"))
        command = web.removeprefix("web:").strip()
        command = command.replace("gunicorn ", f"{sys.executable} -m gunicorn ", 1)
        process = subprocess.Popen(  # noqa: S602 - the Procfile line, as a platform runs it
            command,
            shell=True,
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/", process=process)
        return Server(process, url, env)

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
    for process in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def http(method: str, url: str, key: str | None = None, body=None, headers=None):
    """A tiny HTTP client for server tests: returns (status, headers, parsed JSON or text)."""
    import json

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, response_headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, raw = error.code, error.headers, error.read()
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = raw.decode(errors="replace")
    return status, response_headers, payload
