"""Issue 11, "Proof on real recordings", Messages half: every OpenAI, Azure OpenAI and Anthropic
recording of the fixture tree (the cases test_fixture_sdk_types.py classifies as "openai",
"azure_openai" and "anthropic" answers: vercel-ai's and Kong's bodies and streams), rendered as
Anthropic Messages by the `anthropic` dialect's ingress side (what POST /v1/messages sends its
clients: modeenvoy.translate_response(..., <dialect>, "anthropic") and
StreamTranslator(<dialect>, "anthropic") run the same encoder, through the unified form), is
read by the official `anthropic` SDK's types and says what the recording says: text, thinking,
tool calls (names and inputs), stop reason, usage, id and model, read from the recording by the
readers of test_fixture_sdk_types.py (written from the providers' APIs, not from the C++ code).

Anthropic recordings replay here through the unified form, as they do for a Messages client
whose route falls back from an Anthropic provider to another; an Anthropic provider in front of
a Messages client is passed through natively (docs/providers.md, "Native pass-through").

SDK types: `anthropic.types.Message` / `RawMessageStreamEvent`; an answer holding blocks of a
beta feature (MCP, compaction, the advisor tool), which the GA types refuse, is read with the
beta surface's types (`anthropic.types.beta.BetaMessage` / `BetaRawMessageStreamEvent`, what
`client.beta.messages` returns), and only when the GA types refuse the recording's own blocks
too. A block the installed SDK cannot read in the recording itself (anthropic-fallback's
`fallback` blocks: the SDK's BetaFallbackBlock requires a `trigger` the recording does not
have) must come back exactly as recorded, and no other block may be unreadable; the rest of the
message is validated. `ping` events have no SDK type (the SDK's stream skips them) and are
checked by shape. Usage: Anthropic's has no total, so the prompt (cached tokens included) and
output counts are compared.

Streams: fed as recorded, whole and in 7-byte pieces, with identical output; event names match
their `type`; message_start first, message_stop last; every delta belongs to an open block.

Recordings that are errors raise modeenvoy.Error (the gateway answers those as errors); the two
deliberately broken Anthropic streams raise it too. Every check holds for every recording
(the encoder's gaps this file found, an OpenAI-family answer's reasoning and Azure's blank
first chunk, are fixed). Where the fixtures are absent every test here skips; none passes.
"""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Tuple

import pytest

from conftest import require_module

modeenvoy = require_module("modeenvoy")
anthropic_types = require_module("anthropic.types")
beta_types = require_module("anthropic.types.beta")
pydantic = require_module("pydantic")

import test_fixture_sdk_types as base  # noqa: E402  (the shared fixture classification)

_DIALECTS = ("openai", "azure_openai", "anthropic")

_GA_BLOCK = pydantic.TypeAdapter(anthropic_types.ContentBlock)
_BETA_BLOCK = pydantic.TypeAdapter(beta_types.BetaContentBlock)
_GA_CONTENT = pydantic.TypeAdapter(List[anthropic_types.ContentBlock])
_GA_EVENT = pydantic.TypeAdapter(anthropic_types.RawMessageStreamEvent)
_BETA_EVENT = pydantic.TypeAdapter(beta_types.BetaRawMessageStreamEvent)

# finish_reason -> stop_reason (docs/providers.md, "Anthropic Messages ingress", Answers).
_STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "content_filter": "refusal"}


def _params(kinds) -> list:
    if not base._HAVE_FIXTURES:
        return [pytest.param(None, marks=base._SKIP, id="no-fixtures")]
    return [pytest.param(c, id=f"{c.dialect}:{c.id}") for c in base.CASES
            if c.kind in kinds and c.dialect in _DIALECTS]


def test_openai_azure_and_anthropic_recordings_are_all_here():
    """Every recording of the three dialects is a case of one test below (the classification
    itself, and that no file of the tree is left out, is test_fixture_sdk_types.py's)."""
    if not base._HAVE_FIXTURES:
        pytest.skip(f"provider fixtures not found at {base.ROOT}")
    kinds = {(c.dialect, c.kind) for c in base.CASES if c.dialect in _DIALECTS}
    assert kinds <= {(d, k) for d in _DIALECTS
                     for k in ("body", "stream", "error_body", "broken_stream")}, kinds
    for d in _DIALECTS:
        assert (d, "body") in kinds
    assert ("openai", "stream") in kinds and ("anthropic", "stream") in kinds


# ---------------------------------------------------------------------------------------
# What the recording says beyond base.Facts: its id and Anthropic's raw stop reason.

def _recorded_id(payloads: List[dict]) -> Optional[str]:
    for p in payloads:
        if p.get("type") == "message_start":
            return p["message"].get("id")
        if p.get("id"):
            return p["id"]
    return None


