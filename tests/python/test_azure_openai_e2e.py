"""End to end for the azure_openai provider type: official openai SDK -> modeenvoy-gateway
(provider type azure_openai, base_url the emulator) -> the emulator's Azure routes.

The client speaks OpenAI to the gateway; the gateway speaks Azure upstream (deployment URL,
api-version, api-key header). Checked: whole and streamed replies, tools, images,
structured output, Azure's filter annotations passing through, usage in the client's stream
only when it asked (the gateway always asks upstream), estimated usage when the upstream
stream carries none, and errors (status, OpenAI error shape, retry-after, content filter,
mid-stream failures).
"""

from __future__ import annotations

import json

import pytest

from conftest import (last_emulator_request, openai_client, require_module, start_emulator,
                      start_gateway)

openai = require_module("openai")

UPSTREAM_KEY = "az-upstream-secret"
API_VERSION = "2024-10-21"


@pytest.fixture
def emulator(start_process):
    return start_emulator(start_process, "--usage-counter", "words", "--api-key", UPSTREAM_KEY)


@pytest.fixture
def gateway(start_process, emulator, tmp_path):
    config = {
        "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
        "providers": {
            "az": {"type": "azure_openai", "base_url": emulator.base_url,
                   "api_key": UPSTREAM_KEY, "api_version": API_VERSION},
            # A server that rejects stream_options: none is sent, no usage comes back.
            "az-no-usage": {"type": "azure_openai", "base_url": emulator.base_url,
                            "api_key": UPSTREAM_KEY, "stream_usage": False},
            "az-v1": {"type": "azure_openai", "base_url": emulator.base_url,
                      "api_key": UPSTREAM_KEY, "api_style": "v1"},
        },
        "models": {
            "gpt-4o": {"provider": "az", "upstream_model": "gpt-4o-prod"},
            "no-usage": {"provider": "az-no-usage", "upstream_model": "gpt-4o-prod"},
            "v1": {"provider": "az-v1", "upstream_model": "gpt-4o-v1"},
        },
    }
    return start_gateway(start_process, tmp_path, config)


@pytest.fixture
def client(gateway):
    return openai_client(gateway)


def last_upstream(emulator) -> dict:
    return last_emulator_request(emulator, lambda target: "/chat/completions" in target)


def test_whole_reply_through_the_deployment_url(client, emulator):
    resp = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Hello Azure world"}])
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == "Hello Azure world"
    assert resp.choices[0].finish_reason == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (5, 3)
    # Azure's annotations reach the client.
    assert resp.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    assert resp.choices[0].model_extra["content_filter_results"]["hate"]["filtered"] is False

    upstream = last_upstream(emulator)
    assert upstream["target"] == (
        f"/openai/deployments/gpt-4o-prod/chat/completions?api-version={API_VERSION}")
    headers = dict(upstream["headers"])
    assert headers["api-key"] == UPSTREAM_KEY
    assert "authorization" not in headers


def test_v1_style_puts_the_deployment_in_the_body(client, emulator):
    resp = client.chat.completions.create(
        model="v1", messages=[{"role": "user", "content": "via v1"}])
    assert resp.choices[0].message.content == "via v1"
    upstream = last_upstream(emulator)
    assert upstream["target"] == "/openai/v1/chat/completions"
    assert json.loads(upstream["body"])["model"] == "gpt-4o-v1"


def collect(stream):
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, text


