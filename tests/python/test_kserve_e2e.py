"""End to end for the kserve provider type: official openai SDK -> modeenvoy-gateway ->
emulated Triton/KServe server (the emulator's kserve dialect, written apart from the gateway's
translator), over loopback, in both protocols: Open Inference Protocol v2 infer (whole answers)
and Triton's generate extension (generate and generate_stream).

The emulated model reads the last user turn of the rendered prompt, so the echo checks that
the chat went through the prompt template and back.
"""

from __future__ import annotations

import json

import pytest

from conftest import (emulator_requests, openai_client, require_module, start_emulator,
                      start_gateway)

openai = require_module("openai")


def gateway_config(emulator_url: str) -> dict:
    return {
        "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
        "providers": {
            "triton-v2": {"type": "kserve", "base_url": emulator_url},
            "triton-gen": {"type": "kserve", "base_url": emulator_url, "protocol": "generate",
                           "prompt_template": "llama3"},
            "triton-429": {"type": "kserve", "base_url": emulator_url, "protocol": "generate",
                           "headers": {"x-emulator-status": "429",
                                       "x-emulator-retry-after": "7"}},
            # A model config the gateway's options get wrong: Triton refuses the datatype.
            "triton-int64": {"type": "kserve", "base_url": emulator_url,
                             "parameter_inputs": {"max_tokens": {"datatype": "INT64"}}},
        },
        "models": {
            "kv2": {"provider": "triton-v2", "upstream_model": "ensemble"},
            "kgen": {"provider": "triton-gen", "upstream_model": "ensemble"},
            "kbusy": {"provider": "triton-429", "upstream_model": "ensemble"},
            "kint64": {"provider": "triton-int64", "upstream_model": "ensemble"},
        },
    }


@pytest.fixture
def emulator(start_process):
    return start_emulator(start_process, "--usage-counter", "words")


@pytest.fixture
def gateway(start_process, emulator, tmp_path):
    return start_gateway(start_process, tmp_path, gateway_config(emulator.base_url))


@pytest.fixture
def client(gateway):
    return openai_client(gateway)


def upstream_requests(emulator) -> list[dict]:
    return emulator_requests(emulator, lambda target: target.startswith("/v2/"))


def test_v2_infer_whole_reply(client, emulator):
    resp = client.chat.completions.create(
        model="kv2", temperature=0.5, stop=["###"],
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Hello kserve world"}])
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.created == 0  # the protocol carries no time; the translator reads no clock
    (choice,) = resp.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello kserve world"
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None

    (sent,) = upstream_requests(emulator)
    assert sent["method"] == "POST"
    assert sent["target"] == "/v2/models/ensemble/infer"
    body = json.loads(sent["body"])
    inputs = {i["name"]: i for i in body["inputs"]}
    assert inputs["text_input"] == {
        "name": "text_input", "shape": [1], "datatype": "BYTES",
        "data": ["<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
                 "Hello kserve world<|im_end|>\n<|im_start|>assistant\n"]}
    assert inputs["max_tokens"]["datatype"] == "INT32"
    assert inputs["max_tokens"]["data"] == [512]  # the documented default
    assert inputs["temperature"]["datatype"] == "FP32"
    assert inputs["temperature"]["data"] == [0.5]
    assert inputs["stop_words"]["data"] == ["###"]
    assert body["outputs"] == [{"name": "text_output"}]


def test_generate_stream_chunk_by_chunk(client, emulator):
    stream = client.chat.completions.create(
        model="kgen", stream=True, max_tokens=40,
        messages=[{"role": "user", "content": "one two three four five"}])
    chunks = list(stream)
    assert len(chunks) == 6  # five words, then the finish chunk
    assert len({c.id for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five"
    finishes = [c.choices[0].finish_reason for c in chunks]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    assert all(c.usage is None for c in chunks)  # Triton reports no token counts here

    (sent,) = upstream_requests(emulator)
    assert sent["target"] == "/v2/models/ensemble/generate_stream"
    body = json.loads(sent["body"])
    assert body == {
        "text_input": "<|start_header_id|>user<|end_header_id|>\n\none two three four five"
                      "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "max_tokens": 40, "stream": True}


def test_generate_whole_reply(client, emulator):
    resp = client.chat.completions.create(
        model="kgen", messages=[{"role": "user", "content": "whole answer please"}])
    assert resp.choices[0].message.content == "whole answer please"
    assert upstream_requests(emulator)[-1]["target"] == "/v2/models/ensemble/generate"


def test_streaming_a_v2_model_is_refused_naming_stream(client, emulator):
    with pytest.raises(openai.BadRequestError) as err:
        list(client.chat.completions.create(
            model="kv2", stream=True, messages=[{"role": "user", "content": "x"}]))
    assert err.value.status_code == 400
    assert err.value.body["param"] == "stream"
    assert upstream_requests(emulator) == []


@pytest.mark.parametrize("kwargs, param", [
    ({"tools": [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]},
     "tools"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "r", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}},
     "response_format"),
    ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]},
     "messages[0].content[1].image_url"),
])
def test_what_the_protocol_cannot_carry_is_a_400_naming_the_field(client, emulator, kwargs,
                                                                   param):
    args = {"model": "kgen", "messages": [{"role": "user", "content": "x"}], **kwargs}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(**args)
    assert err.value.status_code == 400
    assert err.value.body["type"] == "invalid_request_error"
    assert err.value.body["param"] == param
    assert "not supported by kserve" in err.value.body["message"]
    assert upstream_requests(emulator) == []


def test_rate_limit_keeps_status_and_retry_after(client):
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="kbusy", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "7"
    body = err.value.response.json()
    assert body["error"]["message"] == "Exceeds maximum queue size"
    assert body["error"]["type"] == "rate_limit_error"


def test_triton_refusal_becomes_an_openai_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="kint64",
                                       messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 400
    assert err.value.body["message"] == (
        "[request id: <id_unknown>] unexpected datatype TYPE_INT64 for inference input "
        "'max_tokens', expecting TYPE_INT32")


def test_scripted_error_in_the_prompt(client):
    # The @emulator directive travels inside the rendered prompt's last user turn.
    script = {"error": {"status": 503, "message": "Server not ready", "retry_after": 3}}
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(
            model="kv2", messages=[{"role": "user", "content": "hi\n@emulator " + json.dumps(script)}])
    assert err.value.status_code == 503
    assert err.value.response.headers["retry-after"] == "3"
    assert err.value.response.json()["error"]["message"] == "Server not ready"


def test_mid_stream_error_reaches_the_sdk(client):
    script = {"interrupt": {"after_chunks": 2, "error": {"status": 500,
                                                         "message": "out of KV cache blocks"}}}
    stream = client.chat.completions.create(
        model="kgen", stream=True,
        messages=[{"role": "user", "content": "a b c d e\n@emulator " + json.dumps(script)}])
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            received.append(chunk)
    assert "out of KV cache blocks" in str(err.value)
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text == "a b"


def test_max_tokens_cuts_the_reply(client):
    resp = client.chat.completions.create(
        model="kv2", max_tokens=2, messages=[{"role": "user", "content": "a b c d e"}])
    assert resp.choices[0].message.content == "a b"
