"""The service's settings with one change: a URLconf that adds the floor's URL in front of
the service's own, so one server answers both."""

from memoryproject.settings import *  # noqa: F403

ROOT_URLCONF = "floor.urls"
