"""End to end: official openai SDK -> modeenvoy-gateway (provider types gemini and vertex)
-> the emulator speaking Gemini's generateContent (AI Studio and Vertex AI paths).

The emulator's Gemini dialect is written independently of the gateway's translator, and it
records what it received, so these tests check both what the client gets (validated by the
SDK's types) and what the gateway sent upstream.
"""

from __future__ import annotations

import base64
import json

import pytest

from conftest import (last_emulator_request, openai_client, require_module, start_emulator,
                      start_gateway)

openai = require_module("openai")

KEY = "AIza-e2e-key"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False}}}]
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()


@pytest.fixture
def emulator(start_process):
    return start_emulator(start_process, "--usage-counter", "words", "--api-key", KEY)


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "vertex-token"
    path.write_text(KEY + "\n")
    return path


@pytest.fixture
def gateway(start_process, emulator, tmp_path, token_file):
    emu = emulator.base_url
    config = {
        "listen": {"address": "127.0.0.1", "port": 0},
        "providers": {
            "gem": {"type": "gemini", "base_url": f"{emu}/v1beta", "api_key": KEY},
            "gem-array": {"type": "gemini", "base_url": f"{emu}/v1beta", "api_key": KEY,
                          "stream_framing": "json_array"},
            "gem-files": {"type": "gemini", "base_url": f"{emu}/v1beta", "api_key": KEY,
                          "allow_file_uri": True},
            "vx": {"type": "vertex", "base_url": f"{emu}/v1", "project": "proj-1",
                   "location": "europe-west4", "token_file": str(token_file)},
        },
        "models": {
            "gemini-flash": {"provider": "gem", "upstream_model": "gemini-2.5-flash"},
            "gemini-array": {"provider": "gem-array", "upstream_model": "gemini-2.5-flash"},
            "gemini-files": {"provider": "gem-files", "upstream_model": "gemini-2.5-flash"},
            "vertex-pro": {"provider": "vx", "upstream_model": "gemini-2.5-pro"},
        },
    }
    return start_gateway(start_process, tmp_path, config)


@pytest.fixture
def client(gateway):
    return openai_client(gateway)


def upstream(emulator) -> dict:
    last = last_emulator_request(emulator, lambda target: "generateContent" in target
                                 or "streamGenerateContent" in target)
    last["json"] = json.loads(last["body"])
    last["header"] = dict(last["headers"])
    return last


MODELS = ["gemini-flash", "gemini-array", "vertex-pro"]


