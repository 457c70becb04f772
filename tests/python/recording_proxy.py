"""A recording HTTP/1.1 pass-through for the agent-client tests: a client (Claude Code, Codex
CLI) talks to it instead of the gateway, it forwards every request to the gateway unchanged and
streams the answer back, and keeps (method, path, headers, body, status) of each exchange, so a
test can say which endpoints and headers a real client used.

    with RecordingProxy(gateway.base_url) as proxy:
        run_client(base_url=proxy.base_url)
        assert any(r.path.startswith("/v1/messages") for r in proxy.records)

Loopback only; one thread per connection; bodies are read whole (Content-Length or chunked).
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Hop-by-hop headers (RFC 9110 7.6.1) and the framing this proxy redoes itself.
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
        "upgrade", "content-length", "host"}


@dataclass
class Record:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""


class RecordingProxy:
    def __init__(self, upstream_base_url: str):
        parsed = urllib.parse.urlsplit(upstream_base_url)
        self._host, self._port = parsed.hostname, parsed.port
        self.records: list[Record] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("transfer-encoding", "").lower():
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def _forward(self):
                body = self._body()
                rec = Record(self.command, self.path,
                             {k.lower(): v for k, v in self.headers.items()}, body)
                with proxy._lock:
                    proxy.records.append(rec)
                up = http.client.HTTPConnection(proxy._host, proxy._port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                up.request(self.command, self.path, body=body if body else None, headers=headers)
                resp = up.getresponse()
                rec.status = resp.status
                rec.response_headers = {k.lower(): v for k, v in resp.getheaders()}
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                while True:
                    piece = resp.read1(65536)
                    if not piece:
                        break
                    rec.response_body += piece
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                up.close()

            do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "RecordingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def summary(self) -> list[str]:
        """One line per exchange: method, path, status and the anthropic-*/openai-* headers."""
        out = []
        for r in self.records:
            notable = {k: v for k, v in r.headers.items()
                       if k.startswith(("anthropic-", "x-claude", "openai-", "x-stainless-lang",
                                        "session_id", "originator", "user-agent"))}
            out.append(f"{r.method} {r.path} -> {r.status} {notable}")
        return out
