"""modeenvoy.translate_request / translate_response / StreamTranslator (issue 9's Python
interface), over every dialect the build has. Outputs that claim to be OpenAI's are checked
with the official openai SDK's types."""

from __future__ import annotations

import json

import pytest

from conftest import require_module

modeenvoy = require_module("modeenvoy")
openai_types = require_module("openai.types.chat")

REQUEST = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ],
    "temperature": 0.5,
    "max_tokens": 64,
    "stop": ["END"],
}

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Sunny."},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
}


def test_dialect_names_start_with_openai():
    names = modeenvoy.dialect_names()
    assert names[0] == "openai"
    assert len(names) == len(set(names))


def test_openai_to_openai_request_keeps_unknown_fields_and_sets_the_model():
    body = dict(REQUEST, top_k=3)
    out = modeenvoy.translate_request(json.dumps(body).encode(), "openai", "openai",
                                      model="gpt-x")
    assert out["model"] == "gpt-x"
    assert out["top_k"] == 3
    assert out["messages"] == REQUEST["messages"]


def test_bad_request_raises_with_the_field_path():
    with pytest.raises(modeenvoy.Error) as err:
        modeenvoy.translate_request({"model": "m", "messages": [{"role": "bot"}]}, "openai",
                                    "openai")
    assert err.value.param == "messages[0].role"
    assert err.value.status_code == 400


def test_unknown_dialect_and_unknown_option_raise():
    with pytest.raises(modeenvoy.Error) as err:
        modeenvoy.translate_request(REQUEST, "openai", "nosuch")
    assert err.value.code == "NOT_FOUND"
    with pytest.raises(modeenvoy.Error) as err:
        modeenvoy.translate_request(REQUEST, "openai", "openai", target_options={"bogus": 1})
    assert "bogus" in err.value.message


@pytest.mark.parametrize("target", modeenvoy.dialect_names())
def test_every_dialect_round_trips_a_plain_answer(target):
    """unified -> target -> unified keeps the text, finish reason and usage counts."""
    native = modeenvoy.translate_response(COMPLETION, "openai", target)
    back = modeenvoy.translate_response(native, target, "openai")
    parsed = openai_types.ChatCompletion.model_validate(back)
    assert parsed.choices[0].message.content == "Sunny."
    assert parsed.choices[0].finish_reason == "stop"
    if target != "kserve":  # the v2 protocol reports no token counts
        assert parsed.usage.prompt_tokens == 12
        assert parsed.usage.completion_tokens == 2


@pytest.mark.parametrize("target", modeenvoy.dialect_names())
def test_every_dialect_encodes_a_plain_request(target):
    # Options a dialect cannot do without (vertex addresses a model through its project).
    required = {"vertex": {"project": "p"}}.get(target)
    request = REQUEST
    if target == "openai_responses":  # the Responses API has no stop sequences
        with pytest.raises(modeenvoy.Error) as err:
            modeenvoy.translate_request(REQUEST, "openai", target, model="m1")
        assert err.value.param == "stop" and err.value.status_code == 400
        request = {k: v for k, v in REQUEST.items() if k != "stop"}
    out = modeenvoy.translate_request(request, "openai", target, model="m1",
                                      target_options=required)
    assert isinstance(out, dict) and out


