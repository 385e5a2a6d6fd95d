"""Tests through real processes: gunicorn from the Procfile, a database that goes away."""

import json
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from conftest import http, service_env
from memoryproject.tests.servers import ROOT, free_port, manage, wait_until_up

pytestmark = pytest.mark.slow


def test_procfile_web_serves_health_and_the_api(start_server):
    server = start_server(workers=2)
    status, _, body = http("GET", server.url + "/health")
    assert (status, body) == (200, {"status": "ok", "database": "ok"})
    key = server.new_key()
    status, headers, body = http(
        "POST",
        server.url + "/api/v1/memory",
        key,
        {"user_id": "u1", "content": "User prefers dark mode", "type": "preference"},
    )
    assert status == 200, body
    assert headers["X-RateLimit-Limit"] == "10000"
    status, _, listed = http("GET", server.url + "/api/v1/memory?user_id=u1", key)
    assert [m["id"] for m in listed] == [body["id"]]


def test_each_response_closes_its_connection_so_any_free_worker_takes_the_next(start_server):
    # A keep-alive connection stays with the process that accepted it: a few busy clients
    # could load one process while the other idles (gunicorn.conf.py, keepalive).
    import http.client

    server = start_server(workers=2)
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    for _ in range(3):
        connection.request("GET", "/health", headers={"Connection": "keep-alive"})
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Connection") == "close"
        response.read()
        assert connection.sock is None  # closed by the server's answer; the next reconnects
    connection.close()


def test_procfile_release_runs_migrations():
    release = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("release:")
    )
    assert "migrate" in release