def test_stream_without_include_usage_has_no_usage(client, emulator):
    chunks, text = collect(client.chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": "one two three"}]))
    assert text == "one two three"
    assert all(c.usage is None for c in chunks)
    # Azure's prompt filter chunk (no choices, no usage) passes through first.
    assert chunks[0].choices == [] and "prompt_filter_results" in chunks[0].model_extra
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    # Nothing reads the usage (no filter, the client did not ask): the gateway does not ask
    # the upstream for it either (ProviderCall::stream_usage).
    body = json.loads(last_upstream(emulator)["body"])
    assert "stream_options" not in body


def test_stream_with_include_usage_has_exactly_one_usage_chunk_last(client):
    chunks, text = collect(client.chat.completions.create(
        model="gpt-4o", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three four"}]))
    assert text == "one two three four"
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (4, 4)
    assert "estimated" not in (chunks[-1].usage.model_extra or {})


def test_stream_whose_upstream_reports_no_usage_gets_an_estimate(client, emulator):
    chunks, text = collect(client.chat.completions.create(
        model="no-usage", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "count these five words please"}]))
    assert text == "count these five words please"
    # stream_usage false: no stream_options upstream, not even the client's.
    assert "stream_options" not in json.loads(last_upstream(emulator)["body"])
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.model_extra["estimated"] is True
    assert usage.model_extra["estimation_method"] in ("tokenizer", "word_count")
    assert usage.completion_tokens >= 5 and usage.prompt_tokens >= 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_tools_whole_and_streamed(client):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    prompt = 'call get_weather {"city": "Paris"}'
    resp = client.chat.completions.create(
        model="gpt-4o", tools=tools, messages=[{"role": "user", "content": prompt}])
    (call,) = resp.choices[0].message.tool_calls
    assert resp.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    args, names, ids = {}, {}, {}
    for chunk in client.chat.completions.create(
            model="gpt-4o", tools=tools, stream=True,
            messages=[{"role": "user", "content": prompt}]):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")
            if tc.id:
                ids[tc.index] = tc.id
            if tc.function.name:
                names[tc.index] = names.get(tc.index, "") + tc.function.name
    assert names == {0: "get_weather"} and ids[0].startswith("call_")
    assert json.loads(args[0]) == {"city": "Paris"}


def test_image_and_structured_output(client, emulator):
    pixel = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42"
             "mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    resp = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "describe"},
            {"type": "image_url", "image_url": {"url": pixel, "detail": "low"}}]}],
        response_format={"type": "json_schema", "json_schema": {
            "name": "answer", "strict": True,
            "schema": {"type": "object", "properties": {"colour": {"type": "string"}},
                       "required": ["colour"], "additionalProperties": False}}})
    assert json.loads(resp.choices[0].message.content) == {"colour": "example"}
    sent = json.loads(last_upstream(emulator)["body"])
    assert sent["messages"][0]["content"][1]["image_url"]["url"] == pixel
    assert sent["response_format"]["type"] == "json_schema"


def test_rate_limit_keeps_status_shape_and_retry_after(client):
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content":
            'hi\n@emulator {"error": {"status": 429, "retry_after": 7}}'}])
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "7"
    body = err.value.response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    assert "exceeded token rate limit" in body["error"]["message"]


def test_content_filter_error_is_a_400_with_its_code(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content":
            'hi\n@emulator {"error": {"status": 400, "code": "content_filter", '
            '"message": "The response was filtered"}}'}])
    assert err.value.status_code == 400
    assert err.value.code == "content_filter"
    assert err.value.body["type"] == "invalid_request_error"


def test_content_filter_finish_reason_streams_through(client):
    chunks, _ = collect(client.chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content":
            'x\n@emulator {"reply": "partial", "finish_reason": "content_filter"}'}]))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "content_filter"


@pytest.mark.parametrize("interrupt", [
    {"after_chunks": 3, "reset": True},
    {"after_chunks": 3, "error": {"status": 500, "message": "upstream broke"}},
])
def test_stream_cut_short_is_an_error_to_the_client(client, interrupt):
    directive = json.dumps({"interrupt": interrupt})
    stream = client.chat.completions.create(
        model="gpt-4o", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": f"a b c d e f\n@emulator {directive}"}])
    seen = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            seen.append(chunk)
    # What came before the failure came through; no usage chunk (the estimate goes to
    # OnResponseComplete, not to a client whose stream failed).
    assert all(c.usage is None for c in seen)
