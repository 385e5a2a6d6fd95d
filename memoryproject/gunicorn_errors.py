"""JSON for the few errors gunicorn answers itself, before Django sees the request.

gunicorn refuses a request line longer than `limit_request_line` (414), header fields
over `limit_request_field_size` or too many of them (431 or 400), and malformed request
lines, methods or HTTP versions (400), with an HTML page of its own. The interface
promises JSON for every error, so `install()` (called from gunicorn.conf.py, in the
master before workers fork) replaces gunicorn's page writer with one that sends the same
status as `{"detail": "..."}`. The detail never echoes the request: a refused request
line may hold a secret in its query string.
"""

import json
import socket

from gunicorn import util

DETAILS = {
    400: "Bad request: the request line or headers are malformed",
    403: "Forbidden",
    414: "Request line too long: shorten the URL (query string included)",
    417: "Expectation failed",
    431: "Request header fields too large",
    501: "Not implemented",
}


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's util.write_error, answering JSON."""
    body = json.dumps({"detail": DETAILS.get(status_int, reason)}).encode("ascii")
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    util.write_error = write_json_error
