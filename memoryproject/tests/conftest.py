"""Fixtures for the tests that drive the service from outside: a gunicorn server per
module, wired to the fake OpenAI server, and an API key for it."""

import contextlib
import os
import signal
import uuid

import pytest

from memoryproject.tests.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def fake_llm():
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(start_server, fake_llm):
    """A gunicorn server for this module; stopped at the module's end rather than the
    session's, so that its database connections are not held while other modules run."""
    server = start_server(
        workers=2,
        OPENAI_API_KEY="sk-test-not-a-real-key",
        OPENAI_BASE_URL=fake_llm.url,
        OPENAI_MODEL="fake-small",
        OPENAI_TIMEOUT_SECONDS="5",
        OPENAI_MAX_RETRIES="0",
    )
    yield server
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    server.process.wait(timeout=30)


@pytest.fixture(scope="module")
def api_key_text(service):
    return service.new_key(owner_id="sdk-owner")


@pytest.fixture
def user_id():
    return f"user-{uuid.uuid4().hex[:12]}"