def test_sqlite_development_defaults_smoke(tmp_path):
    """The quick start: DEBUG=true, nothing else; SQLite and secrets in the data folder."""
    env = service_env("unused", DATA_DIR=str(tmp_path), DATABASE_URL=None, ENCRYPTION_KEY=None,
                      SECRET_KEY=None, ALLOWED_HOSTS=None)  # fmt: skip
    manage(env, "migrate", "--noinput", "-v0")
    assert (tmp_path / "db.sqlite3").is_file()
    secrets_before = (tmp_path / "secrets.json").read_text()
    key = manage(env, "generate_api_key", "dev").split("\n")[2].strip()
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "memoryproject.wsgi", "-w", "2"]
    process = subprocess.Popen(
        [*command, "-b", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url + "/health", process=process)
        body = {"user_id": "u1", "content": "Allergic to peanuts", "type": "fact"}
        status, headers, created = http("POST", url + "/api/v1/memory", key, body)
        assert status == 200, created
        assert headers["X-RateLimit-Remaining"] == "59"
        status, _, context = http(
            "POST", url + "/api/v1/memory/context", key, {"user_id": "u1", "query": "allergies"}
        )
        assert status == 200
        assert context["memories"][0]["id"] == created["id"]
        assert http("GET", url + "/api/v1/memory/stats?user_id=u1", key)[2]["total"] == 1
        # 4,800 distinct one-letter words: one row of parameters each was past SQLite's
        # limit of 32,766 parameters, and answered as "Database unavailable".
        many = {
            "user_id": "u2",
            "type": "fact",
            "content": " ".join(map(chr, range(0x4E00, 0x4E00 + 4800))),
        }
        status, _, stored = http("POST", url + "/api/v1/memory", key, many)
        assert status == 200, stored
        newer = {"user_id": "u2", "type": "fact", "content": "an unrelated, newer note"}
        assert http("POST", url + "/api/v1/memory", key, newer)[0] == 200
        query = {"user_id": "u2", "query": chr(0x4E00 + 10)}
        status, _, context = http("POST", url + "/api/v1/memory/context", key, query)
        assert context["memories"][0]["id"] == stored["id"]  # matched, not the newest
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (tmp_path / "secrets.json").read_text() == secrets_before  # kept across restarts


def test_database_on_a_closed_port_is_503_everywhere(start_server):
    closed = f"postgres://postgres@127.0.0.1:{free_port()}/nothing"
    server = start_server(workers=2, database_url=closed)
    started = time.monotonic()
    status, _, body = http("GET", server.url + "/health")
    assert status == 503
    assert body["detail"] == "Database unavailable"
    for key in ("aimsk_live_anything_at_all_0123456789abcdef", None):
        status, _, body = http("GET", server.url + "/api/v1/memory?user_id=u1", key)
        assert (status, body) == (503, {"detail": "Database unavailable"})
    status, _, body = http("POST", server.url + "/api/v1/memory", "aimsk_live_x", {"user_id": "u"})
    assert status == 503
    assert time.monotonic() - started < 10


class TcpProxy:
    """Forwards a local port to PostgreSQL; stop() cuts every connection, as an outage."""

    def __init__(self, target_port: int):
        self.port = free_port()
        self.target_port = target_port
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sockets: list[socket.socket] = []

    def start(self) -> None:
        self._stop.clear()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._sockets = [listener]
        self._thread = threading.Thread(target=self._run, args=(listener,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in self._sockets:
            sock.close()

    def _run(self, listener: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        peers: dict[socket.socket, socket.socket] = {}
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                if sock is listener:
                    client, _ = listener.accept()
                    upstream = socket.create_connection(("127.0.0.1", self.target_port))
                    peers[client], peers[upstream] = upstream, client
                    self._sockets += [client, upstream]
                    selector.register(client, selectors.EVENT_READ)
                    selector.register(upstream, selectors.EVENT_READ)
                    continue
                if sock not in peers:  # closed with its peer earlier in this batch
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data:
                    peers[sock].sendall(data)
                else:
                    other = peers.pop(sock)
                    peers.pop(other, None)
                    for s in (sock, other):
                        selector.unregister(s)
                        s.close()
        selector.close()


def test_service_recovers_by_itself_when_the_database_returns(start_server, service_database_url):
    proxy = TcpProxy(target_port=5432)
    proxy.start()
    proxied = service_database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    server = start_server(workers=2, database_url=proxied)
    key = server.new_key()
    body = {"user_id": "outage", "content": "before the outage", "type": "fact"}
    assert http("POST", server.url + "/api/v1/memory", key, body)[0] == 200

    proxy.stop()
    for _ in range(4):  # each worker notices on its own
        assert http("GET", server.url + "/health")[0] == 503
        status, _, answer = http("GET", server.url + "/api/v1/memory?user_id=u1", key)
        assert (status, answer) == (503, {"detail": "Database unavailable"})

    proxy.start()
    deadline = time.monotonic() + 15
    while http("GET", server.url + "/health")[0] != 200:
        assert time.monotonic() < deadline, "did not recover"
        time.sleep(0.2)
    for _ in range(4):
        status, _, listed = http("GET", server.url + "/api/v1/memory?user_id=outage", key)
        assert status == 200
        assert [m["content"] for m in listed] == ["before the outage"]
    proxy.stop()


def raw_request(url: str, request: bytes) -> tuple[int, dict, bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    if headers.get("Transfer-Encoding") == "chunked":
        chunks, rest = [], body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            if not int(size, 16):
                break
            chunks.append(rest[: int(size, 16)])
            rest = rest[int(size, 16) + 2 :]
        body = b"".join(chunks)
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /api/v1/memory?user_id=" + b"u" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(120)) + b"\r\n", 431),
        (b"GE\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
    ids=["long-request-line", "long-header", "many-headers", "bad-method"],
)
def test_what_gunicorn_refuses_itself_is_json(start_server, request_bytes, status):
    server = start_server(workers=1)
    got, headers, body = raw_request(server.url, request_bytes)
    assert got == status
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["detail"]
    assert b"uuuu" not in body  # the request is never echoed


def test_the_longest_valid_list_query_fits_the_request_line(start_server):
    server = start_server(workers=1)
    key = server.new_key()
    longest = "\U0001f600" * 255  # four bytes each, twelve once percent-encoded
    query = urllib.parse.urlencode(
        {"user_id": longest, "key": longest, "type": "preference", "min_importance": 5,
         "limit": 100, "cursor": "c" * 200}
    )  # fmt: skip
    status, _, body = http("GET", f"{server.url}/api/v1/memory?{query}", key)
    assert status == 400  # the forged cursor: the request reached Django and was checked
    assert "cursor" in body["errors"]


def test_a_chunked_body_is_411_not_misread_as_empty(start_server):
    server = start_server(workers=1)
    key = server.new_key()
    body = b'{"user_id": "u1", "type": "fact", "content": "x"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, _, answer = raw_request(
        server.url,
        b"POST /api/v1/memory HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + key.encode()
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunked,
    )
    assert status == 411
    assert json.loads(answer)["detail"].startswith("Content-Length required")