def _recorded_stop_reason(case, want: base.Facts, body: Optional[dict] = None,
                          payloads: Tuple[dict, ...] = ()) -> str:
    """The stop_reason a Messages client should see. From an OpenAI-family answer: the finish
    reason mapped (docs/providers.md, "Anthropic Messages ingress", Answers). From Anthropic's:
    its own reason, where "stop_sequence" goes with the matched sequence, as the API sends them
    (Kong's hand-written bodies break the pairing: `end_turn` with `stop_sequence: "string"`,
    or `stop_sequence` with none; the documented rule decides, the sequence reported or not)."""
    if case.dialect != "anthropic":
        return _STOP_REASON[want.finish or "stop"]
    reason, sequence = None, None
    for holder in ([body] if body is not None else []) + [
            p["message"] if p.get("type") == "message_start" else p.get("delta") or {}
            for p in payloads if p.get("type") in ("message_start", "message_delta")]:
        reason = holder.get("stop_reason") or reason
        sequence = holder.get("stop_sequence") or sequence
    if sequence is not None:
        return "stop_sequence"
    return "end_turn" if reason in (None, "end_turn", "stop_sequence") else reason


# ---------------------------------------------------------------------------------------
# SDK validation.

def _reads(adapter, value) -> bool:
    try:
        adapter.validate_python(value)
        return True
    except pydantic.ValidationError:
        return False


def _unreadable(blocks: List[dict]) -> List[dict]:
    """The blocks no content-block type of the installed SDK (GA or beta) reads."""
    return [b for b in blocks if not _reads(_GA_BLOCK, b) and not _reads(_BETA_BLOCK, b)]


def _ga_refuses(blocks: List[dict]) -> bool:
    try:
        _GA_CONTENT.validate_python(blocks)
        return False
    except pydantic.ValidationError:
        return True


def _validate_message(out: dict, recorded_blocks: List[dict]):
    # A block the SDK cannot read in the recording itself must come back as recorded; the
    # gateway may make no other block unreadable.
    unreadable = _unreadable(recorded_blocks)
    assert _unreadable(out["content"]) == unreadable
    readable = dict(out, content=[b for b in out["content"] if b not in unreadable])
    try:
        return anthropic_types.Message.model_validate(readable)
    except pydantic.ValidationError as err:
        recorded = [b for b in recorded_blocks if b not in unreadable]
        assert _ga_refuses(recorded), f"GA types refuse an answer whose recording they read: {err}"
        return beta_types.BetaMessage.model_validate(readable)


def _facts_of_message(msg) -> Tuple[base.Facts, str]:
    f = base.Facts(model=msg.model)
    for b in msg.content:
        if b.type == "text":
            f.text += b.text
        elif b.type == "thinking":
            f.reasoning += b.thinking
        elif b.type == "tool_use":
            f.calls.append(base.Call(b.name, json.dumps(b.input)))
    u = msg.usage
    prompt = (u.input_tokens + (u.cache_read_input_tokens or 0)
              + (u.cache_creation_input_tokens or 0))
    f.usage = (prompt, u.output_tokens, prompt + u.output_tokens)
    return f, msg.stop_reason


def _check(got: base.Facts, want: base.Facts) -> None:
    assert got.text == want.text
    assert got.reasoning == want.reasoning
    assert [c.name for c in got.calls] == [c.name for c in want.calls]
    for g, w in zip(got.calls, want.calls):
        assert base._args_equal(g.arguments, w.arguments), (g.arguments, w.arguments)
    # Anthropic's usage has no total: the prompt (cached tokens included) and the output count.
    if want.usage is None:
        assert got.usage[:2] == (0, 0), "usage the recording does not have"
    else:
        assert got.usage[:2] == want.usage[:2]
    if want.model is not None:
        assert got.model == want.model


# ---------------------------------------------------------------------------------------
# Whole answers.

def _replay_body(case) -> Tuple[base.Facts, base.Facts]:
    """(what the Messages answer says, what the recording says), after the checks that hold
    for every body."""
    rec = base._json(case.id)
    out = modeenvoy.translate_response(base._read(case.id), case.dialect, "anthropic",
                                       source_options=case.options)
    recorded_blocks = (rec.get("content") or []) if case.dialect == "anthropic" else []
    msg = _validate_message(out, recorded_blocks)
    assert msg.type == "message" and msg.role == "assistant"
    if rec.get("id"):
        assert msg.id == rec["id"]
    got, stop_reason = _facts_of_message(msg)
    want = case.facts()
    assert stop_reason == _recorded_stop_reason(case, want, body=rec)
    return got, want


@pytest.mark.parametrize("case", _params({"body"}))
def test_whole_answer_is_an_sdk_message_saying_what_the_recording_says(case):
    got, want = _replay_body(case)
    _check(got, want)


@pytest.mark.parametrize("case", _params({"error_body"}))
def test_error_recording_raises(case):
    with pytest.raises(modeenvoy.Error) as err:
        modeenvoy.translate_response(base._read(case.id), case.dialect, "anthropic",
                                     source_options=case.options)
    assert err.value.status_code >= 400


# ---------------------------------------------------------------------------------------
# Streams.

def _run(case, pieces: List[bytes]) -> bytes:
    t = modeenvoy.StreamTranslator(case.dialect, "anthropic", source_options=case.options)
    out = b""
    for piece in pieces:
        out += t.feed(piece)
    return out + t.finish()


