"""Tests of modeenvoy's Python protocol API (bindings/python/modeenvoy/protocol.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from conftest import require_module, shared_data_dir

modeenvoy = require_module("modeenvoy")

MINIMAL = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
FIXTURES = shared_data_dir() / "provider-fixtures"


def body(**extra) -> str:
    return json.dumps({**MINIMAL, **extra})


def test_parses_str_bytes_and_buffers():
    for data in (body(), body().encode(), bytearray(body().encode()),
                 memoryview(body().encode())):
        req = modeenvoy.parse_chat_request(data)
        assert req.model == "gpt-4o"
        assert req.stream is None
        assert req.messages == [{"role": "user", "content": "hi"}]
        assert len(req) == 1
        assert req.roles == ["user"]


def test_rejects_other_types():
    with pytest.raises(TypeError):
        modeenvoy.parse_chat_request(42)


def test_errors_carry_code_status_and_param():
    bad = json.dumps({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "foo"}]}]})
    with pytest.raises(modeenvoy.Error) as info:
        modeenvoy.parse_chat_request(bad)
    err = info.value
    assert err.message == 'messages[0].content[1].type: unknown content part type "foo"'
    assert err.code == "INVALID_ARGUMENT"
    assert err.status_code == 400
    assert err.param == "messages[0].content[1].type"


@pytest.mark.parametrize("extra, message", [
    ({"temperature": 3.5}, "temperature: must be between 0 and 2, got 3.5"),
    ({"max_tokens": "x"}, "max_tokens: expected integer, got string"),
    ({"n": 0}, "n: must be >= 1, got 0"),
    ({"tool_choice": "auto"}, "tool_choice: only allowed when tools are specified"),
])
def test_validation_messages(extra, message):
    with pytest.raises(modeenvoy.Error, match="^" + message.replace("(", r"\(") + "$"):
        modeenvoy.parse_chat_request(body(**extra))


def test_invalid_json_names_the_byte():
    with pytest.raises(modeenvoy.Error) as info:
        modeenvoy.parse_chat_request('{"model": "m",}')
    assert info.value.message == (
        "body: invalid JSON at byte 14: expected a member name in double quotes")
    assert info.value.param == "body"


def test_validation_can_be_deferred():
    req = modeenvoy.parse_chat_request('{"messages":[{"role":"user","content":"x"}]}',
                                       validate=False)
    with pytest.raises(modeenvoy.Error, match="model"):
        req.validate()
    req.model = "gpt-4o-mini"
    req.validate()
    assert req.to_dict()["model"] == "gpt-4o-mini"


def test_unknown_fields_pass_through_every_level():
    data = {
        "model": "m", "x_top": {"k": [1, 2.5, None, True]},
        "messages": [{"role": "user", "x_msg": 1,
                      "content": [{"type": "text", "text": "t", "cache_control": {"type": "ephemeral"}}]}],
        "tools": [{"type": "function", "x_tool": "t", "function": {"name": "f", "x_fn": False}}],
    }
    req = modeenvoy.ChatRequest.from_dict(data)
    assert req.to_dict() == data
    assert req["x_top"] == {"k": [1, 2.5, None, True]}
    assert req.get("missing", 7) == 7


def test_round_trip_is_stable():
    req = modeenvoy.parse_chat_request(body(temperature=0.7, stop=["\n"], stream=True,
                                            stream_options={"include_usage": True}))
    again = modeenvoy.parse_chat_request(req.to_bytes())
    assert again == req
    assert again.to_json() == req.to_json()
    assert req.to_bytes() == req.to_json().encode()


def test_stream_and_messages_setters():
    req = modeenvoy.parse_chat_request(body())
    req.stream = True
    assert req.stream is True
    assert '"stream":true' in req.to_json()
    req.stream = None
    assert "stream" not in req.to_dict()
    req.messages = [{"role": "system", "content": "be brief"}, *req.messages]
    assert req.roles == ["system", "user"]
    req.validate()
    copy = req.copy()
    copy.model = "other"
    assert req.model == "gpt-4o"


def test_from_dict_rejects_non_json_values():
    with pytest.raises(modeenvoy.Error) as info:
        modeenvoy.ChatRequest.from_dict({**MINIMAL, "temperature": float("nan")})
    assert info.value.param == "body"
    with pytest.raises(modeenvoy.Error):
        modeenvoy.ChatRequest.from_dict({**MINIMAL, "x": object()})


def test_validate_chat_request_accepts_all_forms():
    modeenvoy.validate_chat_request(MINIMAL)
    modeenvoy.validate_chat_request(body())
    modeenvoy.validate_chat_request(modeenvoy.parse_chat_request(body()))
    with pytest.raises(modeenvoy.Error):
        modeenvoy.validate_chat_request({"model": "m", "messages": []})


def test_non_ascii_and_escapes():
    text = 'caf\u00e9 \u65e5\u672c \U0001F600 "q" \\ \n\t\x01'
    req = modeenvoy.ChatRequest.from_dict({"model": "m", "messages": [{"role": "user", "content": text}]})
    assert req.messages[0]["content"] == text
    with pytest.raises(modeenvoy.Error):
        modeenvoy.parse_chat_request('{"model":"\ud800","messages":[]}')


def test_parse_chat_completion_and_chunk():
    completion = modeenvoy.parse_chat_completion(json.dumps({
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                     "finish_reason": "stop", "x_choice": 1}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}))
    assert completion["choices"][0]["message"]["content"] == "hi"
    assert completion["choices"][0]["x_choice"] == 1
    assert completion["choices"][0]["logprobs"] is None
    chunk = modeenvoy.parse_chat_completion_chunk(
        b'{"id":"c","choices":[{"index":0,"delta":{"content":"x"}}],"obfuscation":"z"}')
    assert chunk["choices"][0]["delta"] == {"content": "x"}
    assert chunk["choices"][0]["finish_reason"] is None
    assert chunk["obfuscation"] == "z"
    with pytest.raises(modeenvoy.Error) as info:
        modeenvoy.parse_chat_completion_chunk('{"choices":[{"delta":{"role":"robot"}}]}')
    assert info.value.param == "choices[0].delta.role"


def test_sse_parser_handles_any_split():
    stream = b"".join(modeenvoy.encode_sse_event(json.dumps({"i": i})) for i in range(20))
    stream += modeenvoy.SSE_DONE
    stream = stream.replace(b"\n", b"\r\n")
    for size in (1, 2, 3, 7, 64, len(stream)):
        parser = modeenvoy.SseParser()
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        events = list(parser.iter(chunks))
        assert [e.data for e in events] == [json.dumps({"i": i}) for i in range(20)] + ["[DONE]"]
        assert events[-1].data == modeenvoy.SSE_DONE_DATA


def test_sse_event_fields_and_limit():
    wire = modeenvoy.encode_sse_event("a\nb", "update", id="7", retry=1000)
    assert wire == b"event: update\nid: 7\nretry: 1000\ndata: a\ndata: b\n\n"
    parser = modeenvoy.SseParser()
    assert parser.feed(wire) == [modeenvoy.SseEvent("update", "a\nb", "7", 1000)]
    assert parser.last_event_id == "7"
    assert parser.retry == 1000
    small = modeenvoy.SseParser(max_event_bytes=8)
    with pytest.raises(modeenvoy.Error) as info:
        small.feed(b"data: 0123456789\n\n")
    assert info.value.code == "RESOURCE_EXHAUSTED"
    with pytest.raises(ValueError):
        modeenvoy.encode_sse_event("x", "bad\nevent")


@pytest.mark.parametrize("status, body, code, message, param", [
    (400, {"error": {"message": "Unsupported parameter: 'max_tokens'", "type": "invalid_request_error",
                     "param": "max_tokens", "code": "unsupported_parameter"}},
     "INVALID_ARGUMENT", "Unsupported parameter: 'max_tokens'", "max_tokens"),
    (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
     "RESOURCE_EXHAUSTED", "slow down", None),
    (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
     "UNAVAILABLE", "Overloaded", None),
    (503, "<html>Service Unavailable</html>", "UNAVAILABLE", "<html>Service Unavailable</html>", None),
])
def test_upstream_errors(status, body, code, message, param):
    raw = body if isinstance(body, str) else json.dumps(body)
    err = modeenvoy.upstream_error(status, raw)
    assert isinstance(err, modeenvoy.Error)
    assert (err.code, err.status_code, err.message, err.param) == (code, status, message, param)
    out = json.loads(modeenvoy.openai_error_body(err))
    assert out["error"]["message"] == message
    assert out["error"]["param"] == param


def test_openai_error_body_for_a_parse_error():
    with pytest.raises(modeenvoy.Error) as info:
        modeenvoy.parse_chat_request(body(top_p=2))
    out = json.loads(modeenvoy.openai_error_body(info.value))
    assert out == {"error": {"message": "top_p: must be between 0 and 1, got 2",
                             "type": "invalid_request_error", "param": "top_p", "code": None}}
    quota = modeenvoy.upstream_error(429, json.dumps({"error": {
        "message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}}))
    assert quota.error_code == "insufficient_quota"
    assert json.loads(modeenvoy.openai_error_body(quota))["error"]["type"] == "insufficient_quota"


def test_parsing_from_several_threads():
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 200_000}] * 20})
    results = []
    threads = [threading.Thread(target=lambda: results.append(len(modeenvoy.parse_chat_request(big))))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [20] * 4


def fixture_files(pattern: str):
    base = FIXTURES / "kong/spec/fixtures/ai-proxy"
    return sorted(base.glob(pattern)) if base.is_dir() else []


@pytest.mark.parametrize("path", fixture_files("openai/llm-v1-chat/requests/*.json"),
                         ids=lambda p: p.name)
def test_kong_openai_requests_round_trip(path: Path):
    raw = path.read_bytes()
    req = modeenvoy.parse_chat_request(raw, validate=False)
    original = json.loads(raw)
    written = req.to_dict()
    for key, value in original.items():
        assert written[key] == value
    assert modeenvoy.parse_chat_request(req.to_bytes(), validate=False) == req


def test_exports():
    for name in modeenvoy.protocol.__all__:
        assert getattr(modeenvoy, name) is getattr(modeenvoy.protocol, name)
