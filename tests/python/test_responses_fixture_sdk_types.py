"""Issue 11, Responses half: every OpenAI, Azure OpenAI and Anthropic recording in the fixture
tree (the cases test_fixture_sdk_types.py classifies as "openai" / "azure_openai" / "anthropic"
bodies and streams: vercel-ai's and Kong's), rendered as the Responses API by
modeenvoy.translate_response(..., "openai_responses") and modeenvoy.StreamTranslator(<dialect>,
"openai_responses") (through the unified form, as POST /v1/responses answers), is read by the
official openai SDK's types (openai.types.responses.Response, ResponseStreamEvent through a
pydantic TypeAdapter) and says what the recording says: the message text, the reasoning text,
the function calls and their arguments, the usage totals, and `status` (incomplete exactly when
the recording stopped for length or content filter, Anthropic's refusal included).

Streams: the event names match their `type`, `sequence_number`s count up from 0 without gaps,
the sequence opens with response.created then response.in_progress and closes with
response.completed or response.incomplete, every delta belongs to an item that was added and
not yet done, and the output of the closing response equals the items announced by
response.output_item.done. Multi-step Anthropic recordings (several responses in one file) are
replayed one response at a time.

Error recordings raise modeenvoy.Error, and so do the two deliberately broken Anthropic streams
(never an answer). A stream's model is the recording's, Azure's included (its blank first
chunk, the prompt-filter chunk, does not start the response). Where the fixtures are absent
every test here skips; none passes.
"""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Tuple

import pytest

from conftest import require_module

modeenvoy = require_module("modeenvoy")
responses_types = require_module("openai.types.responses")
pydantic = require_module("pydantic")

import test_fixture_sdk_types as base  # noqa: E402  (the shared fixture classification)

_EVENT = pydantic.TypeAdapter(responses_types.ResponseStreamEvent)
_DIALECTS = {"openai", "azure_openai", "anthropic"}

def _params(kind: str):
    if not base._HAVE_FIXTURES:
        return [pytest.param(None, marks=base._SKIP, id="no-fixtures")]
    return [pytest.param(c, id=f"{c.dialect}:{c.id}") for c in base.CASES
            if c.kind == kind and c.dialect in _DIALECTS]


def _status_for(finish: Optional[str]) -> str:
    return "incomplete" if finish in ("length", "content_filter") else "completed"


def _facts_of_output(output) -> Tuple[str, List[Tuple[str, str]]]:
    text, calls = "", []
    for item in output:
        if item.type == "message":
            for part in item.content:
                if part.type == "output_text":
                    text += part.text
        elif item.type == "function_call":
            calls.append((item.name, item.arguments))
    return text, calls


def _reasoning_of_output(output) -> str:
    return "".join(c.text for item in output if item.type == "reasoning"
                   for c in item.content or [])


def _usage(u) -> Optional[Tuple[int, int, int]]:
    return None if u is None else (u.input_tokens, u.output_tokens, u.total_tokens)


def _check(case, text, reasoning, calls, usage, status, want) -> None:
    assert text == want.text
    assert reasoning == want.reasoning
    assert [n for n, _ in calls] == [c.name for c in want.calls]
    for (_, got), w in zip(calls, want.calls):
        assert base._args_equal(got, w.arguments), (got, w.arguments)
    assert status == _status_for(want.finish)
    if want.usage is None:
        assert usage in (None, (0, 0, 0))
    else:
        assert usage == want.usage


@pytest.mark.parametrize("case", _params("body"))
def test_whole_answer_is_a_valid_response_saying_what_the_recording_says(case):
    out = modeenvoy.translate_response(base._read(case.id), case.dialect, "openai_responses",
                                       source_options=case.options)
    parsed = responses_types.Response.model_validate_json(json.dumps(out))
    assert parsed.object == "response"
    assert parsed.id.startswith("resp_")
    text, calls = _facts_of_output(parsed.output)
    want = case.facts()
    _check(case, text, _reasoning_of_output(parsed.output), calls, _usage(parsed.usage),
           parsed.status, want)
    if want.model is not None:
        assert parsed.model == want.model


def _events(out: bytes) -> List[Tuple[str, str]]:
    """(event name, data) of each SSE event."""
    assert out.endswith(b"\n\n")
    events = []
    for block in out.decode("utf-8").split("\n\n")[:-1]:
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data = line[len("data: "):]
        assert name is not None and data is not None, block
        events.append((name, data))
    return events


def _run(case, pieces: List[bytes]) -> bytes:
    t = modeenvoy.StreamTranslator(case.dialect, "openai_responses", source_options=case.options)
    out = b""
    for piece in pieces:
        out += t.feed(piece)
    return out + t.finish()


