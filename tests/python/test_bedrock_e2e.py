"""End to end for the bedrock dialect: official openai SDK -> modeenvoy-gateway (provider
type "bedrock", Bedrock API key as bearer) -> the emulator's Bedrock Converse dialect, over
loopback. The emulator speaks Converse / binary EventStream from its own implementation, so
these tests check the gateway's translation both ways, and record what reached "Bedrock".
"""

from __future__ import annotations

import json

import pytest

from conftest import (http_json, last_emulator_request, openai_client, require_module,
                      start_emulator, start_gateway)

openai = require_module("openai")

BEDROCK_KEY = "bedrock-api-key-e2e"
MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
# A 1x1 PNG.
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
       "rkJggg==")


@pytest.fixture
def emulator(start_process):
    return start_emulator(start_process, "--usage-counter", "words")


@pytest.fixture
def gateway(start_process, emulator, tmp_path):
    config = {
        "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
        "providers": {
            "aws": {"type": "bedrock", "base_url": emulator.base_url, "api_key": BEDROCK_KEY},
        },
        "models": {"haiku": {"provider": "aws", "upstream_model": MODEL_ID}},
    }
    return start_gateway(start_process, tmp_path, config)


@pytest.fixture
def client(gateway):
    return openai_client(gateway)


def last_upstream(emulator) -> dict:
    return last_emulator_request(emulator, lambda target: "/converse" in target)


def test_non_streaming_text_and_usage(client, emulator):
    resp = client.chat.completions.create(
        model="haiku", messages=[{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "Hello bedrock world"}])
    assert resp.object == "chat.completion"
    choice = resp.choices[0]
    assert choice.message.content == "Hello bedrock world"
    assert choice.finish_reason == "stop"
    # Words: system 2 + user 3 in, 3 out.
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (5, 3, 8)
    assert resp.usage.prompt_tokens_details.cached_tokens == 0

    upstream = last_upstream(emulator)
    assert upstream["target"] == "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    assert dict(upstream["headers"])["authorization"] == f"Bearer {BEDROCK_KEY}"
    body = json.loads(upstream["body"])
    assert body["system"] == [{"text": "Be brief."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Hello bedrock world"}]}]


def test_streaming_text_and_usage(client):
    stream = client.chat.completions.create(
        model="haiku", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three four five"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert chunks[-1].usage.prompt_tokens == 5


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_and_tool_results(client, emulator, stream):
    messages = [{"role": "user", "content": 'weather?\ncall get_weather {"city": "Paris"}'}]
    kwargs = dict(model="haiku", messages=messages, tools=[WEATHER_TOOL])
    if stream:
        calls = {}
        finish = None
        for c in client.chat.completions.create(stream=True, **kwargs):
            if not c.choices:
                continue
            finish = c.choices[0].finish_reason or finish
            for t in c.choices[0].delta.tool_calls or []:
                entry = calls.setdefault(t.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = t.id or entry["id"]
                if t.function and t.function.name:
                    entry["name"] = t.function.name
                if t.function and t.function.arguments:
                    entry["arguments"] += t.function.arguments
        assert finish == "tool_calls"
        assert list(calls) == [0]
        call = calls[0]
    else:
        resp = client.chat.completions.create(**kwargs)
        assert resp.choices[0].finish_reason == "tool_calls"
        tc = resp.choices[0].message.tool_calls[0]
        call = {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
    assert call["id"].startswith("tooluse_")
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}

    # The second turn: the assistant's call and the tool's result go back as Converse blocks.
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function",
             "function": {"name": "get_weather", "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21 C"},
    ]
    resp = client.chat.completions.create(model="haiku", messages=messages, tools=[WEATHER_TOOL])
    assert resp.choices[0].message.content == "Sunny, 21 C"
    body = json.loads(last_upstream(emulator)["body"])
    assert body["messages"][1]["content"][0]["toolUse"]["input"] == {"city": "Paris"}
    assert body["messages"][2]["content"][0]["toolResult"] == {
        "toolUseId": call["id"], "content": [{"text": "Sunny, 21 C"}]}


def test_images_go_as_bytes_and_urls_are_refused(client, emulator):
    resp = client.chat.completions.create(model="haiku", messages=[{"role": "user", "content": [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}])
    assert resp.choices[0].message.content == "describe"
    block = json.loads(last_upstream(emulator)["body"])["messages"][0]["content"][1]
    assert block == {"image": {"format": "png", "source": {"bytes": PNG}}}

    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="haiku", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert err.value.status_code == 400
    assert err.value.body["param"] == "messages[0].content[0].image_url.url"


@pytest.mark.parametrize("stream", [False, True])
def test_structured_output(client, stream):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
              "required": ["city", "n"]}
    kwargs = dict(model="haiku", messages=[{"role": "user", "content": "give me json"}],
                  response_format={"type": "json_schema",
                                   "json_schema": {"name": "answer", "schema": schema}})
    if stream:
        chunks = [c for c in client.chat.completions.create(stream=True, **kwargs) if c.choices]
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        finish = chunks[-1].choices[0].finish_reason
        assert not any(c.choices[0].delta.tool_calls for c in chunks)
    else:
        resp = client.chat.completions.create(**kwargs)
        text, finish = resp.choices[0].message.content, resp.choices[0].finish_reason
        assert resp.choices[0].message.tool_calls is None
    # The emulator fills the schema's required properties with placeholders.
    assert json.loads(text) == {"city": "example", "n": 1}
    assert finish == "stop"


def queue_script(emulator, script: dict) -> None:
    """The gateway does not forward client headers: scripts are queued on the emulator."""
    status, _ = http_json("POST", f"{emulator.base_url}/emulator/next",
                          json.dumps({"times": 1, "headers": {"x-emulator-script": json.dumps(script)}}),
                          headers={"Content-Type": "application/json"})
    assert status == 200


def test_upstream_429_keeps_retry_after(client, emulator):
    queue_script(emulator, {"error": {"status": 429, "retry_after": 7}})
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="haiku", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 429
    assert err.value.response.headers.get("retry-after") == "7"
    assert err.value.body["message"] == "Too many requests, please wait before trying again."
    assert err.value.body["type"] == "rate_limit_error"


def test_validation_error_is_400_in_openai_shape(client):
    # Two assistant turns in a row: Bedrock's alternation rule, checked by the emulator.
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="haiku", messages=[
            {"role": "assistant", "content": "first"},
            {"role": "user", "content": "hi"}])
    assert err.value.status_code == 400
    assert "must start with a user message" in err.value.body["message"]


def test_n_above_one_is_refused_by_name(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="haiku", n=2,
                                       messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["param"] == "n"


def test_mid_stream_exception_reaches_the_client(client, emulator):
    queue_script(emulator, {"interrupt": {"after_chunks": 3, "error": {"status": 503}}})
    stream = client.chat.completions.create(
        model="haiku", stream=True, messages=[{"role": "user", "content": "a b c d e f"}])
    with pytest.raises(openai.APIError) as err:
        for _ in stream:
            pass
    assert "Bedrock is unable to process your request" in str(err.value)
