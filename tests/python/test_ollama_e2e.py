"""End to end: official openai SDK -> modeenvoy-gateway (provider type "ollama") -> the
emulator speaking Ollama's native /api/chat (NDJSON streams).

The emulator records what it received, so the tests also check the Ollama request the
gateway built: images as base64, tool arguments as objects, tool results with tool_name,
structured output as `format`, `stream` always explicit.
"""

from __future__ import annotations

import json

import pytest

from conftest import (last_emulator_request, openai_client, require_module, start_emulator,
                      start_gateway)

openai = require_module("openai")

PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJ"
           "RU5ErkJggg==")

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


@pytest.fixture
def emulator(start_process):
    return start_emulator(start_process, "--usage-counter", "words")


@pytest.fixture
def gateway(start_process, emulator, tmp_path):
    config = {
        "listen": {"address": "127.0.0.1", "port": 0},
        "providers": {
            # Ollama has no public endpoint: the base URL is the server's root.
            "local-ollama": {"type": "ollama", "base_url": emulator.base_url},
            "busy-ollama": {"type": "ollama", "base_url": emulator.base_url,
                            "headers": {"x-emulator-status": "429",
                                        "x-emulator-retry-after": "7"}},
        },
        "models": {
            "llama": {"provider": "local-ollama", "upstream_model": "llama3.2"},
            "busy": {"provider": "busy-ollama", "upstream_model": "llama3.2"},
        },
    }
    return start_gateway(start_process, tmp_path, config)


@pytest.fixture
def client(gateway):
    return openai_client(gateway)


def upstream(emulator) -> dict:
    return json.loads(last_emulator_request(emulator, lambda target: target == "/api/chat")["body"])


def collect(stream):
    """Text, tool calls (by index), finish reasons and the usage chunk of a stream."""
    text, calls, finishes, usage = "", {}, [], None
    chunks = list(stream)
    for c in chunks:
        assert c.object == "chat.completion.chunk"
        if c.usage is not None:
            usage = c.usage
        for choice in c.choices:
            text += choice.delta.content or ""
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = tc.id or entry["id"]
                if tc.function and tc.function.name:
                    entry["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    entry["arguments"] += tc.function.arguments
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return chunks, text, calls, finishes, usage


def test_non_streaming_reply(client, emulator):
    resp = client.chat.completions.create(
        model="llama", temperature=0.5, max_tokens=64, seed=3, stop=["END"],
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Hello ollama world"}])
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-ollama-")
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello ollama world"
    assert choice.finish_reason == "stop"
    # Words (the emulator's word counter): 2 + 3 evaluated, 3 generated.
    assert resp.usage.prompt_tokens == 5
    assert resp.usage.completion_tokens == 3
    assert resp.usage.total_tokens == 8
    body = upstream(emulator)
    assert body["model"] == "llama3.2"
    assert body["stream"] is False  # Ollama streams unless told not to
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["options"] == {"temperature": 0.5, "seed": 3, "stop": ["END"],
                               "num_predict": 64}


def test_streaming_reply(client, emulator):
    chunks, text, _, finishes, usage = collect(client.chat.completions.create(
        model="llama", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three four five"}]))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text == "one two three four five"
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert usage.prompt_tokens == 5 and usage.completion_tokens == 5
    assert upstream(emulator)["stream"] is True


def test_tool_calls_round_trip(client, emulator):
    directive = ('What is the weather?\n@emulator {"tool_calls": [{"name": "get_weather", '
                 '"arguments": {"city": "Paris"}}, {"name": "get_weather", '
                 '"arguments": {"city": "Oslo"}}]}')
    resp = client.chat.completions.create(
        model="llama", tools=TOOLS, messages=[{"role": "user", "content": directive}])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [json.loads(c.function.arguments) for c in choice.message.tool_calls] == [
        {"city": "Paris"}, {"city": "Oslo"}]
    ids = [c.id for c in choice.message.tool_calls]
    assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 2
    assert upstream(emulator)["tools"][0]["function"]["name"] == "get_weather"

    # Streamed: the same calls, the same derived ids.
    _, _, calls, finishes, _ = collect(client.chat.completions.create(
        model="llama", tools=TOOLS, stream=True,
        messages=[{"role": "user", "content": directive}]))
    assert finishes == ["tool_calls"]
    assert [calls[i]["id"] for i in sorted(calls)] == ids
    assert [json.loads(calls[i]["arguments"]) for i in sorted(calls)] == [
        {"city": "Paris"}, {"city": "Oslo"}]

    # The results go back with the tool's name; arguments travel as objects.
    resp = client.chat.completions.create(model="llama", tools=TOOLS, messages=[
        {"role": "user", "content": "What is the weather?"},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": ids[0], "content": "sunny"},
        {"role": "tool", "tool_call_id": ids[1], "content": "snow"}])
    assert resp.choices[0].message.content == "snow"
    body = upstream(emulator)
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert body["messages"][2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


def test_images_go_as_base64_and_urls_are_refused(client, emulator):
    resp = client.chat.completions.create(model="llama", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in the picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}])
    assert resp.choices[0].message.content == "What is in the picture?"
    assert upstream(emulator)["messages"][0]["images"] == [PNG_B64]

    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="llama", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert err.value.status_code == 400
    assert err.value.body["param"] == "messages[0].content[0].image_url.url"
    assert err.value.body["type"] == "invalid_request_error"


def test_structured_output(client, emulator):
    schema = {"type": "object", "properties": {"name": {"type": "string"},
                                               "age": {"type": "integer"}},
              "required": ["name", "age"]}
    resp = client.chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "Describe a person"}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": schema}})
    assert json.loads(resp.choices[0].message.content) == {"name": "example", "age": 1}
    assert upstream(emulator)["format"] == schema

    resp = client.chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_object"})
    assert json.loads(resp.choices[0].message.content) == {"reply": "hi"}
    assert upstream(emulator)["format"] == "json"


def test_errors_keep_status_shape_and_retry_after(client):
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="busy", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "7"
    assert "server busy" in err.value.body["message"]
    assert err.value.body["type"] == "rate_limit_error"

    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="llama", messages=[
            {"role": "user", "content": 'x\n@emulator {"error": {"status": 404}}'}])
    assert 'model "llama3.2" not found' in err.value.body["message"]


def test_mid_stream_error_reaches_the_client(client):
    stream = client.chat.completions.create(model="llama", stream=True, messages=[
        {"role": "user", "content": 'a b c d e\n@emulator {"interrupt": {"after_chunks": 2, '
                                    '"error": {"status": 500, "message": "model crashed"}}}'}])
    text = ""
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
    assert "model crashed" in str(err.value)
    assert text == "a b"