@pytest.mark.parametrize("case", _params("stream"))
def test_stream_is_valid_response_events_saying_what_the_recording_says(case):
    messages = case.messages() if case.messages else [(case.reads(), case.facts())]
    for reads, want in messages:
        whole = b"".join(reads)
        out = _run(case, reads)
        # Any split of the input gives the same bytes.
        assert _run(case, [whole]) == out
        assert _run(case, [whole[i:i + 7] for i in range(0, len(whole), 7)]) == out

        events = [(_EVENT.validate_json(data), name) for name, data in _events(out)]
        for i, (e, name) in enumerate(events):
            assert e.type == name
            assert e.sequence_number == i
        types = [e.type for e, _ in events]
        assert types[:2] == ["response.created", "response.in_progress"]
        assert types[-1] in ("response.completed", "response.incomplete")
        assert all(t not in ("response.completed", "response.incomplete") for t in types[:-1])

        open_items: Dict[str, int] = {}   # item id -> output_index
        done_items = []
        text, reasoning, args = "", "", {}
        for e, _ in events[2:-1]:
            if e.type == "response.output_item.added":
                assert e.item.id not in open_items
                open_items[e.item.id] = e.output_index
            elif e.type == "response.output_item.done":
                assert open_items.pop(e.item.id) == e.output_index
                done_items.append((e.output_index, e.item))
            elif hasattr(e, "item_id"):
                assert open_items.get(e.item_id) == e.output_index, e.type
                if e.type == "response.output_text.delta":
                    text += e.delta
                elif e.type == "response.reasoning_text.delta":
                    reasoning += e.delta
                elif e.type == "response.function_call_arguments.delta":
                    args[e.item_id] = args.get(e.item_id, "") + e.delta
        assert open_items == {}, "items never done"
        final = events[-1][0].response
        assert [i.id for i in final.output] == [i.id for _, i in sorted(done_items,
                                                                        key=lambda x: x[0])]
        f_text, f_calls = _facts_of_output(final.output)
        assert f_text == text
        assert _reasoning_of_output(final.output) == reasoning
        for item in final.output:
            if item.type == "function_call":
                assert item.arguments == args.get(item.id, "")
        _check(case, text, reasoning, f_calls, _usage(final.usage), final.status, want)
        if want.model is not None:
            assert final.model == want.model


@pytest.mark.parametrize("case", _params("error_body"))
def test_error_recording_raises(case):
    with pytest.raises(modeenvoy.Error) as err:
        modeenvoy.translate_response(base._read(case.id), case.dialect, "openai_responses",
                                     source_options=case.options)
    assert err.value.status_code >= 400


@pytest.mark.parametrize("case", _params("broken_stream"))
def test_broken_stream_raises_and_never_completes(case):
    """anthropic's duplicate-message-start / spliced-message-start (deliberately broken): an
    error (502), and no response.completed in what came out before it."""
    t = modeenvoy.StreamTranslator(case.dialect, "openai_responses", source_options=case.options)
    out = b""
    with pytest.raises(modeenvoy.Error) as err:
        for piece in case.reads():
            out += t.feed(piece)
        out += t.finish()
    assert err.value.status_code == 502
    assert b"response.completed" not in out + err.value.partial_output


# ---------------------------------------------------------------------------------------
# The name works as source and target of translate_request too (values from the API
# references: a Responses request's items, the Chat Completions and Messages requests).

def test_translate_request_from_and_to_responses():
    body = {"model": "gpt-4.1", "instructions": "Be brief.", "max_output_tokens": 100,
            "input": [{"role": "user", "content": "Weather in Paris?"},
                      {"type": "function_call", "call_id": "call_1", "name": "weather",
                       "arguments": "{\"city\":\"Paris\"}"},
                      {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}],
            "tools": [{"type": "function", "name": "weather",
                       "parameters": {"type": "object"}}]}
    chat = modeenvoy.translate_request(body, "openai_responses", "openai")
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}]
    assert chat["max_completion_tokens"] == 100
    assert chat["tools"] == [{"type": "function", "function": {
        "name": "weather", "parameters": {"type": "object"}}}]

    messages = modeenvoy.translate_request(body, "openai_responses", "anthropic")
    assert messages["system"] == "Be brief." or messages["system"][0]["text"] == "Be brief."
    assert messages["max_tokens"] == 100
    assert messages["messages"][1]["content"][0]["type"] == "tool_use"
    assert messages["messages"][2]["content"][0] == {"type": "tool_result",
                                                     "tool_use_id": "call_1", "content": "sunny"}

    back = modeenvoy.translate_request(chat, "openai", "openai_responses")
    assert back["input"] == [
        {"type": "message", "role": "system", "content": "Be brief."},
        {"type": "message", "role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "weather",
         "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]
    assert back["max_output_tokens"] == 100
    assert back["tools"] == [{"type": "function", "name": "weather",
                              "parameters": {"type": "object"}}]


def test_bad_responses_request_names_the_field():
    with pytest.raises(modeenvoy.Error) as err:
        modeenvoy.translate_request({"model": "m", "input": [{"type": "nope"}]},
                                    "openai_responses", "openai")
    assert err.value.status_code == 400
    assert "input[0].type" in err.value.message
