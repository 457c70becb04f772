"""End to end: official openai SDK -> modeenvoy-gateway (provider type "cohere") -> the
emulator speaking Cohere's v2 chat API (POST /v2/chat, SSE events).

The emulator records what it received, so the tests also check the Cohere request the
gateway built (tool_choice, response_format, p, stop_sequences, the bearer key).
"""

from __future__ import annotations

import json

import pytest

from conftest import (last_emulator_request, openai_client, require_module, start_emulator,
                      start_gateway)

openai = require_module("openai")

TOOLS = [{"type": "function", "function": {
    "name": "weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}},
         {"type": "function", "function": {
             "name": "cityAttractions",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}}]
PREAMBLE = 495  # the emulator's Cohere system preamble, in tokens.input_tokens


@pytest.fixture
def emulator(start_process):
    return start_emulator(start_process, "--usage-counter", "words", "--api-key", "co-secret")


@pytest.fixture
def gateway(start_process, emulator, tmp_path):
    config = {
        "listen": {"address": "127.0.0.1", "port": 0},
        "providers": {
            "co": {"type": "cohere", "base_url": emulator.base_url, "api_key": "co-secret"},
            "co-limited": {"type": "cohere", "base_url": emulator.base_url,
                           "api_key": "co-secret",
                           "headers": {"x-emulator-status": "429",
                                       "x-emulator-retry-after": "7"}},
            "co-badkey": {"type": "cohere", "base_url": emulator.base_url, "api_key": "nope"},
        },
        "models": {
            "command": {"provider": "co", "upstream_model": "command-a-03-2025"},
            "limited": {"provider": "co-limited", "upstream_model": "command-a-03-2025"},
            "badkey": {"provider": "co-badkey", "upstream_model": "command-a-03-2025"},
        },
    }
    return start_gateway(start_process, tmp_path, config)


@pytest.fixture
def client(gateway):
    return openai_client(gateway)


def upstream(emulator) -> tuple[dict, dict]:
    last = last_emulator_request(emulator, lambda target: target == "/v2/chat")
    return json.loads(last["body"]), dict(last["headers"])


def collect(stream):
    text, calls, finishes, usage, extra = "", {}, [], None, {}
    chunks = list(stream)
    for c in chunks:
        if c.usage is not None:
            usage = c.usage
        for choice in c.choices:
            text += choice.delta.content or ""
            for key, value in (choice.delta.model_extra or {}).items():
                extra[key] = extra.get(key, "") + (value or "")
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = tc.id or entry["id"]
                if tc.function and tc.function.name:
                    entry["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    entry["arguments"] += tc.function.arguments
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return chunks, text, calls, finishes, usage, extra


def test_non_streaming_reply(client, emulator):
    resp = client.chat.completions.create(
        model="command", temperature=0.3, top_p=1.0, max_tokens=50, seed=1, stop=["END"],
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "The capital of France?"}])
    choice = resp.choices[0]
    assert choice.message.content == "The capital of France?"
    assert choice.finish_reason == "stop"
    # tokens.input_tokens: billed words (2 + 4) plus the preamble; billed units kept.
    assert resp.usage.prompt_tokens == 6 + PREAMBLE
    assert resp.usage.completion_tokens == 4
    assert resp.usage.total_tokens == 10 + PREAMBLE
    assert resp.usage.model_extra["billed_units"] == {"input_tokens": 6, "output_tokens": 4}
    body, headers = upstream(emulator)
    assert headers["authorization"] == "Bearer co-secret"
    assert body["model"] == "command-a-03-2025"
    assert body["stream"] is False
    assert body["p"] == 0.99  # Cohere's p is 0.01..0.99
    assert body["stop_sequences"] == ["END"]
    assert body["max_tokens"] == 50


def test_streaming_reply(client):
    chunks, text, _, finishes, usage, _ = collect(client.chat.completions.create(
        model="command", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three four five"}]))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text == "one two three four five"
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert usage.prompt_tokens == 5 + PREAMBLE and usage.completion_tokens == 5


def test_tool_calls_with_a_plan(client, emulator):
    directive = ('Weather and sights?\n@emulator {"tool_calls": [{"name": "weather", "arguments": '
                 '{"location": "San Francisco"}}, {"name": "cityAttractions", "arguments": '
                 '{"city": "San Francisco"}}]}')
    resp = client.chat.completions.create(
        model="command", tools=TOOLS, messages=[{"role": "user", "content": directive}])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.function.name for c in choice.message.tool_calls] == ["weather", "cityAttractions"]
    assert json.loads(choice.message.tool_calls[1].function.arguments) == {"city": "San Francisco"}
    assert choice.message.model_extra["tool_plan"] == "I will use the weather tool."

    _, _, calls, finishes, _, extra = collect(client.chat.completions.create(
        model="command", tools=TOOLS, stream=True,
        messages=[{"role": "user", "content": directive}]))
    assert finishes == ["tool_calls"]
    assert [json.loads(calls[i]["arguments"]) for i in sorted(calls)] == [
        {"location": "San Francisco"}, {"city": "San Francisco"}]
    assert all(calls[i]["id"] for i in calls)
    assert extra["tool_plan"] == "I will use the weather tool."

    # A named tool: only it is offered, and a call is required.
    resp = client.chat.completions.create(
        model="command", tools=TOOLS, messages=[{"role": "user", "content": "sights?"}],
        tool_choice={"type": "function", "function": {"name": "cityAttractions"}})
    assert resp.choices[0].message.tool_calls[0].function.name == "cityAttractions"
    body, _ = upstream(emulator)
    assert body["tool_choice"] == "REQUIRED"
    assert [t["function"]["name"] for t in body["tools"]] == ["cityAttractions"]

    # Results go back with their ids; the plan goes back as tool_plan.
    resp = client.chat.completions.create(model="command", tools=TOOLS, messages=[
        {"role": "user", "content": "Weather and sights?"},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": choice.message.tool_calls[0].id, "content": "sunny"},
        {"role": "tool", "tool_call_id": choice.message.tool_calls[1].id, "content": "bridges"}])
    assert resp.choices[0].message.content == "bridges"
    body, _ = upstream(emulator)
    assert body["messages"][1]["tool_plan"] == "I will use the weather tool."
    assert body["messages"][2] == {"role": "tool", "content": "sunny",
                                   "tool_call_id": choice.message.tool_calls[0].id}


def test_images_and_structured_output(client, emulator):
    resp = client.chat.completions.create(model="command", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe it"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert resp.choices[0].message.content == "Describe it"
    body, _ = upstream(emulator)
    assert body["messages"][0]["content"][1] == {
        "type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}

    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    resp = client.chat.completions.create(
        model="command", messages=[{"role": "user", "content": "A name"}],
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}})
    assert json.loads(resp.choices[0].message.content) == {"name": "example"}
    body, _ = upstream(emulator)
    assert body["response_format"] == {"type": "json_object", "json_schema": schema}


def test_errors_keep_status_shape_and_retry_after(client):
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="limited", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "7"
    assert "Trial key" in err.value.body["message"]

    with pytest.raises(openai.AuthenticationError) as err:
        client.chat.completions.create(model="badkey", messages=[{"role": "user", "content": "x"}])
    assert err.value.body["message"] == "invalid api token"

    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="command", n=2,
                                       messages=[{"role": "user", "content": "x"}])
    assert err.value.body["param"] == "n"


def test_mid_stream_error_reaches_the_client(client):
    stream = client.chat.completions.create(model="command", stream=True, messages=[
        {"role": "user", "content": 'a b c d e\n@emulator {"interrupt": {"after_chunks": 4, '
                                    '"error": {"status": 500, "message": "generation failed"}}}'}])
    text = ""
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
    assert "generation failed" in str(err.value)
    assert text == "a b"
