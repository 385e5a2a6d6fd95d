import pytest

from memoryproject.tests.fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai(settings):
    server = FakeOpenAI().start()
    settings.OPENAI_API_KEY = "sk-test-not-a-real-key"
    settings.OPENAI_BASE_URL = server.url
    settings.OPENAI_MODEL = "fake-small"
    settings.OPENAI_TIMEOUT_SECONDS = 2.0
    settings.OPENAI_MAX_RETRIES = 1
    yield server
    server.stop()
