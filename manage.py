#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryproject.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError:
        sys.exit(
            "Django is not installed for this Python. Run ./scripts/serve.sh once, then "
            "`source .venv/bin/activate` (or use .venv/bin/python)."
        )
    from memoryproject.startup import require_settings

    require_settings()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
