"""Issue 11: Claude Code's `X-Claude-Code-Session-Id` header as the context store's session id
(`context.session_header_aliases`, docs/context.md), through the Anthropic ingress: the official
`anthropic` SDK sends only its new turn on POST /v1/messages with that header, and the
emulated OpenAI provider behind the gateway receives the stored history first (turn 2, whole
and streamed); the answer names the session (X-Session-Id) and GET /v1/sessions/{id} counts
the turns. One gateway and one emulator for the module.

Expected values come from the emulator's documented behaviour (examples/emulator/README.md:
the answer echoes the last user message) and docs/context.md, not from the gateway's code.
"""

from __future__ import annotations

import json

import pytest

from conftest import (Process, emulator_requests, http_json, require_module, start_emulator,
                      start_gateway)

anthropic = require_module("anthropic")

KEY = "sk-claude-code-client"
HEADER = "X-Claude-Code-Session-Id"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    started: list[Process] = []

    def start(args, **kwargs):
        p = Process([str(a) for a in args], **kwargs)
        started.append(p)
        return p

    try:
        emulator = start_emulator(start)
        config = {
            "listen": {"address": "127.0.0.1", "port": 0},
            "providers": {"oai": {"type": "openai", "base_url": f"{emulator.base_url}/v1",
                                  "api_key": "sk-up"}},
            "models": {"claude-sonnet-4-5": {"provider": "oai", "upstream_model": "gpt-4o-mini"}},
            "context": {"store": {"type": "memory"}, "session_header_aliases": [HEADER]},
            "filters": [{"type": "api_key_auth",
                         "config": {"keys": [{"name": "agents", "key": KEY}]}},
                        {"type": "context"}],
        }
        gateway = start_gateway(start, tmp_path_factory.mktemp("cc-session"), config)
        yield emulator, gateway
    finally:
        for p in started:
            p.stop()


def text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content or [])


def last_upstream_messages(emulator) -> list[tuple[str, str]]:
    recent = emulator_requests(emulator, lambda t: t.startswith("/v1/chat/completions"))
    assert recent
    body = recent[-1]["body"]
    body = json.loads(body) if isinstance(body, str) else body
    return [(m["role"], text_of(m.get("content"))) for m in body["messages"]]


@pytest.mark.parametrize("stream", [False, True])
def test_second_turn_gets_the_history_of_the_claude_code_session(servers, stream):
    emulator, gateway = servers
    sid = f"cc-session-{'stream' if stream else 'whole'}"
    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=KEY, max_retries=0,
                                 timeout=30, default_headers={HEADER: sid})
    first = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=100,
        messages=[{"role": "user", "content": "my name is Ada"}])
    assert first.headers["x-session-id"] == sid
    assert first.headers["x-session-turn"] == "1"
    assert first.parse().content[0].text == "my name is Ada"
    assert last_upstream_messages(emulator) == [("user", "my name is Ada")]

    second_turn = [{"role": "user", "content": "what is my name"}]
    if stream:
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100,
                                    messages=second_turn) as s:
            reply = s.get_final_message()
    else:
        reply = client.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                       messages=second_turn)
    assert reply.content[0].text == "what is my name"
    assert last_upstream_messages(emulator) == [
        ("user", "my name is Ada"), ("assistant", "my name is Ada"), ("user", "what is my name")]

    status, session = http_json("GET", f"{gateway.base_url}/v1/sessions/{sid}",
                                headers={"Authorization": f"Bearer {KEY}"})
    assert status == 200, session
    assert session["turn_count"] == 2


def test_a_bad_header_value_is_an_anthropic_error_naming_the_header(servers):
    _, gateway = servers
    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=KEY, max_retries=0,
                                 timeout=30, default_headers={HEADER: "x" * 129})
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 400
    assert HEADER in str(err.value)
