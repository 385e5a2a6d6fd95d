"""Settings for server processes in tests: the service's, with the crash URLs added."""

from memoryproject.settings import *  # noqa: F403

ROOT_URLCONF = "memoryproject.tests.crash_urls"
