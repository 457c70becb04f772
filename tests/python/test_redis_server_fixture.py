"""The redis_server fixture (conftest.py) that the context tests share: a real server on a
free port, answering, and gone after stop()."""

import os
import socket
from pathlib import Path

import pytest

from conftest import RedisServer


def test_redis_server_answers_on_its_own_port(redis_server):
    assert redis_server.command("PING") == b"+PONG\r\n"
    assert redis_server.command("SET", "k", "v") == b"+OK\r\n"
    assert redis_server.command("GET", "k") == b"$1\r\nv\r\n"
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}"


def test_stop_ends_the_process_and_frees_the_port():
    server = RedisServer()
    pid, port = server.pid, server.port
    server.stop()
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        assert stat[stat.rfind(")") + 2] == "Z", "still running after stop()"
    except (ProcessLookupError, FileNotFoundError):
        pass
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
