"""Issue 11, "the README shows the Anthropic and Responses client snippets that work against
`make run`": every Python client snippet of README.md, read from README.md itself (so the
README cannot drift from this test), runs against the example gateway started as `make run`
starts it (no --config: the embedded default configuration, whose providers are the gateway's
built-in emulator), and prints what the emulator answers; the curl snippets run in bash
the same way.

Only two textual changes are made to a snippet before it runs: the base URL
`http://127.0.0.1:8080` becomes the test gateway's, and the SDK clients get `max_retries=0` (a
failed call must fail here, not be hidden by the SDK's retries). Each change must apply, so a
rewritten README fails loudly instead of running something else.

Expected values come from the emulator's documented behaviour (examples/emulator/README.md:
the answer echoes the last user message's text; streams send one word per delta; the OpenAI
embeddings of text-embedding-3-small are 1536 wide) and from what the README says each snippet
does; the emulator's recorded requests (`/emulator/stats`) show which provider dialect each
call reached and what it was sent (the README's "the provider gets both turns").
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import GATEWAY, REPO, binary, http_json, require_module

openai = require_module("openai")
anthropic = require_module("anthropic")

README = REPO / "README.md"
README_URL = "http://127.0.0.1:8080"


def _blocks(language: str) -> list[tuple[int, str]]:
    """(line number of the first code line, code) of each ```<language> block of README.md."""
    blocks, code, start = [], None, 0
    for n, line in enumerate(README.read_text().splitlines(), start=1):
        if code is None and line.strip() == "```" + language:
            code, start = [], n + 1
        elif code is not None and line.strip() == "```":
            blocks.append((start, "\n".join(code) + "\n"))
            code = None
        elif code is not None:
            code.append(line)
    assert code is None, f"an unclosed ```{language} block in README.md"
    return blocks


def _python_blocks() -> list[tuple[int, str]]:
    return _blocks("python")


def _is_gateway_client(code: str) -> bool:
    """A snippet that talks to the gateway (constructs a client for it or uses `client`)."""
    return README_URL in code or re.search(r"\b(client|claude)\.", code) is not None


# What each client snippet is, by a phrase only it holds. test_every_client_snippet_is_run
# fails when README.md gains a client snippet no test here runs.
_SNIPPETS = {
    "chat": "from openai import OpenAI",
    "messages": "claude = anthropic.Anthropic(",
    "responses": "instructions=\"Be brief.\"",
    "responses_chain": "previous_response_id=first.id",
    "sessions": "X-Session-Id",
}


def _snippet(name: str) -> tuple[int, str]:
    found = [(n, c) for n, c in _python_blocks() if _SNIPPETS[name] in c]
    assert len(found) == 1, f"README.md should hold one {name} snippet, found {len(found)}"
    return found[0]


def test_every_client_snippet_is_run():
    clients = [(n, c) for n, c in _python_blocks() if _is_gateway_client(c)]
    claimed = [(n, c) for n, c in clients if any(p in c for p in _SNIPPETS.values())]
    assert claimed == clients, "a README client snippet that no test here runs"
    assert len(clients) == len(_SNIPPETS)


def _adapted(code: str) -> str:
    """The snippet pointed at the test gateway, with retries off (see the module comment)."""
    if "api_key=\"unused\"" in code:
        assert code.count(README_URL) == code.count("api_key=\"unused\")") >= 1, code
        code = code.replace("api_key=\"unused\")", "api_key=\"unused\", max_retries=0)")
    return code


class _Gateway:
    """`make run`'s gateway: the binary without --config, on a free port; OPENAI_API_KEY is
    emptied so only the demo models are served (as on a machine without the key)."""

    def __init__(self, start_process) -> None:
        self.process = start_process([binary(GATEWAY), "--port", "0"], env={"OPENAI_API_KEY": ""})
        self.base_url = self.process.base_url
        self.emulator_url = self._emulator_url()

    def _emulator_url(self) -> str:
        # The banner names the built-in emulator; it follows the port file, so wait for it.
        deadline = time.monotonic() + 30
        pattern = re.compile(r"built-in provider emulator \(OpenAI wire format\) at (\S+)")
        while True:
            m = pattern.search(self.process.log())
            if m:
                return m.group(1)
            assert time.monotonic() < deadline, self.process.log()
            time.sleep(0.02)

    def run(self, name: str, namespace: dict) -> str:
        """Runs the README's snippet `name` in `namespace`; what it printed."""
        line, code = _snippet(name)
        code = _adapted(code).replace(README_URL, self.base_url)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{README}:{line}", "exec"), namespace)  # noqa: S102
        return out.getvalue()

    def reset_emulator(self) -> None:
        status, _ = http_json("POST", f"{self.emulator_url}/emulator/reset", b"")
        assert status == 200

    def upstream_requests(self) -> list[tuple[str, dict]]:
        """(target, JSON body) of each provider request since the last reset, oldest first."""
        status, stats = http_json("GET", f"{self.emulator_url}/emulator/stats")
        assert status == 200
        return [(r["target"], json.loads(r["body"])) for r in stats["recent"] if r["body"]]


@pytest.fixture
def gateway(start_process):
    return _Gateway(start_process)


def _with_client(gateway) -> dict:
    """A namespace holding `client`, as the README's first snippet leaves it."""
    ns: dict = {}
    gateway.run("chat", ns)
    assert isinstance(ns["client"], openai.OpenAI)
    gateway.reset_emulator()
    return ns


