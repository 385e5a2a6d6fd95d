"""What the benchmark scripts share: manage.py calls, a throw-away database, ports."""

import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY_PATTERN = re.compile(r"aimsk_live_[A-Za-z0-9_-]+")


def manage(env: dict, *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)}: {result.stderr[-2000:]}")
    return result.stdout


def new_key(env: dict, owner_id: str, rate_limit: int) -> str:
    output = manage(env, "generate_api_key", owner_id, "--rate-limit", str(rate_limit))
    return KEY_PATTERN.search(output).group(0)


def _admin(database_url: str, *statements: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.format(name=name))


def create_database(env: dict) -> None:
    """A fresh, migrated database at env["DATABASE_URL"]."""
    url = env["DATABASE_URL"]
    _admin(url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', 'CREATE DATABASE "{name}"')
    manage(env, "migrate", "--noinput", "-v0")


def drop_database(database_url: str) -> None:
    _admin(database_url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def web_command() -> str:
    """The Procfile's web line, bound to loopback, gunicorn from this interpreter."""
    line = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    command = line.removeprefix("web:").strip().replace("0.0.0.0:", "127.0.0.1:")
    return command.replace("gunicorn ", f"{sys.executable} -m gunicorn ", 1)


def wait_until_up(process: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    """Until url answers anything at all; fails at once if the server process exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