def _events(out: bytes) -> List[Tuple[str, dict]]:
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
        events.append((name, json.loads(data)))
    return events


def _recorded_payloads(case, reads: List[bytes]) -> List[dict]:
    return [json.loads(p) for p in base._sse_payloads(b"".join(reads)) if p != "[DONE]"]


def _stream_needs_beta(payloads: List[dict]) -> bool:
    """The recording's own block events (of types the SDK knows) need the beta types."""
    for p in payloads:
        if p.get("type") == "content_block_start" and _unreadable([p["content_block"]]):
            continue
        if p.get("type") in ("content_block_start", "content_block_delta"):
            try:
                _GA_EVENT.validate_python(p)
            except pydantic.ValidationError:
                return True
    return False


def _replay_stream(case) -> List[Tuple[base.Facts, base.Facts, str]]:
    """Per response of the recording: (what the Messages events say, what the recording says,
    message_start's id), after the checks that hold for every stream."""
    results = []
    messages = case.messages() if case.messages else [(case.reads(), case.facts())]
    for reads, want in messages:
        payloads = _recorded_payloads(case, reads)
        whole = b"".join(reads)
        out = _run(case, reads)
        assert _run(case, [whole]) == out  # any split of the input gives the same bytes
        assert _run(case, [whole[i:i + 7] for i in range(0, len(whole), 7)]) == out

        events = _events(out)
        assert events[0][1]["type"] == "message_start"
        assert events[-1][1]["type"] == "message_stop"
        needs_beta = case.dialect == "anthropic" and _stream_needs_beta(payloads)
        recorded_unreadable = _unreadable([p["content_block"] for p in payloads
                                           if p.get("type") == "content_block_start"])
        unreadable_seen = []
        open_blocks: Dict[int, dict] = {}
        got = base.Facts()
        stop_reason, usage = None, {}
        for name, data in events:
            assert name == data["type"]
            if name == "ping":  # no SDK type: the SDK's stream skips pings
                assert data == {"type": "ping"}
                continue
            if name == "content_block_start" and _unreadable([data["content_block"]]):
                unreadable_seen.append(data["content_block"])
            else:
                try:
                    _GA_EVENT.validate_python(data)
                except pydantic.ValidationError as err:
                    assert needs_beta, f"the GA types refuse {data} of a GA recording: {err}"
                    _BETA_EVENT.validate_python(data)
            t = data["type"]
            if t == "message_start":
                got.model = data["message"]["model"]
                message_id = data["message"]["id"]
                usage.update(data["message"]["usage"])
            elif t == "content_block_start":
                assert data["index"] not in open_blocks
                b = open_blocks[data["index"]] = data["content_block"]
                if b["type"] == "text":
                    got.text += b.get("text", "")
                elif b["type"] == "thinking":
                    got.reasoning += b.get("thinking", "")
                elif b["type"] == "tool_use":
                    got.calls.append(base.Call(b["name"], ""))
                    b["_call"] = got.calls[-1]
            elif t == "content_block_delta":
                b = open_blocks[data["index"]]  # a delta of an open block
                d = data["delta"]
                if d["type"] == "text_delta":
                    got.text += d["text"]
                elif d["type"] == "thinking_delta":
                    got.reasoning += d["thinking"]
                elif d["type"] == "input_json_delta" and "_call" in b:
                    b["_call"].arguments += d["partial_json"]
            elif t == "content_block_stop":
                del open_blocks[data["index"]]
            elif t == "message_delta":
                stop_reason = data["delta"]["stop_reason"]
                usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        assert open_blocks == {}, "blocks never stopped"
        assert unreadable_seen == recorded_unreadable
        prompt = (usage.get("input_tokens", 0) + (usage.get("cache_read_input_tokens") or 0)
                  + (usage.get("cache_creation_input_tokens") or 0))
        got.usage = (prompt, usage.get("output_tokens", 0), prompt + usage.get("output_tokens", 0))
        for c in got.calls:  # a call whose input streamed nothing has none
            c.arguments = c.arguments or "{}"
        assert stop_reason == _recorded_stop_reason(case, want, payloads=tuple(payloads))
        want.id = _recorded_id(payloads)  # not a Facts field: this file's own
        results.append((got, want, message_id))
    return results


@pytest.mark.parametrize("case", _params({"stream"}))
def test_stream_is_sdk_events_saying_what_the_recording_says(case):
    for got, want, message_id in _replay_stream(case):
        _check(got, want)
        if want.id:
            assert message_id == want.id


@pytest.mark.parametrize("case", _params({"broken_stream"}))
def test_broken_stream_raises_and_never_ends_as_an_answer(case):
    """anthropic's duplicate-message-start / spliced-message-start (deliberately broken): an
    error (502), and no message_stop in what came out before it."""
    t = modeenvoy.StreamTranslator(case.dialect, "anthropic", source_options=case.options)
    out = b""
    with pytest.raises(modeenvoy.Error) as err:
        for piece in case.reads():
            out += t.feed(piece)
        out += t.finish()
    assert err.value.status_code == 502
    assert b"message_stop" not in out + err.value.partial_output