def test_openai_sdk_snippet_chat_stream_and_embeddings(gateway):
    gateway.reset_emulator()
    out = gateway.run("chat", {})
    # print(content) + the streamed words without a newline + print(len(embedding)).
    assert out == "Hello!\nStream, please1536\n"
    targets = [t for t, _ in gateway.upstream_requests()]
    assert targets == ["/v1/chat/completions", "/v1/chat/completions", "/v1/embeddings"]


def test_anthropic_sdk_snippet_against_gemini_and_anthropic(gateway):
    gateway.reset_emulator()
    out = gateway.run("messages", {})
    assert out == "Hello!\nStream, please\n"
    (gemini_target, gemini_body), (anthropic_target, anthropic_body) = gateway.upstream_requests()
    # demo-gemini: translated into Gemini's generateContent; demo-anthropic: Anthropic's API.
    assert gemini_target.startswith("/v1beta/models/gemini-2.5-flash:generateContent")
    assert gemini_body["contents"] == [{"role": "user", "parts": [{"text": "Hello!"}]}]
    assert anthropic_target == "/v1/messages"
    assert anthropic_body["stream"] is True and anthropic_body["max_tokens"] == 256
    assert anthropic_body["messages"] == [{"role": "user", "content": "Stream, please"}]


def test_responses_snippet_plain_and_streamed(gateway):
    ns = _with_client(gateway)
    out = gateway.run("responses", ns)
    assert out == "Hello!\nStream, please"  # the streamed deltas are printed without a newline
    assert isinstance(ns["r"], openai.types.responses.Response)
    assert ns["r"].status == "completed" and ns["r"].instructions == "Be brief."
    (a_target, a_body), (g_target, g_body) = gateway.upstream_requests()
    assert a_target == "/v1/messages"
    assert a_body["system"] == "Be brief."  # the instructions reached Anthropic as its system
    assert a_body["messages"] == [{"role": "user", "content": "Hello!"}]
    assert g_target.startswith("/v1beta/models/gemini-2.5-flash:streamGenerateContent")
    assert g_body["contents"] == [{"role": "user", "parts": [{"text": "Stream, please"}]}]


def test_responses_chain_snippet(gateway):
    ns = _with_client(gateway)
    out = gateway.run("responses_chain", ns)
    assert out == "What is my name?\n['What is my name?']\n"
    first, second = gateway.upstream_requests()
    assert first[1]["messages"] == [{"role": "user", "content": "My name is Ada."}]
    # "the provider gets both turns": the first exchange, then the new input.
    texts = [(m["role"], m["content"] if isinstance(m["content"], str)
              else "".join(b["text"] for b in m["content"])) for m in second[1]["messages"]]
    assert texts == [("user", "My name is Ada."), ("assistant", "My name is Ada."),
                     ("user", "What is my name?")]
    client = ns["client"]
    assert ns["second"].previous_response_id == ns["first"].id
    with pytest.raises(openai.NotFoundError):  # the snippet's last line deleted it
        client.responses.retrieve(ns["first"].id)
    assert client.responses.retrieve(ns["second"].id).output_text == "What is my name?"


def test_sessions_snippet(gateway):
    ns = _with_client(gateway)
    out = gateway.run("sessions", ns)
    assert out == "My name is Ada.\nWhat is my name?\n"
    first, second = gateway.upstream_requests()
    assert [m["content"] for m in first[1]["messages"]] == ["My name is Ada."]
    # "the provider receives the whole history".
    assert [(m["role"], m["content"]) for m in second[1]["messages"]] == [
        ("user", "My name is Ada."), ("assistant", "My name is Ada."),
        ("user", "What is my name?")]
    # "GET /v1/sessions/{id} shows what is stored".
    status, session = http_json("GET", f"{gateway.base_url}/v1/sessions/my-chat-1")
    assert status == 200, session
    assert session["session_id"] == "my-chat-1" and session["turn_count"] == 2
    assert [(h["message"]["role"], h["message"]["content"]) for h in session["history"]] == [
        ("user", "My name is Ada."), ("assistant", "My name is Ada."),
        ("user", "What is my name?"), ("assistant", "What is my name?")]


# ---------------------------------------------------------------------------------------
# The shell snippets that call the gateway (curl), run by bash as written, URL replaced.

def _shell_snippet(marker: str) -> str:
    found = [c for _, c in _blocks("sh") if README_URL in c and marker in c]
    assert len(found) == 1, f"README.md should hold one shell snippet with {marker!r}"
    return found[0]


def test_every_shell_client_snippet_is_run():
    clients = [c for _, c in _blocks("sh") if README_URL in c]
    assert len(clients) == 2, "a README curl snippet that no test here runs"


def _bash(gateway, code: str) -> str:
    code = code.replace(README_URL, gateway.base_url)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_curl_snippet(gateway):
    out = json.loads(_bash(gateway, _shell_snippet('"model":"demo"')))
    assert out["object"] == "chat.completion"
    message = out["choices"][0]["message"]
    assert (message["role"], message["content"]) == ("assistant", "Hello!")


def test_demo_resilient_snippet_every_request_succeeds(gateway):
    """"every request succeeds" (20 times 200) and /admin/upstreams shows the pool."""
    out = _bash(gateway, _shell_snippet("demo-resilient"))
    codes, _, upstreams = out.partition("\n")
    assert codes.split() == ["200"] * 20
    body = json.loads(upstreams)
    deployments = {d["id"]: d for r in body["routers"] for p in r["pools"]
                   for d in p["deployments"]}
    assert set(deployments) == {"flaky", "ratelimited", "healthy"}
    assert sum(d["successes"] for d in deployments.values()) == 20
