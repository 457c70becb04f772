"""Issue 11, Claude Code's ordinary request end to end: the official `anthropic` SDK sends
`thinking` and `metadata.user_id` to modeenvoy-gateway's POST /v1/messages, routed to an
emulated Gemini (thinking -> generationConfig.thinkingConfig) and an emulated Bedrock
(user_id -> requestMetadata.user). Before the fix both answered 400 (`thinking`, `user`).

Expected upstream members are Gemini's and Converse's documented ones (docs/providers.md,
Messages matrix); the reasoning text comes from the emulator's scripted `reasoning`, which it
sends as thought parts only when the request asked for thoughts (includeThoughts).
"""

from __future__ import annotations

import json

import pytest

from conftest import last_emulator_request, require_module, start_emulator, start_gateway

anthropic = require_module("anthropic")

CLIENT_KEY = "sk-thinking-client"
SCRIPT = {"reasoning": "Paris is the capital of France.", "reply": "Paris"}
USER_ID = "user_5e0f1c_account__session_0b6d2a9e-1f3c-4d2b-9e77-3a1c5d2f8e10"


@pytest.fixture
def emulator(start_process):
    return start_emulator(start_process)


@pytest.fixture
def gateway(start_process, emulator, tmp_path):
    emu = emulator.base_url
    script = {"x-emulator-script": json.dumps(SCRIPT)}
    config = {
        "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
        "filters": [{"type": "api_key_auth",
                     "config": {"keys": [{"key": CLIENT_KEY, "name": "tester"}]}}],
        "providers": {
            "gem": {"type": "gemini", "base_url": f"{emu}/v1beta", "api_key": "AIza-key",
                    "headers": script},
            "aws": {"type": "bedrock", "base_url": emu, "api_key": "bedrock-key"},
        },
        "models": {
            "via-gemini": {"provider": "gem", "upstream_model": "gemini-2.5-flash"},
            "via-bedrock": {"provider": "aws",
                            "upstream_model": "anthropic.claude-3-5-haiku-20241022-v1:0"},
        },
    }
    return start_gateway(start_process, tmp_path, config)


def client(gateway):
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0,
                               timeout=30)


def gemini_request(emulator) -> dict:
    return json.loads(
        last_emulator_request(emulator, lambda t: t.startswith("/v1beta/models/"))["body"])


def test_thinking_enabled_reaches_gemini_as_thinking_config(gateway, emulator):
    c = client(gateway)
    with c.messages.stream(model="via-gemini", max_tokens=4096,
                           thinking={"type": "enabled", "budget_tokens": 2048},
                           metadata={"user_id": USER_ID},
                           messages=[{"role": "user", "content": "Capital of France?"}]) as s:
        final = s.get_final_message()
    body = gemini_request(emulator)
    assert "thinking" not in body
    assert body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True,
                                                          "thinkingBudget": 2048}
    # Gemini sent its thoughts because they were asked for; they come back as a thinking block.
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == SCRIPT["reasoning"]
    assert final.content[1].text == "Paris"


def test_thinking_disabled_turns_gemini_thinking_off(gateway, emulator):
    msg = client(gateway).messages.create(
        model="via-gemini", max_tokens=256, thinking={"type": "disabled"},
        messages=[{"role": "user", "content": "Capital of France?"}])
    assert msg.content[0].text == "Paris"
    assert gemini_request(emulator)["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}


def test_malformed_thinking_is_an_invalid_request_naming_the_field(gateway):
    with pytest.raises(anthropic.BadRequestError) as e:
        client(gateway).messages.create(
            model="via-gemini", max_tokens=256, thinking={"type": "enabled"},
            messages=[{"role": "user", "content": "Capital of France?"}])
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "thinking.budget_tokens" in e.value.body["error"]["message"]


def test_metadata_user_id_reaches_bedrock_as_request_metadata(gateway, emulator):
    msg = client(gateway).messages.create(
        model="via-bedrock", max_tokens=256, metadata={"user_id": USER_ID},
        messages=[{"role": "user", "content": "hello there"}])
    assert msg.content[0].text == "hello there"
    body = json.loads(last_emulator_request(emulator, lambda t: t.startswith("/model/"))["body"])
    assert body["requestMetadata"] == {"user": USER_ID}
