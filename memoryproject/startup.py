"""What the entry points (manage.py, gunicorn.conf.py) do before Django starts."""

import os
import sys

from django.core.exceptions import ImproperlyConfigured


def require_settings() -> None:
    """Load the settings, or end the process with one line on stderr and exit status 1: a
    missing or invalid variable is the operator's to fix, and a traceback would bury it."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryproject.settings")
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - imports the settings module
    except ImproperlyConfigured as exc:
        sys.exit("Configuration error: " + " ".join(str(exc).split()))
