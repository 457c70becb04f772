"""Issue 11 (part A), end to end: the official `anthropic` SDK -> modeenvoy-gateway's
POST /v1/messages -> emulated providers of every dialect (OpenAI, Gemini, Bedrock, Anthropic),
streaming and not, tools included (a tool_use round trip), and errors in Anthropic's shape
(429 upstream -> rate_limit_error, a bad request -> invalid_request_error naming the field, a
stream that fails after its start -> `event: error` from every upstream dialect that streams,
a wrong x-api-key -> authentication_error).

Expected values come from the emulator's documented behaviour (examples/emulator/README.md:
the answer echoes the last user or tool message; `call <tool> {json}` lines make tool calls;
usage counts words with --usage-counter words), not from the gateway's code.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request

import pytest

from conftest import http_json, last_emulator_request, require_module, start_emulator, start_gateway

anthropic = require_module("anthropic")

CLIENT_KEY = "sk-messages-client"
WEATHER = {"name": "get_weather", "description": "Current weather",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}
# Model name -> the emulator path its provider calls (to find the upstream request).
PROVIDERS = {
    "via-openai": "/v1/chat/completions",
    "via-gemini": "/v1beta/models/",
    "via-bedrock": "/model/",
    "via-anthropic": "/v1/messages",
}


@pytest.fixture
def emulator(start_process):
    return start_emulator(start_process, "--usage-counter", "words")


@pytest.fixture
def gateway(start_process, emulator, tmp_path):
    emu = emulator.base_url
    config = {
        "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
        "filters": [{"type": "api_key_auth",
                     "config": {"keys": [{"key": CLIENT_KEY, "name": "tester"}]}}],
        "providers": {
            "oai": {"type": "openai", "base_url": f"{emu}/v1", "api_key": "sk-up"},
            "oai-429": {"type": "openai", "base_url": f"{emu}/v1", "api_key": "sk-up",
                        "headers": {"x-emulator-status": "429",
                                    "x-emulator-error-message": "Rate limit reached"}},
            "gem": {"type": "gemini", "base_url": f"{emu}/v1beta", "api_key": "AIza-key"},
            "aws": {"type": "bedrock", "base_url": emu, "api_key": "bedrock-key"},
            "ant": {"type": "anthropic", "base_url": emu, "api_key": "sk-ant-up"},
            # The other streaming dialects, for the mid-stream failure tests.
            "az": {"type": "azure_openai", "base_url": emu, "api_key": "az-up",
                   "api_version": "2024-10-21"},
            "gem-array": {"type": "gemini", "base_url": f"{emu}/v1beta", "api_key": "AIza-key",
                          "stream_framing": "json_array"},
            "co": {"type": "cohere", "base_url": emu, "api_key": "co-up"},
            "oll": {"type": "ollama", "base_url": emu},
            "ks": {"type": "kserve", "base_url": emu, "protocol": "generate"},
        },
        "models": {
            "via-openai": {"provider": "oai", "upstream_model": "gpt-4o-mini"},
            "via-gemini": {"provider": "gem", "upstream_model": "gemini-2.5-flash"},
            "via-bedrock": {"provider": "aws",
                            "upstream_model": "anthropic.claude-3-5-haiku-20241022-v1:0"},
            "via-anthropic": {"provider": "ant", "upstream_model": "claude-sonnet-4-5"},
            "limited": {"provider": "oai-429"},
            "via-azure": {"provider": "az", "upstream_model": "gpt-4o-prod"},
            "via-gemini-array": {"provider": "gem-array", "upstream_model": "gemini-2.5-flash"},
            "via-cohere": {"provider": "co", "upstream_model": "command-a-03-2025"},
            "via-ollama": {"provider": "oll", "upstream_model": "llama3.2"},
            "via-kserve": {"provider": "ks", "upstream_model": "ensemble"},
        },
    }
    return start_gateway(start_process, tmp_path, config)


def client(gateway, key: str = CLIENT_KEY):
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=30)


def upstream(emulator, model: str) -> dict:
    return last_emulator_request(emulator, lambda t: t.startswith(PROVIDERS[model]))


@pytest.mark.parametrize("model", sorted(PROVIDERS))
def test_text_whole_and_streamed(gateway, emulator, model):
    c = client(gateway)
    msg = c.messages.create(model=model, max_tokens=200, system="Be brief.",
                            messages=[{"role": "user", "content": "hello there friend"}])
    assert isinstance(msg, anthropic.types.Message)
    assert msg.role == "assistant" and msg.type == "message"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "hello there friend"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 3  # three words, counted by the emulator

    with c.messages.stream(model=model, max_tokens=200,
                           messages=[{"role": "user", "content": "one two three four"}]) as s:
        events = [e.type for e in s]
        final = s.get_final_message()
    assert final.content[0].text == "one two three four"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4
    assert events[0] == "message_start"
    assert events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events


@pytest.mark.parametrize("model", sorted(PROVIDERS))
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(gateway, emulator, model, stream):
    c = client(gateway)
    first_turn = [{"role": "user", "content": 'call get_weather {"city": "Paris"}'}]
    kwargs = dict(model=model, max_tokens=200, tools=[WEATHER], messages=first_turn)
    if stream:
        with c.messages.stream(**kwargs) as s:
            msg = s.get_final_message()
    else:
        msg = c.messages.create(**kwargs)
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == "get_weather"
    assert uses[0].input == {"city": "Paris"}
    assert uses[0].id

    second = c.messages.create(
        model=model, max_tokens=200, tools=[WEATHER],
        messages=first_turn + [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                          "content": "sunny and 21 degrees"}]}])
    assert second.stop_reason == "end_turn"
    # The emulator echoes the tool result (Gemini's functionResponse wraps it in an object).
    assert "sunny and 21 degrees" in second.content[0].text
    # The provider got the call and its result in its own format.
    body = json.dumps(upstream(emulator, model)["body"])
    assert "sunny and 21 degrees" in body and "get_weather" in body


def test_upstream_429_is_a_rate_limit_error(gateway):
    with pytest.raises(anthropic.RateLimitError) as err:
        client(gateway).messages.create(model="limited", max_tokens=10,
                                        messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 429
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "rate_limit_error"


def test_bad_request_names_the_field(gateway):
    with pytest.raises(anthropic.BadRequestError) as err:
        client(gateway).messages.create(
            model="via-openai", max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "image",
                                                     "source": {"type": "ftp"}}]}])
    assert err.value.status_code == 400
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert err.value.body["error"]["message"].startswith("messages[0].content[0].source.type:")

    # Without max_tokens (the SDK insists on it, so raw HTTP).
    status, body = http_json("POST", f"{gateway.base_url}/v1/messages",
                             json.dumps({"model": "via-openai",
                                         "messages": [{"role": "user", "content": "x"}]}),
                             headers={"x-api-key": CLIENT_KEY, "content-type": "application/json"})
    assert status == 400
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("max_tokens:")


def test_wrong_key_is_an_authentication_error(gateway):
    with pytest.raises(anthropic.AuthenticationError) as err:
        client(gateway, key="sk-wrong-key-123456").messages.create(
            model="via-openai", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401
    assert err.value.body["error"]["type"] == "authentication_error"


def test_stream_failing_after_its_start_ends_with_an_error_event(gateway):
    # The script travels as an @emulator directive in the prompt (README of the emulator).
    script = {"interrupt": {"after_chunks": 2,
                            "error": {"status": 500, "message": "upstream broke"}}}
    prompt = "a b c d e f\n@emulator " + json.dumps(script)
    c = client(gateway)
    with pytest.raises(anthropic.APIStatusError) as err:
        with c.messages.stream(model="via-openai", max_tokens=50,
                               messages=[{"role": "user", "content": prompt}]) as s:
            for _ in s:
                pass
    assert "upstream broke" in str(err.value)
    # On the wire: message_start came, no message_stop, and the last event is `error`.
    body = json.dumps({"model": "via-openai", "max_tokens": 50, "stream": True,
                       "messages": [{"role": "user", "content": prompt}]})
    status, text = _post_raw(f"{gateway.base_url}/v1/messages", body, CLIENT_KEY)
    assert status == 200
    names = [line[len("event: "):] for line in text.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start"
    assert names[-1] == "error"
    assert "message_stop" not in names


def test_anthropic_headers_reach_an_anthropic_upstream(gateway, emulator):
    client(gateway).messages.create(
        model="via-anthropic", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "some-beta-2025-01-01",
                       "anthropic-version": "2023-06-01"})
    got = upstream(emulator, "via-anthropic")
    headers = {k.lower(): v for k, v in got["headers"].items()} if isinstance(got["headers"], dict) \
        else {k.lower(): v for k, v in got["headers"]}
    assert headers["anthropic-version"] == "2023-06-01"  # the client's, forwarded
    assert "some-beta-2025-01-01" in headers["anthropic-beta"]
    assert headers["x-api-key"] == "sk-ant-up"  # the provider's key, not the client's


# ---- native pass-through: an "anthropic" provider gets the client's bytes ----

NATIVE_BODY = (
    '{ "model" : "via-anthropic",\n'
    '  "max_tokens": 64,\n'
    '  "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],\n'
    '  "messages": [{"role": "user", "content": [{"type": "text", "text": "keep my bytes",'
    ' "cache_control": {"type": "ephemeral", "ttl": "5m"}}]}],\n'
    '  "context_management" : {"edits": [{"type": "clear_tool_uses_20250919",'
    ' "keep": {"type": "tool_uses", "value": 3.0}}]}, "stream": %s }')


def _post_raw(url: str, body: str, key: str):
    """(status, body text) of a POST, the bytes untouched."""
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"x-api-key": key, "content-type": "application/json",
                                          "anthropic-version": "2023-06-01"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            try:
                return resp.status, resp.read().decode()
            except http.client.IncompleteRead as cut:  # a failed stream is cut after its error
                return resp.status, cut.partial.decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _post_native(gateway, body: str):
    return _post_raw(f"{gateway.base_url}/v1/messages", body, CLIENT_KEY)


@pytest.mark.parametrize("stream", ["false", "true"])
def test_native_request_body_is_forwarded_byte_for_byte(gateway, emulator, stream):
    body = NATIVE_BODY % stream
    status, text = _post_native(gateway, body)
    assert status == 200, text
    sent = upstream(emulator, "via-anthropic")["body"]
    # Only the model value changed (spliced to the upstream name); formatting, cache_control
    # and the unknown member are the client's bytes.
    assert sent == body.replace('"via-anthropic"', '"claude-sonnet-4-5"')


@pytest.mark.parametrize("stream", ["false", "true"])
def test_native_answer_is_the_providers_bytes(gateway, emulator, stream):
    body = NATIVE_BODY % stream
    status, via_gateway = _post_native(gateway, body)
    assert status == 200, via_gateway
    direct = body.replace('"via-anthropic"', '"claude-sonnet-4-5"')
    status, direct_text = _post_raw(f"{emulator.base_url}/v1/messages", direct, "sk-ant-up")
    assert status == 200, direct_text

    def normalize(text: str) -> str:  # message ids may differ per call
        return re.sub(r'"msg_[A-Za-z0-9]+"', '"msg_X"', text)

    assert normalize(via_gateway) == normalize(direct_text)


# ---- a stream that breaks after its start, from every upstream dialect that streams ----
# Issue 11: errors in the client's dialect "including errors that arrive mid-stream from any
# provider". The emulator's `interrupt` script (examples/emulator/README.md, "Scripts") sends
# the first N events of its answer in the provider's own format, then either the provider's
# own in-stream error (OpenAI `{"error": ...}` data, Anthropic `event: error`, a Gemini error
# element, a Bedrock EventStream exception message, Cohere `message-end` with `finish_reason:
# "ERROR"`, an Ollama `{"error": ...}` line, a Triton `{"error": ...}` event) or a TCP reset.

# Model -> the gateway's provider name (named in the message of a connection failure).
STREAMING_UPSTREAMS = {
    "via-openai": "oai", "via-azure": "az", "via-gemini": "gem",
    "via-gemini-array": "gem-array", "via-bedrock": "aws", "via-anthropic": "ant",
    "via-cohere": "co", "via-ollama": "oll", "via-kserve": "ks",
}
# (model, HTTP status of the scripted upstream error, the status that error stands for once
# read back). What each wire format can say (docs/providers.md): OpenAI's and Azure's error
# event carries `code: "rate_limit_exceeded"` (429); Gemini's element its `code`; Bedrock's
# exception its type (`throttlingException` 429, `serviceUnavailableException` 503);
# Anthropic's event its type (`rate_limit_error` 429, `overloaded_error` 529). Cohere's,
# Ollama's and Triton's in-stream errors carry a message only: a plain server error (500).
UPSTREAM_ERRORS = [
    ("via-openai", 429, 429), ("via-azure", 429, 429),
    ("via-gemini", 429, 429), ("via-gemini", 503, 503), ("via-gemini-array", 503, 503),
    ("via-bedrock", 429, 429), ("via-bedrock", 503, 503),
    ("via-anthropic", 429, 429), ("via-anthropic", 529, 529),
    ("via-cohere", 429, 500), ("via-ollama", 429, 500), ("via-kserve", 429, 500),
]
# Anthropic's error type for an HTTP status (docs/providers.md, "Anthropic Messages
# ingress", Errors; 502, which Anthropic has no type of its own for, is its server error).
MESSAGES_ERROR_TYPE = {429: "rate_limit_error", 500: "api_error", 502: "api_error",
                       503: "overloaded_error", 529: "overloaded_error"}
FULL_REPLY = "a b c d e f"


def _interrupted_prompt(interrupt: dict) -> str:
    return f"{FULL_REPLY}\n@emulator " + json.dumps({"interrupt": interrupt})


def _stream_until_the_sdk_raises(gateway, model: str, prompt: str):
    """(events the anthropic SDK yielded, the APIStatusError it raised) for a failing stream."""
    seen = []
    with pytest.raises(anthropic.APIStatusError) as err:
        with client(gateway).messages.stream(model=model, max_tokens=50,
                                             messages=[{"role": "user", "content": prompt}]) as s:
            for event in s:
                seen.append(event)
    return seen, err.value


def _check_failed_stream(gateway, model: str, prompt: str, error_type: str) -> dict:
    """Checks what the SDK and the wire show of a stream that fails after its start; returns
    the error event's body."""
    seen, err = _stream_until_the_sdk_raises(gateway, model, prompt)
    # The SDK raises for an `error` event as it does for Anthropic's own mid-stream errors:
    # the status error of the (200) stream, with the event's body.
    assert type(err) is anthropic.APIStatusError
    assert err.status_code == 200
    assert err.body["type"] == "error"
    assert err.body["error"]["type"] == error_type
    # What came before the failure reached the client: the start and part of the text.
    assert seen[0].type == "message_start"
    text = "".join(e.delta.text for e in seen
                   if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text and FULL_REPLY.startswith(text) and text != FULL_REPLY
    assert "message_stop" not in [e.type for e in seen]

    # On the wire: the error event is the last one, the only one, and nothing follows it.
    body = json.dumps({"model": model, "max_tokens": 50, "stream": True,
                       "messages": [{"role": "user", "content": prompt}]})
    status, wire = _post_raw(f"{gateway.base_url}/v1/messages", body, CLIENT_KEY)
    assert status == 200
    names = [line[len("event: "):] for line in wire.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start"
    assert names.count("error") == 1 and names[-1] == "error"
    assert "message_stop" not in names
    assert wire.endswith("\n\n")
    datas = [line[len("data: "):] for line in wire.splitlines() if line.startswith("data: ")]
    last_data = json.loads(datas[-1])
    assert set(last_data) == {"type", "error"}
    assert set(last_data["error"]) == {"type", "message"}
    assert last_data == err.body
    return last_data


@pytest.mark.parametrize("model,status,read_back", UPSTREAM_ERRORS)
def test_upstream_error_event_mid_stream_is_an_anthropic_error_event(gateway, model, status,
                                                                      read_back):
    prompt = _interrupted_prompt({"after_chunks": 4,
                                  "error": {"status": status, "message": "upstream broke"}})
    error = _check_failed_stream(gateway, model, prompt, MESSAGES_ERROR_TYPE[read_back])
    assert error["error"]["message"] == "upstream broke"  # the provider's own message


@pytest.mark.parametrize("model", sorted(STREAMING_UPSTREAMS))
def test_upstream_connection_cut_mid_stream_is_an_anthropic_error_event(gateway, model):
    # Not a silent truncation: the client learns that the stream broke, and where.
    prompt = _interrupted_prompt({"after_chunks": 4, "reset": True})
    error = _check_failed_stream(gateway, model, prompt, MESSAGES_ERROR_TYPE[502])
    assert f'upstream provider "{STREAMING_UPSTREAMS[model]}" failed' in error["error"]["message"]


def test_native_mid_stream_error_reaches_the_client_as_anthropic_sent_it(gateway, emulator):
    """The pass-through path: an Anthropic upstream's own `event: error` (overloaded_error,
    the usual mid-stream failure) comes to the client byte for byte after the events before
    it, as a direct call to the provider shows them."""
    prompt = _interrupted_prompt({"after_chunks": 4,
                                  "error": {"status": 529, "message": "Overloaded"}})
    body = json.dumps({"model": "via-anthropic", "max_tokens": 50, "stream": True,
                       "messages": [{"role": "user", "content": prompt}]})
    status, via_gateway = _post_native(gateway, body)
    assert status == 200
    direct = body.replace('"via-anthropic"', '"claude-sonnet-4-5"')
    status, direct_text = _post_raw(f"{emulator.base_url}/v1/messages", direct, "sk-ant-up")
    assert status == 200
    assert "event: error\n" in direct_text and "overloaded_error" in direct_text

    def normalize(text: str) -> str:  # message ids may differ per call
        return re.sub(r'"msg_[A-Za-z0-9]+"', '"msg_X"', text)

    assert normalize(via_gateway) == normalize(direct_text)
