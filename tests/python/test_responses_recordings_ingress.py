"""Issue 11, "every OpenAI and Anthropic recording replays through each ingress dialect": the
OpenAI recordings of the Responses API (vercel-ai `openai/src/responses`, hosted tools,
reasoning and xAI's Responses answers included; test_fixture_sdk_types.py excludes them, being
no Chat Completions), read by the `openai_responses` dialect and rendered as Anthropic Messages
and as Responses again, through the unified form, with the same checks as
test_messages_sdk_types.py and test_responses_fixture_sdk_types.py (their functions run here on
these cases): the official SDKs' types, and text, reasoning, function calls, usage, finish and
model compared with what a small reader here takes from the recording (the Responses API
reference and docs/providers.md's decoding rules: a reasoning item's text is its content, else
its summary; hosted tools' items ran at OpenAI and have no unified counterpart).

Multi-step files (a response.created after a response.completed) are replayed one response at
a time. Not answers, each checked for what it is: the two error bodies raise modeenvoy.Error;
the one stream ending in an `error` + `response.failed` ends in the target's error event with
the provider's message (the `error` event nests its fields); the
hand-edited `parallel-tool-call-wrapper.1.chunks.txt` (unbalanced braces) raises. Where the
fixtures are absent every test here skips; none passes.
"""

from __future__ import annotations

import json
from typing import Dict, List

import pytest

from conftest import require_module

modeenvoy = require_module("modeenvoy")

import test_fixture_sdk_types as base  # noqa: E402
import test_messages_sdk_types as messages_t  # noqa: E402
import test_responses_fixture_sdk_types as responses_t  # noqa: E402

DIR = base.VERCEL + "openai/src/responses/__fixtures__/"
ERROR_BODIES = {"openai-error.1.json", "reasoning-model-temperature-error.json"}
ERROR_STREAMS = {"openai-error.1.chunks.txt"}  # error + response.failed after the start
BROKEN_STREAMS = {"parallel-tool-call-wrapper.1.chunks.txt"}  # hand-edited, invalid JSON


def _finish(status: str, incomplete: dict, calls: list) -> str:
    if status == "incomplete":
        reason = (incomplete or {}).get("reason")
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if calls else "stop"


def _usage(u) -> object:
    if not u:
        return None
    return (u["input_tokens"], u["output_tokens"], u["total_tokens"])


def _body_facts(obj: dict) -> base.Facts:
    f = base.Facts(model=obj.get("model"))
    for item in obj.get("output") or []:
        if item["type"] == "message":
            for part in item.get("content") or []:
                if part["type"] == "output_text":
                    f.text += part["text"]
                elif part["type"] == "refusal":
                    f.text += part["refusal"]
        elif item["type"] == "function_call":
            f.calls.append(base.Call(item["name"], item.get("arguments") or ""))
        elif item["type"] == "reasoning":
            content = "".join(c.get("text", "") for c in item.get("content") or [])
            f.reasoning += content or "".join(s.get("text", "") for s in item.get("summary") or [])
    f.finish = _finish(obj.get("status"), obj.get("incomplete_details"), f.calls)
    f.usage = _usage(obj.get("usage"))
    return f


def _stream_facts(events: List[dict]) -> base.Facts:
    f = base.Facts()
    calls: Dict[str, base.Call] = {}
    for e in events:
        t = e["type"]
        if t in ("response.output_text.delta", "response.refusal.delta"):
            f.text += e["delta"]
        elif t in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
            f.reasoning += e["delta"]
        elif t == "response.output_item.added" and e["item"]["type"] == "function_call":
            calls[e["item"]["id"]] = base.Call(e["item"]["name"], "", streamed=True)
            f.calls.append(calls[e["item"]["id"]])
        elif t == "response.function_call_arguments.delta":
            calls[e["item_id"]].arguments += e["delta"]
        elif t in ("response.completed", "response.incomplete"):
            r = e["response"]
            f.model = r.get("model")
            f.usage = _usage(r.get("usage"))
            f.finish = _finish(r["status"], r.get("incomplete_details"), f.calls)
    return f


def _steps(rel: str):
    """Some files hold the streams of several steps one after another (a response.created
    after a response.completed): each is its own response, as (reads, facts)."""
    groups: List[List[str]] = []
    for line in base._lines(base.ROOT / rel):
        if json.loads(line)["type"] == "response.created" or not groups:
            groups.append([])
        groups[-1].append(line)
    return [([base._sse(g, named=True, done=False)], _stream_facts([json.loads(x) for x in g]))
            for g in groups]