def test_non_streaming_text_and_usage(client, emulator):
    resp = client.chat.completions.create(
        model="gemini-flash", temperature=0.2, max_tokens=50, stop=["END"],
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Hello gateway world"}])
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == "Hello gateway world"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "gemini-2.5-flash"
    # Words, as the emulator counts them: 2 + 3 in, 3 out.
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens,
            resp.usage.total_tokens) == (5, 3, 8)
    up = upstream(emulator)
    assert up["target"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert up["header"]["x-goog-api-key"] == KEY
    assert "authorization" not in up["header"]
    body = up["json"]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hello gateway world"}]}]
    assert body["generationConfig"] == {"stopSequences": ["END"], "temperature": 0.2,
                                        "maxOutputTokens": 50}


@pytest.mark.parametrize("model", MODELS)
def test_streaming_text_with_usage(client, emulator, model):
    chunks = list(client.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three four"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 8
    up = upstream(emulator)
    if model == "gemini-array":
        assert up["target"].endswith(":streamGenerateContent")
    elif model == "vertex-pro":
        assert up["target"] == ("/v1/projects/proj-1/locations/europe-west4/publishers/google/"
                                "models/gemini-2.5-pro:streamGenerateContent?alt=sse")
        assert up["header"]["authorization"] == f"Bearer {KEY}"
    else:
        assert up["target"].endswith(":streamGenerateContent?alt=sse")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trip(client, emulator, model, stream):
    messages = [{"role": "user", "content": 'Weather?\ncall get_weather {"city": "Paris"}'}]
    if stream:
        chunks = list(client.chat.completions.create(model=model, tools=TOOLS, stream=True,
                                                     messages=messages))
        calls = {}
        for c in chunks:
            for d in (c.choices[0].delta.tool_calls or []) if c.choices else []:
                entry = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = d.id or entry["id"]
                if d.function and d.function.name:
                    entry["name"] = d.function.name
                if d.function and d.function.arguments:
                    entry["arguments"] += d.function.arguments
        assert list(calls) == [0]
        call = calls[0]
        assert [c.choices[0].finish_reason for c in chunks
                if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    else:
        resp = client.chat.completions.create(model=model, tools=TOOLS, messages=messages)
        assert resp.choices[0].finish_reason == "tool_calls"
        tc = resp.choices[0].message.tool_calls[0]
        call = {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
    assert call["name"] == "get_weather" and call["id"]
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    up = upstream(emulator)
    decl = up["json"]["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "get_weather"
    assert decl["parametersJsonSchema"]["additionalProperties"] is False

    # The tool's answer goes back as a functionResponse named after the call.
    messages += [{"role": "assistant", "content": None,
                  "tool_calls": [{"id": call["id"], "type": "function",
                                  "function": {"name": "get_weather",
                                               "arguments": call["arguments"]}}]},
                 {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'}]
    resp = client.chat.completions.create(model=model, tools=TOOLS, messages=messages)
    assert "21" in resp.choices[0].message.content
    contents = upstream(emulator)["json"]["contents"]
    assert contents[1]["parts"][0]["functionCall"] == {"name": "get_weather",
                                                      "args": {"city": "Paris"}}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]}


def test_tool_choice_forces_a_named_function(client, emulator):
    resp = client.chat.completions.create(
        model="gemini-flash", tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        messages=[{"role": "user", "content": "anything"}])
    assert resp.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert upstream(emulator)["json"]["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}


def test_images(client, emulator):
    resp = client.chat.completions.create(
        model="gemini-flash",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": PNG}}]}])
    assert resp.choices[0].message.content == "What is this?"
    parts = upstream(emulator)["json"]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG.split(",", 1)[1]}}
    # The emulator charges an image as Gemini documents: 258 tokens (+ 3 words).
    assert resp.usage.prompt_tokens == 3 + 258

    remote = [{"role": "user", "content": [
        {"type": "text", "text": "And this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gemini-flash", messages=remote)
    assert err.value.status_code == 400
    assert err.value.body["param"] == "messages[0].content[1].image_url.url"
    # A provider that allows file URIs sends it as fileData.
    client.chat.completions.create(model="gemini-files", messages=remote)
    assert upstream(emulator)["json"]["contents"][0]["parts"][1] == {
        "fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}}


def test_structured_output(client, emulator):
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "population": {"type": "integer"}},
              "required": ["city", "population"]}
    resp = client.chat.completions.create(
        model="gemini-flash",
        response_format={"type": "json_schema",
                         "json_schema": {"name": "city", "schema": schema}},
        messages=[{"role": "user", "content": "Largest city?"}])
    data = json.loads(resp.choices[0].message.content)
    assert set(data) == {"city", "population"}
    gen = upstream(emulator)["json"]["generationConfig"]
    assert gen["responseMimeType"] == "application/json"
    assert gen["responseJsonSchema"] == schema

    resp = client.chat.completions.create(
        model="vertex-pro", response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Anything"}])
    assert isinstance(json.loads(resp.choices[0].message.content), dict)


def test_reasoning_and_usage_details(client, emulator):
    script = '@emulator {"reasoning": "one plus one is two", "reply": "2", "cached_tokens": 1}'
    resp = client.chat.completions.create(
        model="gemini-flash", reasoning_effort="low",
        messages=[{"role": "user", "content": "1+1?\n" + script}])
    msg = resp.choices[0].message
    assert msg.content == "2"
    assert msg.model_extra["reasoning_content"] == "one plus one is two"
    assert resp.usage.completion_tokens_details.reasoning_tokens == 5
    assert resp.usage.completion_tokens == 6
    assert resp.usage.prompt_tokens_details.cached_tokens == 1
    assert upstream(emulator)["json"]["generationConfig"]["thinkingConfig"] == {
        "includeThoughts": True, "thinkingBudget": 1024}


def test_rate_limit_keeps_status_shape_and_retry_after(client):
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(
            model="gemini-flash",
            messages=[{"role": "user",
                       "content": 'x\n@emulator {"error": {"status": 429, "retry_after": 7}}'}])
    e = err.value
    assert e.status_code == 429
    assert e.response.headers["retry-after"] == "7"
    assert e.body["type"] == "rate_limit_error"
    assert "quota" in e.body["message"]


def test_upstream_errors_map_to_openai_errors(client):
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(
            model="vertex-pro",
            messages=[{"role": "user", "content": 'x\n@emulator {"error": {"status": 503}}'}])
    assert err.value.status_code == 503
    assert "overloaded" in err.value.body["message"]
    # A Gemini validation error (a stop list Gemini refuses is caught before sending).
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gemini-flash", stop=["a", "b", "c", "d", "e", "f"],
                                       messages=[{"role": "user", "content": "x"}])
    assert err.value.body["param"] == "stop"


@pytest.mark.parametrize("model", ["gemini-flash", "gemini-array"])
def test_mid_stream_error(client, model):
    script = ('@emulator {"reply": "a b c d e f", "interrupt": '
              '{"after_chunks": 2, "error": {"status": 503}}}')
    stream = client.chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": "x\n" + script}])
    got = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    assert "".join(got) == "a b"
    assert "overloaded" in str(err.value)


def test_vertex_token_file_is_reread(client, token_file):
    msgs = [{"role": "user", "content": "hi"}]
    assert client.chat.completions.create(model="vertex-pro", messages=msgs).choices
    token_file.write_text("ya29.stale-token\n")
    with pytest.raises(openai.AuthenticationError) as err:
        client.chat.completions.create(model="vertex-pro", messages=msgs)
    assert err.value.status_code == 401
    token_file.write_text(KEY + "\n")
    assert client.chat.completions.create(model="vertex-pro", messages=msgs).choices


def test_models_are_listed(client):
    assert {m.id for m in client.models.list()} == {"gemini-flash", "gemini-array",
                                                     "gemini-files", "vertex-pro"}


@pytest.mark.parametrize("stream", [False, True])
def test_several_candidates(client, emulator, stream):
    msgs = [{"role": "user", "content": "alpha beta"}]
    if stream:
        texts = {}
        for c in client.chat.completions.create(model="gemini-flash", n=2, stream=True,
                                                messages=msgs):
            for choice in c.choices:
                texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    else:
        resp = client.chat.completions.create(model="gemini-flash", n=2, messages=msgs)
        texts = {c.index: c.message.content for c in resp.choices}
    assert texts == {0: "alpha beta", 1: "alpha beta"}
    assert upstream(emulator)["json"]["generationConfig"] == {"candidateCount": 2}