def _openai_stream(texts, usage=True):
    events = []
    for i, text in enumerate(texts):
        events.append({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                       "model": "m", "choices": [{"index": 0, "delta": (
                           {"role": "assistant", "content": text} if i == 0 else
                           {"content": text}), "finish_reason": None}]})
    events.append({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        events.append({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                       "model": "m", "choices": [],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 3,
                                 "total_tokens": 8}})
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return body + b"data: [DONE]\n\n"


def _chunks_of(sse: bytes):
    parser = modeenvoy.SseParser()
    out = []
    for event in list(parser.feed(sse)) + list(parser.finish()):
        if event.data == modeenvoy.SSE_DONE_DATA:
            out.append(None)
            continue
        out.append(openai_types.ChatCompletionChunk.model_validate_json(event.data))
    return out


@pytest.mark.parametrize("target", modeenvoy.dialect_names())
def test_every_dialect_streams_back_to_openai_under_any_split(target):
    """openai stream -> target stream -> openai stream: same text whatever the reads."""
    source = _openai_stream(["Hel", "lo ", "wörld"])
    there = modeenvoy.StreamTranslator("openai", target)
    native = there.feed(source) + there.finish()
    outputs = []
    for step in (len(native), 1, 7):
        back = modeenvoy.StreamTranslator(target, "openai")
        out = b"".join(back.feed(native[i:i + step]) for i in range(0, len(native), step))
        outputs.append(out + back.finish())
    assert outputs[0] == outputs[1] == outputs[2]
    chunks = _chunks_of(outputs[0])
    assert chunks[-1] is None  # [DONE]
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1] if c and c.choices)
    assert text == "Hello wörld"


def test_stream_provider_error_becomes_the_targets_error_event_and_ends_the_stream():
    t = modeenvoy.StreamTranslator("openai", "openai")
    out = t.feed(b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n')
    assert out.startswith(b"data: ") and out.endswith(b"\n\n")
    error = json.loads(out[len(b"data: "):])["error"]
    assert error["message"] == "overloaded" and error["type"] == "server_error"
    assert t.finish() == b""  # the stream has ended: no [DONE] after an error


def test_malformed_stream_raises():
    t = modeenvoy.StreamTranslator("openai", "openai")
    with pytest.raises(modeenvoy.Error):
        t.feed(b"data: {not json}\n\n")


def _fed(source: str, pieces) -> tuple:
    """(output, error) of a StreamTranslator(source, "openai") fed `pieces` then finished;
    a raising call's partial_output counts as its output."""
    t = modeenvoy.StreamTranslator(source, "openai")
    out = b""
    try:
        for piece in pieces:
            out += t.feed(piece)
        out += t.finish()
    except modeenvoy.Error as err:
        return out + err.partial_output, err.message
    return out, None


def test_a_failing_feed_gives_what_came_before_the_bad_frame_as_partial_output():
    good = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n')
    body = good + b"data: {not json}\n\n"
    whole, error = _fed("openai", [body])
    assert error is not None
    # What the good event gives on its own, and it says what the event said.
    assert whole == modeenvoy.StreamTranslator("openai", "openai").feed(good)
    chunks = _chunks_of(whole)
    assert len(chunks) == 1 and chunks[0].choices[0].delta.content == "hi"
    assert _fed("openai", [body[i:i + 1] for i in range(len(body))]) == (whole, error)
    assert modeenvoy.Error("x").partial_output == b""  # the default elsewhere


def test_a_framing_error_keeps_the_frames_completed_before_it():
    # A Bedrock EventStream whose last message has a broken CRC: the messages before it
    # come out (in partial_output when they arrive in the failing call).
    there = modeenvoy.StreamTranslator("openai", "bedrock")
    native = bytearray(there.feed(_openai_stream(["Hel", "lo"])) + there.finish())
    native[-5] ^= 0xFF  # inside the last message's payload: its message CRC no longer holds
    native = bytes(native)
    whole, error = _fed("bedrock", [native])
    assert error is not None and "crc" in error.lower()
    assert b'"content":"Hel"' in whole and b'"content":"lo"' in whole
    assert _fed("bedrock", [native[i:i + 1] for i in range(len(native))]) == (whole, error)
    assert _fed("bedrock", [native[:40], native[40:]]) == (whole, error)


@pytest.mark.parametrize("source", modeenvoy.dialect_names())
def test_an_unreadable_answer_is_the_upstreams_failure(source):
    """A 2xx body no dialect can read as an answer raises with the gateway's 502
    bad_upstream_response (the upstream failed), never a 400 that blames the request."""
    with pytest.raises(modeenvoy.Error) as err:
        modeenvoy.translate_response(b"<html>upstream proxy says hello</html>", source, "openai")
    assert err.value.status_code == 502
    assert err.value.code == "UNAVAILABLE"
