"""The service's settings with one change: the floor's URLconf (the real one is kept)."""

from memoryproject.settings import *  # noqa: F403

ROOT_URLCONF = "floor.urls"
