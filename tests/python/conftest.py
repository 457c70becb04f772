"""Shared pytest fixtures: where the build is, and running the example binaries.

`make test` sets MODEENVOY_BUILD_DIR and PYTHONPATH=<build>/python. Run by hand with the same
variables, or from a tree built into ./build. When MODEENVOY_BUILD_DIR is set, a missing
binary or module is a failure (the build broke), never a skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("MODEENVOY_BUILD_DIR", REPO / "build"))
STRICT = "MODEENVOY_BUILD_DIR" in os.environ

# The build tree's Python package, importable without installing.
_pkg = BUILD_DIR / "python"
if _pkg.is_dir() and str(_pkg) not in sys.path:
    sys.path.insert(0, str(_pkg))


def require_module(name: str, reason: str | None = None):
    """Imports `name`. Under `make test` (MODEENVOY_BUILD_DIR set) a missing module is a
    failure, since set-up installs it; elsewhere the calling test module is skipped."""
    if STRICT:
        import importlib
        try:
            return importlib.import_module(name)
        except ImportError as err:
            pytest.fail(f"{name} is not importable ({err}); scripts/setup.sh installs it",
                        pytrace=False)
    return pytest.importorskip(name, reason=reason)


def data_dir() -> Path:
    return Path(os.environ.get("MODEENVOY_DATA_DIR", REPO / ".data"))


def shared_data_dir() -> Path:
    return Path(os.environ.get("MODEENVOY_SHARED_DATA", REPO.parent / "shared" / "data"))


def binary(relpath: str) -> Path:
    """Path of a built executable, e.g. 'examples/proxy/modeenvoy-gateway'."""
    path = BUILD_DIR / relpath
    if not path.exists():
        if STRICT:
            pytest.fail(f"{path} was not built")
        pytest.skip(f"{path} not built (set MODEENVOY_BUILD_DIR or run make test)")
    return path


class Process:
    """A server binary started on a free port; its port comes from --port-file."""

    def __init__(self, args: list[str], *, env: dict | None = None, timeout: float = 30.0):
        self._dir = tempfile.TemporaryDirectory(prefix="modeenvoy-test-")
        port_file = Path(self._dir.name) / "port"
        self.log_path = Path(self._dir.name) / "log"
        self._log = open(self.log_path, "wb")
        self.stopped_log = ""  # the log as stop() found it
        self.proc = subprocess.Popen(
            [*args, "--port-file", str(port_file)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout
        while True:
            if port_file.exists() and port_file.read_text().endswith("\n"):
                self.port = int(port_file.read_text())
                break
            if self.proc.poll() is not None:
                self.stop()  # closes the log and removes its directory: stopped_log keeps it
                raise RuntimeError(f"{args[0]} exited with {self.proc.returncode}:\n"
                                   f"{self.stopped_log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{args[0]} did not report a port in {timeout}s:\n"
                                   f"{self.stopped_log}")
            time.sleep(0.02)
        self.base_url = f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        # What the server wrote until it stopped (its log file goes with the directory).
        if self.log_path.exists():
            self.stopped_log = self.log_path.read_text(errors="replace")
        code = self.proc.returncode
        self._dir.cleanup()
        return code


def http_json(method: str, url: str, body: bytes | str | None = None,
              headers: dict | None = None, timeout: float = 30.0):
    """Returns (status, parsed JSON or text) without raising on HTTP errors."""
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


EMULATOR = "examples/emulator/modeenvoy-emulator"
GATEWAY = "examples/proxy/modeenvoy-gateway"


def start_emulator(start_process, *args, **kwargs) -> Process:
    """The provider emulator on a free port; `args` are its further flags (e.g. "--usage-counter",
    "words"), `kwargs` go to `start_process` (e.g. env=...)."""
    return start_process([binary(EMULATOR), "--port", "0", *args], **kwargs)


def start_gateway(start_process, tmp_path: Path, config: dict, *args, **kwargs) -> Process:
    """The gateway on a free port, serving `config` (written to tmp_path/gateway.json); `args`
    are further flags, `kwargs` go to `start_process`."""
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(config))
    return start_process([binary(GATEWAY), "--config", path, "--port", "0", *args], **kwargs)


def openai_client(gateway, api_key: str = "sk-client"):
    """The official openai SDK pointed at a gateway's /v1, without retries."""
    openai = require_module("openai")
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=api_key, max_retries=0,
                         timeout=30)


def _emulator_recent(emulator, keep: Callable[[str], bool]) -> tuple[list[dict], dict]:
    status, stats = http_json("GET", f"{emulator.base_url}/emulator/stats")
    assert status == 200
    return [r for r in stats["recent"] if keep(r["target"])], stats


def emulator_requests(emulator, keep: Callable[[str], bool]) -> list[dict]:
    """The requests the emulator recorded lately (its /emulator/stats "recent"), oldest first,
    those whose target `keep` accepts."""
    return _emulator_recent(emulator, keep)[0]


def last_emulator_request(emulator, keep: Callable[[str], bool]) -> dict:
    """The latest request the emulator recorded whose target `keep` accepts; there must be one."""
    recent, stats = _emulator_recent(emulator, keep)
    assert recent, stats
    return recent[-1]


@pytest.fixture
def start_process():
    started: list[Process] = []

    def start(args, **kwargs) -> Process:
        p = Process([str(a) for a in args], **kwargs)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


class RedisServer:
    """A redis-server on a free loopback port, daemonized into its own directory and stopped
    by the pid in its pidfile (see tests/context/redis_server.h for the C++ twin)."""

    def __init__(self, extra_args: list[str] | None = None, timeout: float = 20.0):
        import shutil
        import socket
        if shutil.which("redis-server") is None:
            if STRICT:
                pytest.fail("redis-server is not installed; scripts/setup.sh installs it",
                            pytrace=False)
            pytest.skip("redis-server is not installed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._dir = tempfile.TemporaryDirectory(prefix="modeenvoy-redis-")
        self.dir = Path(self._dir.name)
        self.pidfile = self.dir / "redis.pid"
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--daemonize", "yes", "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--pidfile", str(self.pidfile), "--logfile", str(self.dir / "redis.log"),
                *(extra_args or [])]
        subprocess.run(args, check=True, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not answer:\n"
                                   f"{(self.dir / 'redis.log').read_text(errors='replace')}")
            time.sleep(0.02)
        self.pid = int(self.pidfile.read_text())
        self.url = f"redis://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        import socket
        if not self.pidfile.exists():
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command over RESP on a fresh connection; the raw reply bytes."""
        import socket
        payload = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(payload)
            return s.recv(1 << 20)

    def stop(self, timeout: float = 20.0) -> None:
        if self.pid == 0:
            return
        pid, self.pid = self.pid, 0
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                stat = Path(f"/proc/{pid}/stat").read_text()
                if stat[stat.rfind(")") + 2] == "Z":  # exited, not reaped by anyone
                    break
            except (ProcessLookupError, FileNotFoundError):
                break
            time.sleep(0.01)
        else:
            os.kill(pid, signal.SIGKILL)
        self._dir.cleanup()


@pytest.fixture
def redis_server():
    """A fresh redis-server for one test (`.url`, `.port`, `.command(...)`, `.stop()`)."""
    server = RedisServer()
    yield server
    server.stop()
