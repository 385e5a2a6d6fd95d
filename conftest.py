"""Project-wide fixtures: keys and clients for in-process tests, and real gunicorn servers
(on their own PostgreSQL database) for tests that need processes, workers and sockets."""

import contextlib
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from rest_framework.test import APIClient

from apikeys.services import create_api_key
from memoryproject.tests.fake_openai import FakeOpenAI
from memoryproject.tests.servers import (
    create_database,
    drop_database,
    free_port,
    new_key,
    start_web,
    wait_until_up,
)


@pytest.fixture
def api_key(db):
    return create_api_key(owner_id="acme", rate_limit_per_minute=10_000)


@pytest.fixture
def other_key(db):
    return create_api_key(owner_id="globex", rate_limit_per_minute=10_000)


@pytest.fixture
def fake_openai(settings):
    """The LLM endpoints talk to a local fake OpenAI-compatible server."""
    server = FakeOpenAI().start()
    settings.OPENAI_API_KEY = "sk-test-not-a-real-key"
    settings.OPENAI_BASE_URL = server.url
    settings.OPENAI_MODEL = "fake-small"
    settings.OPENAI_TIMEOUT_SECONDS = 2.0
    settings.OPENAI_MAX_RETRIES = 1
    yield server
    server.stop()


@pytest.fixture
def embedding_server(settings):
    """Embeddings on (OPENAI_EMBEDDING_MODEL), from a local fake server."""
    server = FakeOpenAI().start()
    settings.OPENAI_BASE_URL = server.url
    settings.OPENAI_EMBEDDING_MODEL = "fake-embed"
    yield server
    server.stop()


@pytest.fixture
def llm_server(fake_openai):
    """fake_openai whose unscripted replies are an empty extraction: any LLM endpoint
    answers 200 without a script."""
    fake_openai.default_reply = {"content": json.dumps({"memories": []})}
    return fake_openai


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


def service_env(database_url: str, **overrides) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "REDIS_URL",
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "OPENAI_EMBEDDING_MODEL",
            "DATABASE_REPLICA_URLS",
            "DATABASE_POOLER",
        }
    }
    env.update(DATABASE_URL=database_url, DEBUG="true", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in overrides.items() if v is not None})
    for k in [k for k, v in overrides.items() if v is None]:
        env.pop(k, None)
    return env


@pytest.fixture(scope="session")
def service_database_url() -> Iterator[str]:
    """A migrated database of its own for server processes (the in-process tests run in
    transactions that other processes cannot see)."""
    base = os.environ["DATABASE_URL"]
    if not base.startswith("postgres"):
        pytest.fail("server tests need DATABASE_URL to point at PostgreSQL")
    name = base.rsplit("/", 1)[1].split("?")[0] + "_service"
    url = base.rsplit("/", 1)[0] + "/" + name
    create_database(service_env(url))
    yield url
    drop_database(url)


class Server:
    def __init__(self, process, url: str, env: dict, log):
        self.process, self.url, self.env, self.log = process, url, env, log

    def new_key(self, owner_id: str = "acme", rate_limit: int = 10_000) -> str:
        return new_key(self.env, owner_id, rate_limit)


@pytest.fixture(scope="module")
def start_server(service_database_url, tmp_path_factory):
    """Start gunicorn (the Procfile's web line) with env overrides; stopped at the end of
    the module (each thread of a server may keep a database connection open, so servers
    kept to the end of the session would add up past PostgreSQL's connection limit)."""
    started: list[subprocess.Popen] = []

    def start(workers: int = 2, database_url: str | None = None, **overrides) -> Server:
        port = free_port()
        env = service_env(database_url or service_database_url, **overrides)
        env.update(PORT=str(port), WEB_CONCURRENCY=str(workers))
        log = tmp_path_factory.mktemp("server") / "gunicorn.log"
        process = start_web(env, port, log, loopback=False)  # the Procfile as written
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url + "/", process=process, log=log)
        return Server(process, url, env, log)

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


@pytest.fixture(autouse=True)
def closed_embeddings_breaker():
    """Each test starts with the in-process embeddings breaker closed: a test that made
    the embeddings server fail must not turn embeddings off for the next one."""
    from memories import embeddings

    embeddings._breaker["open_until"] = float("-inf")
