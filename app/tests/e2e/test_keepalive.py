"""Requests that follow one another on one keep-alive connection.

Browsers reuse connections: uvicorn then starts the next request from inside
the task of the previous one, and asgiref's WsgiToAsgi used to fail such a
request with 500 ("CurrentThreadExecutor already quit or is broken").
Pipelining the requests makes that happen every time.  Needs no browser.
"""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.e2e


def test_pipelined_requests_on_one_connection_all_succeed(server):
    parts = urlsplit(server)
    request = b"GET /health HTTP/1.1\r\nHost: " + parts.netloc.encode() + b"\r\n\r\n"
    for _ in range(10):
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(request * 4)
            data = b""
            while len(re.findall(rb"HTTP/1.1 \d+", data)) < 4:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        assert re.findall(rb"HTTP/1.1 (\d+)", data) == [b"200"] * 4, data