def _cases(kind: str) -> list:
    if not base._HAVE_FIXTURES:
        return [pytest.param(None, marks=base._SKIP, id="no-fixtures")]
    out = []
    for path in sorted((base.ROOT / DIR).iterdir()):
        rel, name = DIR + path.name, path.name
        if name.endswith(".json"):
            k = "error_body" if name in ERROR_BODIES else "body"
            case = base.Case(rel, (rel,), "openai_responses", k,
                             facts=lambda rel=rel: _body_facts(base._json(rel)))
        elif name in BROKEN_STREAMS:
            case = base.Case(rel, (rel,), "openai_responses", "broken_stream",
                             # unnamed events: the broken line has no readable "type"
                             reads=lambda rel=rel: [base._sse(base._lines(base.ROOT / rel),
                                                              named=False, done=False)])
        else:
            k = "error_stream" if name in ERROR_STREAMS else "stream"
            case = base.Case(rel, (rel,), "openai_responses", k,
                             reads=lambda rel=rel: [base._sse(base._lines(base.ROOT / rel),
                                                              named=True, done=False)],
                             messages=lambda rel=rel: _steps(rel))
        if case.kind == kind:
            out.append(pytest.param(case, id=rel))
    return out


def test_every_responses_recording_is_a_case():
    if not base._HAVE_FIXTURES:
        pytest.skip(f"provider fixtures not found at {base.ROOT}")
    files = sorted(p.name for p in (base.ROOT / DIR).iterdir())
    cased = [c.values[0].id.rsplit("/", 1)[-1] for kind in
             ("body", "stream", "error_body", "error_stream", "broken_stream")
             for c in _cases(kind)]
    assert sorted(cased) == files
    assert ERROR_BODIES | ERROR_STREAMS | BROKEN_STREAMS <= set(files)  # the lists are not stale


@pytest.mark.parametrize("case", _cases("body"))
def test_whole_answer_as_messages(case):
    got, want = messages_t._replay_body(case)
    messages_t._check(got, want)


@pytest.mark.parametrize("case", _cases("body"))
def test_whole_answer_as_responses(case):
    responses_t.test_whole_answer_is_a_valid_response_saying_what_the_recording_says(case)


@pytest.mark.parametrize("case", _cases("stream"))
def test_stream_as_messages(case):
    for got, want, _ in messages_t._replay_stream(case):
        messages_t._check(got, want)


@pytest.mark.parametrize("case", _cases("stream"))
def test_stream_as_responses(case):
    responses_t.test_stream_is_valid_response_events_saying_what_the_recording_says(case)


@pytest.mark.parametrize("case", _cases("error_body"))
@pytest.mark.parametrize("target", ["anthropic", "openai_responses"])
def test_error_body_raises(case, target):
    with pytest.raises(modeenvoy.Error):
        modeenvoy.translate_response(base._read(case.id), "openai_responses", target)


def _error_ends(case) -> tuple:
    """(Messages' error event, Responses' response.failed error) of the stream, after the
    checks that hold: each ends the stream, no message_stop / response.completed."""
    t = modeenvoy.StreamTranslator("openai_responses", "anthropic")
    events = messages_t._events(t.feed(case.reads()[0]) + t.finish())
    assert events[0][0] == "message_start" and events[-1][0] == "error"
    assert "message_stop" not in [name for name, _ in events]
    t = modeenvoy.StreamTranslator("openai_responses", "openai_responses")
    r_events = responses_t._events(t.feed(case.reads()[0]) + t.finish())
    assert r_events[-1][0] == "response.failed"
    assert "response.completed" not in [name for name, _ in r_events]
    return events[-1][1]["error"], json.loads(r_events[-1][1])["response"]["error"]


# The recorded `error` event nests its fields ({"type":"error","error":{"type","code",
# "message","param"}}); the decoder reads them there when they are not at the top level.
@pytest.mark.parametrize("case", _cases("error_stream"))
def test_stream_failing_after_its_start_ends_in_the_targets_error_event(case):
    want = json.loads(base._lines(base.ROOT / case.id)[2])["error"]["message"]
    messages_error, responses_error = _error_ends(case)
    assert messages_error["message"] == want
    assert responses_error["message"] == want


@pytest.mark.parametrize("case", _cases("broken_stream"))
@pytest.mark.parametrize("target", ["anthropic", "openai_responses"])
def test_broken_stream_raises(case, target):
    t = modeenvoy.StreamTranslator("openai_responses", target)
    with pytest.raises(modeenvoy.Error) as err:
        t.feed(case.reads()[0])
        t.finish()
    assert err.value.status_code == 502
