"""Issue 11 (part B), end to end: the official `openai` SDK's `client.responses.create` ->
modeenvoy-gateway's POST /v1/responses -> emulated providers (OpenAI, Gemini, Anthropic),
streaming (the event sequence checked) and not, a function tool round trip (function_call ->
function_call_output), structured output (text.format json_schema), the echoed request
fields, hosted tools refused for a non-OpenAI provider, and errors as OpenAI error objects
(a stream failing after its start ends with response.failed, from every upstream dialect that
streams: OpenAI, Azure, Gemini, Bedrock, Anthropic, Cohere, Ollama, Triton).

Expected values come from the emulator's documented behaviour (examples/emulator/README.md:
the answer echoes the last user or tool message; `call <tool> {json}` lines make tool calls;
json_schema answers hold the schema's required properties; usage counts words with
--usage-counter words) and from the Responses API reference, not from the gateway's code.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import pytest

from conftest import last_emulator_request, require_module, start_emulator, start_gateway

openai = require_module("openai")

CLIENT_KEY = "sk-responses-client"
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}
# Model name -> the emulator path its provider calls (to find the upstream request).
PROVIDERS = {
    "via-openai": "/v1/chat/completions",
    "via-gemini": "/v1beta/models/",
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
            "gem": {"type": "gemini", "base_url": f"{emu}/v1beta", "api_key": "AIza-key"},
            "ant": {"type": "anthropic", "base_url": emu, "api_key": "sk-ant-up"},
            # The other streaming dialects, for the mid-stream failure tests.
            "az": {"type": "azure_openai", "base_url": emu, "api_key": "az-up",
                   "api_version": "2024-10-21"},
            "gem-array": {"type": "gemini", "base_url": f"{emu}/v1beta", "api_key": "AIza-key",
                          "stream_framing": "json_array"},
            "aws": {"type": "bedrock", "base_url": emu, "api_key": "bedrock-key"},
            "co": {"type": "cohere", "base_url": emu, "api_key": "co-up"},
            "oll": {"type": "ollama", "base_url": emu},
            "ks": {"type": "kserve", "base_url": emu, "protocol": "generate"},
        },
        "models": {
            "via-openai": {"provider": "oai", "upstream_model": "gpt-4o-mini"},
            "via-gemini": {"provider": "gem", "upstream_model": "gemini-2.5-flash"},
            "via-anthropic": {"provider": "ant", "upstream_model": "claude-sonnet-4-5"},
            "via-azure": {"provider": "az", "upstream_model": "gpt-4o-prod"},
            "via-gemini-array": {"provider": "gem-array", "upstream_model": "gemini-2.5-flash"},
            "via-bedrock": {"provider": "aws",
                            "upstream_model": "anthropic.claude-3-5-haiku-20241022-v1:0"},
            "via-cohere": {"provider": "co", "upstream_model": "command-a-03-2025"},
            "via-ollama": {"provider": "oll", "upstream_model": "llama3.2"},
            "via-kserve": {"provider": "ks", "upstream_model": "ensemble"},
        },
    }
    return start_gateway(start_process, tmp_path, config)


def client(gateway, key: str = CLIENT_KEY):
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0,
                         timeout=30)


def upstream(emulator, model: str) -> dict:
    return last_emulator_request(emulator, lambda t: t.startswith(PROVIDERS[model]))


@pytest.mark.parametrize("model", sorted(PROVIDERS))
def test_text_whole(gateway, model):
    r = client(gateway).responses.create(
        model=model, instructions="Be brief.", input="hello there friend", temperature=0.5,
        top_p=0.9, metadata={"ticket": "42"})
    assert isinstance(r, openai.types.responses.Response)
    assert r.object == "response" and r.status == "completed"
    assert r.id.startswith("resp_")
    assert r.output_text == "hello there friend"
    assert [o.type for o in r.output] == ["message"]
    assert r.usage.output_tokens == 3  # three words, counted by the emulator
    # The request's fields, echoed (the Responses API reference's response object).
    assert r.instructions == "Be brief."
    assert r.temperature == 0.5 and r.top_p == 0.9
    assert r.metadata == {"ticket": "42"}
    assert r.tools == [] and r.tool_choice == "auto" and r.parallel_tool_calls is True


@pytest.mark.parametrize("model", sorted(PROVIDERS))
def test_text_streamed_event_sequence(gateway, model):
    stream = client(gateway).responses.create(model=model, input="one two three four",
                                              stream=True)
    events = list(stream)
    types = [e.type for e in events]
    # The sequence of a one-message answer in the API reference (streaming events).
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert "response.output_text.delta" in types
    tail = [t for t in types if t != "response.output_text.delta"][-4:]
    assert tail == ["response.output_text.done", "response.content_part.done",
                    "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "one two three four"
    final = events[-1].response
    assert final.status == "completed"
    assert final.output_text == "one two three four"
    assert final.usage.output_tokens == 4
    assert final.tool_choice == "auto" and final.tools == []


@pytest.mark.parametrize("model", sorted(PROVIDERS))
@pytest.mark.parametrize("stream", [False, True])
def test_function_call_round_trip(gateway, emulator, model, stream):
    c = client(gateway)
    first_turn = [{"role": "user", "content": 'call get_weather {"city": "Paris"}'}]
    if stream:
        events = list(c.responses.create(model=model, input=first_turn, tools=[WEATHER],
                                         stream=True))
        assert events[-1].type == "response.completed"
        assert "response.function_call_arguments.delta" in [e.type for e in events] or \
            "response.function_call_arguments.done" in [e.type for e in events]
        r = events[-1].response
    else:
        r = c.responses.create(model=model, input=first_turn, tools=[WEATHER])
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    assert calls[0].call_id
    assert r.tools[0].name == "get_weather"  # echoed

    second = c.responses.create(
        model=model, tools=[WEATHER],
        input=first_turn + [calls[0].model_dump(exclude_none=True),
                            {"type": "function_call_output", "call_id": calls[0].call_id,
                             "output": "sunny and 21 degrees"}])
    assert second.status == "completed"
    # The emulator echoes the tool result (Gemini's functionResponse wraps it in an object).
    assert "sunny and 21 degrees" in second.output_text
    body = json.dumps(upstream(emulator, model)["body"])
    assert "sunny and 21 degrees" in body and "get_weather" in body


@pytest.mark.parametrize("model", sorted(PROVIDERS))
def test_structured_output(gateway, model):
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "degrees": {"type": "number"}},
              "required": ["city", "degrees"], "additionalProperties": False}
    r = client(gateway).responses.create(
        model=model, input="weather in Paris",
        text={"format": {"type": "json_schema", "name": "weather", "schema": schema,
                         "strict": True}})
    parsed = json.loads(r.output_text)
    # The emulator answers an object holding the schema's required properties.
    assert set(parsed) >= {"city", "degrees"}


def test_hosted_tool_is_refused_for_a_non_openai_provider(gateway):
    with pytest.raises(openai.BadRequestError) as err:
        client(gateway).responses.create(
            model="via-anthropic", input="news?",
            tools=[WEATHER, {"type": "web_search_preview"}])
    assert err.value.status_code == 400
    assert err.value.body["message"].startswith("tools[1].type:")
    assert "web_search_preview" in err.value.body["message"]


def test_bad_request_names_the_field(gateway):
    with pytest.raises(openai.BadRequestError) as err:
        client(gateway).responses.create(model="via-openai", input="x", temperature=3)
    assert err.value.status_code == 400
    assert err.value.body["message"].startswith("temperature:")


def test_previous_response_id_without_a_store_is_a_400(gateway):
    with pytest.raises(openai.BadRequestError) as err:
        client(gateway).responses.create(model="via-openai", input="x",
                                         previous_response_id="resp_abc")
    assert err.value.body["message"].startswith("previous_response_id:")
    assert "store" in err.value.body["message"]


def test_store_is_not_forwarded(gateway, emulator):
    client(gateway).responses.create(model="via-anthropic", input="hi", store=True)
    assert "store" not in upstream(emulator, "via-anthropic")["body"]


def test_stream_failing_after_its_start_ends_with_response_failed(gateway):
    script = {"interrupt": {"after_chunks": 2,
                            "error": {"status": 500, "message": "upstream broke"}}}
    prompt = "a b c d e f\n@emulator " + json.dumps(script)
    body = json.dumps({"model": "via-openai", "input": prompt, "stream": True})
    req = urllib.request.Request(f"{gateway.base_url}/v1/responses", data=body.encode(),
                                 method="POST",
                                 headers={"authorization": f"Bearer {CLIENT_KEY}",
                                          "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        try:
            text = resp.read().decode()
        except http.client.IncompleteRead as cut:
            text = cut.partial.decode()
    names = [line[len("event: "):] for line in text.splitlines() if line.startswith("event: ")]
    assert names[0] == "response.created"
    assert names[-1] == "response.failed"
    assert "response.completed" not in names
    last = json.loads([line for line in text.splitlines() if line.startswith("data: ")][-1][6:])
    event = openai.types.responses.ResponseFailedEvent.model_validate(last)
    assert event.response.status == "failed"
    assert "upstream broke" in event.response.error.message
    seqs = [json.loads(line[6:])["sequence_number"] for line in text.splitlines()
            if line.startswith("data: ")]
    assert seqs == list(range(len(seqs)))


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
FULL_REPLY = "a b c d e f"


def _error_code(status: int) -> str:
    """response.failed's error.code for an HTTP status (docs/providers.md, openai_responses:
    rate_limit_exceeded for 429, invalid_prompt for other 4xx, else server_error)."""
    return "rate_limit_exceeded" if status == 429 else \
        "invalid_prompt" if 400 <= status < 500 else "server_error"


def _interrupted_prompt(interrupt: dict) -> str:
    return f"{FULL_REPLY}\n@emulator " + json.dumps({"interrupt": interrupt})


def _check_failed_stream(gateway, model: str, prompt: str, code: str):
    """Checks the wire of a Responses stream that fails after its start, every event
    validated as the SDK's types; returns the response.failed event."""
    pydantic = require_module("pydantic")
    body = json.dumps({"model": model, "input": prompt, "stream": True})
    req = urllib.request.Request(f"{gateway.base_url}/v1/responses", data=body.encode(),
                                 method="POST",
                                 headers={"authorization": f"Bearer {CLIENT_KEY}",
                                          "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        try:
            wire = resp.read().decode()
        except http.client.IncompleteRead as cut:
            wire = cut.partial.decode()
    adapter = pydantic.TypeAdapter(openai.types.responses.ResponseStreamEvent)
    events = [adapter.validate_python(json.loads(line[6:]))
              for line in wire.splitlines() if line.startswith("data: ")]
    names = [line[len("event: "):] for line in wire.splitlines() if line.startswith("event: ")]
    assert names == [e.type for e in events]
    assert wire.endswith("\n\n")
    # The events before the failure came through, then response.failed, alone and last.
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types.count("response.failed") == 1 and types[-1] == "response.failed"
    assert not {"response.completed", "response.incomplete", "error"} & set(types)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and FULL_REPLY.startswith(text) and text != FULL_REPLY
    assert [e.sequence_number for e in events] == list(range(len(events)))
    failed = events[-1]
    assert failed.response.id == events[0].response.id
    assert failed.response.status == "failed"
    assert failed.response.error.code == code
    return failed


@pytest.mark.parametrize("model,status,read_back", UPSTREAM_ERRORS)
def test_upstream_error_event_mid_stream_ends_with_response_failed(gateway, model, status,
                                                                    read_back):
    prompt = _interrupted_prompt({"after_chunks": 4,
                                  "error": {"status": status, "message": "upstream broke"}})
    failed = _check_failed_stream(gateway, model, prompt, _error_code(read_back))
    assert failed.response.error.message == "upstream broke"  # the provider's own message


@pytest.mark.parametrize("model", sorted(STREAMING_UPSTREAMS))
def test_upstream_connection_cut_mid_stream_ends_with_response_failed(gateway, model):
    # Not a silent truncation: the client learns that the stream broke, and where.
    prompt = _interrupted_prompt({"after_chunks": 4, "reset": True})
    failed = _check_failed_stream(gateway, model, prompt, _error_code(502))
    assert f'upstream provider "{STREAMING_UPSTREAMS[model]}" failed' in \
        failed.response.error.message


@pytest.mark.parametrize("interrupt", [
    {"after_chunks": 4, "error": {"status": 529, "message": "Overloaded"}},
    {"after_chunks": 4, "reset": True},
], ids=["error-event", "reset"])
def test_sdk_stream_ends_after_response_failed(gateway, interrupt):
    """The openai SDK does not raise for response.failed (a Responses event like the others:
    the caller reads `response.error`); it reads on to the end of the body. That end must be
    a normal one, as after any other terminal event, or the caller gets APIConnectionError
    ("Connection error.") on top of the failure already reported, and retries a transport
    error that was none. Fails today: the gateway closes a failed stream without the
    terminating chunk (ResponseSink::Finish(complete=false), examples/proxy/http_server.cc)."""
    stream = client(gateway).responses.create(model="via-anthropic", stream=True,
                                              input=_interrupted_prompt(interrupt))
    events = list(stream)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "server_error"


@pytest.mark.parametrize("model", sorted(PROVIDERS))
def test_wire_objects_validate_strictly_as_sdk_types(gateway, model):
    """The SDK builds its objects without validation; here every object and event on the
    wire is validated against the SDK's pydantic types."""
    pydantic = require_module("pydantic")
    c = client(gateway)
    tools = [WEATHER]
    raw = c.responses.with_raw_response.create(model=model, input="hello", tools=tools,
                                               tool_choice="auto", metadata={"a": "b"})
    whole = openai.types.responses.Response.model_validate(json.loads(raw.text))
    assert whole.metadata == {"a": "b"} and whole.tools[0].name == "get_weather"

    body = json.dumps({"model": model, "input": 'call get_weather {"city": "Oslo"}',
                       "tools": tools, "stream": True})
    req = urllib.request.Request(f"{gateway.base_url}/v1/responses", data=body.encode(),
                                 method="POST",
                                 headers={"authorization": f"Bearer {CLIENT_KEY}",
                                          "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
    adapter = pydantic.TypeAdapter(openai.types.responses.ResponseStreamEvent)
    events = [adapter.validate_python(json.loads(line[6:]))
              for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1].type == "response.completed"
    calls = [o for o in events[-1].response.output if o.type == "function_call"]
    assert [json.loads(call.arguments) for call in calls] == [{"city": "Oslo"}]
