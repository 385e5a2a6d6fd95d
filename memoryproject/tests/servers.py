"""Running the service as separate processes, for the server tests (and the benchmarks,
through bench/harness.py): manage.py calls, a throw-away database, private PostgreSQL
clusters (with streaming replicas) and pgbouncer, ports, the Procfile's web line and its
worker processes. Standard library only (psycopg where a database is queried)."""

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEY_PATTERN = re.compile(r"aimsk_live_[A-Za-z0-9_-]+")


def manage(env: dict, *args: str, timeout: float = 120) -> str:
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
    found = KEY_PATTERN.search(output)
    if found is None:
        raise RuntimeError(f"generate_api_key printed no key: {output[-2000:]}")
    return found.group(0)


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


def web_command(*, loopback: bool = True) -> str:
    """The Procfile's web line with gunicorn from this interpreter; bound to loopback
    unless loopback is False (then as written: 0.0.0.0)."""
    line = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    command = line.removeprefix("web:").strip()
    if loopback:
        command = command.replace("0.0.0.0:", "127.0.0.1:")
    return command.replace("gunicorn ", f"{sys.executable} -m gunicorn ", 1)


def start_web(env: dict, port: int, log: Path, *, loopback: bool = True) -> subprocess.Popen:
    """The Procfile's web line on port, run by a shell as a platform runs it, in a session
    of its own (os.killpg stops it with its workers); output goes to log."""
    return subprocess.Popen(  # noqa: S602 - the Procfile line, as a platform runs it
        web_command(loopback=loopback),
        shell=True,
        cwd=ROOT,
        env={**env, "PORT": str(port)},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until_up(
    url: str, *, timeout: float = 30.0, process: subprocess.Popen | None = None, log=None
) -> None:
    """Until url answers anything at all; fails at once if the server process exits (with
    the end of its log, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            tail = f":\n{Path(log).read_text()[-3000:]}" if log else ""
            raise RuntimeError(f"server exited with {process.returncode}{tail}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.1)


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is pid (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


PG_ROOT = Path("/usr/lib/postgresql")
PG_BIN = PG_ROOT / (sorted(os.listdir(PG_ROOT))[-1] if PG_ROOT.is_dir() else "") / "bin"


def _as_postgres() -> list[str]:
    """initdb, pg_ctl and pgbouncer refuse to run as root: run them as postgres then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _private_dir(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    return root


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on its own port, never the shared one: a new
    primary, or with `primary=` a streaming replica of one (pg_basebackup -R)."""

    def __init__(self, *, primary: "PrivatePostgres | None" = None, options: str = ""):
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL server binaries are needed under {PG_ROOT}")
        self.port = free_port()
        self.root = _private_dir("pgcluster-")
        self.data = self.root / "data"
        self.options = options
        if primary is None:
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N",
                "-E", "UTF8", "--locale=C",
            )  # fmt: skip
        else:
            self._run(
                "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
            )  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str) -> None:
        command = [*_as_postgres(), str(PG_BIN / program), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c timezone=UTC {self.options}"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-w", "-t", "60",
            "-l", str(self.root / "log"), "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def log(self) -> str:
        return (self.root / "log").read_text(errors="replace")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Pgbouncer:
    """pgbouncer (Debian's package) in transaction mode on its own port, with one pool per
    entry of `databases` (name -> libpq connection string)."""

    def __init__(self, databases: dict[str, str], *, pool_size: int = 4):
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise RuntimeError("pgbouncer is needed (apt-get install pgbouncer)")
        self.port = free_port()
        self.root = _private_dir("pgbouncer-")
        (self.root / "users.txt").write_text('"postgres" ""\n')
        entries = "\n".join(f"{name} = {dsn}" for name, dsn in databases.items())
        config = self.root / "pgbouncer.ini"
        config.write_text(
            f"[databases]\n{entries}\n\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.root / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmax_client_conn = 500\n"
            "admin_users = postgres\nignore_startup_parameters = extra_float_digits\n"
            f"logfile = {self.root / 'log'}\n"
        )
        for path in self.root.iterdir():
            if os.geteuid() == 0:
                shutil.chown(path, "postgres")
        self.process = subprocess.Popen(
            [*_as_postgres(), binary, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start: {self.log()[-2000:]}") from None
                time.sleep(0.1)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def show(self, what: str) -> list[dict]:
        """A SHOW command of pgbouncer's admin console (POOLS, STATS, ...) as dicts."""
        import psycopg

        admin = psycopg.connect(self.url("pgbouncer"), autocommit=True, prepare_threshold=None)
        with admin, admin.cursor() as cursor:
            cursor.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def log(self) -> str:
        path = self.root / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
