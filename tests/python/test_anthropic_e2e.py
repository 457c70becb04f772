"""End to end for the "anthropic" provider type: official openai SDK -> modeenvoy-gateway ->
the emulator speaking the Anthropic Messages API, over loopback; and the official anthropic
SDK pointed straight at the emulator, which shows that the emulator's shapes are what the
real SDK parses (so the gateway is tested against a faithful Anthropic).

Scripts travel as `@emulator {...}` lines in the prompt (they reach the provider inside the
translated request) or as provider-configured x-emulator-* headers.
"""

from __future__ import annotations

import base64
import json

import pytest

from conftest import (http_json, last_emulator_request, openai_client, require_module,
                      start_emulator, start_gateway)

openai = require_module("openai")

UPSTREAM_KEY = "sk-ant-upstream-secret"
# A 1x1 transparent PNG.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6300010000050001 0d0a2db40000000049454e44ae426082".replace(" ", ""))
).decode()

WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


@pytest.fixture
def emulator(start_process):
    # Word counts keep expected usage obvious; --api-key makes the emulator check x-api-key.
    return start_emulator(start_process, "--usage-counter", "words", "--api-key", UPSTREAM_KEY)


@pytest.fixture
def gateway(start_process, emulator, tmp_path):
    config = {
        "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
        "providers": {
            "claude": {"type": "anthropic", "base_url": emulator.base_url,
                       "api_key": UPSTREAM_KEY,
                       "beta": ["test-beta-2025-01-01"]},
            "claude-429": {"type": "anthropic", "base_url": emulator.base_url,
                           "api_key": UPSTREAM_KEY,
                           "headers": {"x-emulator-status": "429",
                                       "x-emulator-retry-after": "7"}},
            "claude-529": {"type": "anthropic", "base_url": emulator.base_url,
                           "api_key": UPSTREAM_KEY,
                           "headers": {"x-emulator-status": "529"}},
        },
        "models": {
            "claude": {"provider": "claude", "upstream_model": "claude-sonnet-4-5"},
            "claude-limited": {"provider": "claude-429", "upstream_model": "claude-sonnet-4-5"},
            "claude-busy": {"provider": "claude-529", "upstream_model": "claude-sonnet-4-5"},
        },
    }
    return start_gateway(start_process, tmp_path, config)


@pytest.fixture
def client(gateway):
    return openai_client(gateway)


def last_upstream(emulator) -> dict:
    return last_emulator_request(emulator, lambda target: target == "/v1/messages")


def test_non_streaming_text(client, emulator):
    resp = client.chat.completions.create(
        model="claude", messages=[{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Hello gateway world"}])
    assert resp.object == "chat.completion"
    assert resp.id.startswith("msg_01")
    assert resp.model == "claude-sonnet-4-5"
    (choice,) = resp.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello gateway world"
    # Words: "Be brief." + 3 in, 3 out.
    assert resp.usage.prompt_tokens == 5
    assert resp.usage.completion_tokens == 3
    assert resp.usage.total_tokens == 8
    assert resp.usage.prompt_tokens_details.cached_tokens == 0

    upstream = last_upstream(emulator)
    headers = upstream["headers"]
    assert headers["x-api-key"] == UPSTREAM_KEY
    assert "authorization" not in headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "test-beta-2025-01-01"
    body = json.loads(upstream["body"])
    assert body == {"model": "claude-sonnet-4-5", "max_tokens": 4096, "system": "Be brief.",
                    "messages": [{"role": "user", "content": "Hello gateway world"}]}


def test_streaming_text_and_usage(client):
    chunks = list(client.chat.completions.create(
        model="claude", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three four five"}]))
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 5
    assert chunks[-1].usage.completion_tokens == 5


def test_tool_calls_whole_streamed_and_answered(client, emulator):
    resp = client.chat.completions.create(
        model="claude", tools=WEATHER, parallel_tool_calls=False,
        messages=[{"role": "user", "content": 'call get_weather {"city": "Paris"}'}])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id.startswith("toolu_01")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    body = json.loads(last_upstream(emulator)["body"])
    assert body["tools"] == [{"name": "get_weather", "description": "Weather for a city",
                              "input_schema": WEATHER[0]["function"]["parameters"]}]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}

    pieces: dict = {}
    for chunk in client.chat.completions.create(
            model="claude", tools=WEATHER, stream=True, tool_choice="required",
            messages=[{"role": "user", "content": 'call get_weather {"city": "Oslo"}'}]):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = pieces.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            if tc.id:
                assert entry["id"] is None
                entry["id"] = tc.id
            if tc.function and tc.function.name:
                entry["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                entry["arguments"] += tc.function.arguments
    assert list(pieces) == [0]
    assert pieces[0]["name"] == "get_weather"
    assert json.loads(pieces[0]["arguments"]) == {"city": "Oslo"}

    # The tool's answer goes back as a tool_result; the emulator checks the pairing.
    resp = client.chat.completions.create(
        model="claude", tools=WEATHER,
        messages=[{"role": "user", "content": "weather in Paris?"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": call.id, "type": "function",
                       "function": {"name": "get_weather", "arguments": call.function.arguments}}]},
                  {"role": "tool", "tool_call_id": call.id, "content": "sunny and 21C"}])
    assert resp.choices[0].message.content == "sunny and 21C"
    body = json.loads(last_upstream(emulator)["body"])
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call.id, "content": "sunny and 21C"}]}


def test_images(client, emulator):
    resp = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}])
    assert resp.choices[0].message.content == "what is this"
    content = json.loads(last_upstream(emulator)["body"])["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                      "data": PNG}}
    assert content[2] == {"type": "image", "source": {"type": "url",
                                                      "url": "https://example.com/cat.jpg"}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://example.com/cat.jpg"}}]}])
    assert err.value.body["param"] == "messages[0].content[0].image_url.url"


def test_structured_output(client, emulator):
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "temp": {"type": "integer"}},
              "required": ["city", "temp"], "additionalProperties": False}
    resp = client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "weather as JSON"}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "weather", "schema": schema, "strict": True}})
    assert set(json.loads(resp.choices[0].message.content)) == {"city", "temp"}
    body = json.loads(last_upstream(emulator)["body"])
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_reasoning_comes_back_with_its_signature(client):
    resp = client.chat.completions.create(
        model="claude", reasoning_effort="low",
        messages=[{"role": "user",
                   "content": 'q\n@emulator {"reasoning": "think it over", "reply": "42"}'}])
    message = resp.choices[0].message
    assert message.content == "42"
    assert message.model_extra["reasoning_content"] == "think it over"
    # Words: 3 of thinking, 1 of answer.
    assert resp.usage.completion_tokens == 4
    assert resp.usage.completion_tokens_details.reasoning_tokens == 3
    (block,) = message.model_extra["thinking_blocks"]
    assert block["type"] == "thinking" and block["signature"]
    # The blocks go back on the next turn, signature intact.
    resp = client.chat.completions.create(model="claude", messages=[
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "42", "thinking_blocks": [block]},
        {"role": "user", "content": "again"}])
    assert resp.choices[0].message.content == "again"


def test_unsupported_fields_are_refused_by_name(client, emulator):
    before = http_json("GET", f"{emulator.base_url}/emulator/stats")[1]["requests"]
    for kwargs, param in [({"temperature": 1.5}, "temperature"), ({"n": 2}, "n"),
                          ({"seed": 3}, "seed")]:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "x"}], **kwargs)
        assert err.value.status_code == 400
        assert err.value.body["param"] == param
        assert err.value.body["type"] == "invalid_request_error"
    assert http_json("GET", f"{emulator.base_url}/emulator/stats")[1]["requests"] == before


def test_rate_limit_keeps_retry_after(client):
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="claude-limited",
                                       messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "7"
    assert err.value.body["type"] == "rate_limit_error"
    assert "rate limit" in err.value.body["message"]


def test_overloaded_is_529_in_openai_shape(client):
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="claude-busy",
                                       messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 529
    assert err.value.body == {"message": "Overloaded", "type": "overloaded_error",
                              "param": None, "code": None}


def test_mid_stream_error_reaches_the_client(client):
    script = '{"reply": "a b c d e f", "interrupt": {"after_chunks": 4, "error": {"status": 529}}}'
    text = ""
    with pytest.raises(openai.APIError) as err:
        for chunk in client.chat.completions.create(
                model="claude", stream=True,
                messages=[{"role": "user", "content": f"x\n@emulator {script}"}]):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    assert "Overloaded" in str(err.value)
    assert text and "a b c d e f".startswith(text)


# ---- The official anthropic SDK straight at the emulator ----

def test_anthropic_sdk_parses_the_emulator(emulator):
    anthropic = require_module("anthropic")
    client = anthropic.Anthropic(base_url=emulator.base_url, api_key=UPSTREAM_KEY, max_retries=0)
    msg = client.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                 system="Be brief.",
                                 messages=[{"role": "user", "content": "hello there"}])
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.content[0].type == "text" and msg.content[0].text == "hello there"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 4 and msg.usage.output_tokens == 2

    tools = [{"name": "get_weather", "description": "w",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]}}]
    with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=100, tools=tools,
            messages=[{"role": "user",
                       "content": 'hi\n@emulator {"reasoning": "hmm", "reply": "let me look", '
                                  '"tool_calls": [{"name": "get_weather", '
                                  '"arguments": {"city": "Rome"}}]}'}]) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "let me look"
    kinds = [b.type for b in final.content]
    assert kinds == ["thinking", "text", "tool_use"]
    assert final.content[0].thinking == "hmm" and final.content[0].signature
    assert final.content[2].input == {"city": "Rome"}
    assert final.stop_reason == "tool_use"

    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5,
                               extra_body={"temperature": 1.5},
                               messages=[{"role": "user", "content": "x"}])
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert "temperature" in err.value.body["error"]["message"]
    # (The SDK always sends max_tokens; without it the API answers 400 too.)
    status, body = http_json("POST", f"{emulator.base_url}/v1/messages",
                             json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
                             headers={"x-api-key": UPSTREAM_KEY, "anthropic-version": "2023-06-01",
                                      "content-type": "application/json"})
    assert status == 400
    assert body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}

    bad = anthropic.Anthropic(base_url=emulator.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])

    with pytest.raises(anthropic.APIStatusError) as err:
        client.messages.create(
            model="m", max_tokens=5,
            messages=[{"role": "user", "content": 'x\n@emulator {"error": {"status": 529}}'}])
    assert err.value.status_code == 529
    assert isinstance(err.value, anthropic.InternalServerError)


def test_refusal_is_content_filter(client):
    resp = client.chat.completions.create(model="claude", messages=[
        {"role": "user", "content": 'x\n@emulator {"refusal": "I cannot help with that."}'}])
    choice = resp.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content == "I cannot help with that."
    assert choice.model_extra["stop_reason"] == "refusal"
