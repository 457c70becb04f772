"""Issue 11 (part A), "Proof on real recordings": every recorded OpenAI Chat Completions answer
(whole bodies and streams, from OpenAI and OpenAI-compatible providers in the fixture tree),
rendered as Anthropic Messages by the `anthropic` dialect's ingress side (what POST
/v1/messages sends its clients: modeenvoy.translate_response(..., "openai", "anthropic") and
StreamTranslator("openai", "anthropic") run the same encoder), is read by the official
`anthropic` SDK's types, and says what the recording says (text and tool calls taken from the
recording by a small reader here, not from the C++ code).

Recordings that are errors (a top-level "error") must raise modeenvoy.Error instead. Where the
fixtures are absent every test here skips; none passes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List

import pytest

from conftest import require_module, shared_data_dir

modeenvoy = require_module("modeenvoy")
anthropic_types = require_module("anthropic.types")
pydantic = require_module("pydantic")


def _root() -> Path:
    env = os.environ.get("MODEENVOY_FIXTURES_DIR")
    return Path(env) if env else shared_data_dir() / "provider-fixtures"


ROOT = _root()
# The folders tests/protocol/fixtures.h names as OpenAI Chat Completions answers.
DIRS = [
    "vercel-ai/packages/openai/src/chat/__fixtures__",
    "vercel-ai/packages/openai-compatible/src/chat/__fixtures__",
    "vercel-ai/packages/deepseek/src/chat/__fixtures__",
    "vercel-ai/packages/groq/src/__fixtures__",
    "vercel-ai/packages/mistral/src/__fixtures__",
    "vercel-ai/packages/xai/src/__fixtures__",
]


def _files(suffix: str) -> List[Path]:
    out: List[Path] = []
    for d in DIRS:
        folder = ROOT / d
        if folder.is_dir():
            out += sorted(p for p in folder.iterdir() if p.name.endswith(suffix)
                          and "transcription" not in p.name)
    return out


WHOLE = _files(".json")
STREAMS = _files(".chunks.txt")
EVENT = pydantic.TypeAdapter(anthropic_types.RawMessageStreamEvent)


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def _expected_whole(rec: dict):
    msg = rec["choices"][0]["message"]
    content = msg.get("content")
    text = content if isinstance(content, str) else "".join(
        p.get("text", "") for p in (content or []) if isinstance(p, dict))
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"] or "{}"))
             for c in msg.get("tool_calls") or []]
    return text, calls


@pytest.mark.skipif(not ROOT.is_dir(), reason="provider fixtures not found")
def test_the_fixture_folders_hold_answers():
    assert WHOLE and STREAMS


@pytest.mark.parametrize("path", WHOLE, ids=_ids(WHOLE))
def test_whole_answer_is_an_sdk_message(path: Path):
    rec = json.loads(path.read_text())
    if not isinstance(rec, dict) or "choices" not in rec:
        with pytest.raises(modeenvoy.Error):
            modeenvoy.translate_response(path.read_bytes(), "openai", "anthropic")
        assert isinstance(rec, dict) and "error" in rec, "neither an answer nor an error"
        return
    if len(rec["choices"]) != 1:
        with pytest.raises(modeenvoy.Error):  # Anthropic answers with one message
            modeenvoy.translate_response(path.read_bytes(), "openai", "anthropic")
        return
    out = modeenvoy.translate_response(path.read_bytes(), "openai", "anthropic")
    msg = anthropic_types.Message.model_validate(out)
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.id == rec["id"]
    text, calls = _expected_whole(rec)
    assert "".join(b.text for b in msg.content if b.type == "text") == text
    assert [(b.name, b.input) for b in msg.content if b.type == "tool_use"] == calls
    if rec.get("usage"):
        assert msg.usage.output_tokens == rec["usage"]["completion_tokens"]


def _sse_events(raw: bytes):
    events = []
    for block in raw.decode().split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


@pytest.mark.parametrize("path", STREAMS, ids=_ids(STREAMS))
def test_stream_is_sdk_events(path: Path):
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    body = "".join(f"data: {l}\n\n" for l in lines) + "data: [DONE]\n\n"
    chunks = [json.loads(l) for l in lines]
    broken = any("error" in c for c in chunks) or any(
        len(c.get("choices") or []) > 1 or any(ch.get("index", 0) != 0 for ch in c.get("choices") or [])
        for c in chunks)
    t = modeenvoy.StreamTranslator("openai", "anthropic")
    try:
        raw = t.feed(body.encode()) + t.finish()
    except modeenvoy.Error:
        assert broken, "a stream without an error or a second choice failed"
        return
    events = _sse_events(raw)
    assert events[0][1]["type"] == "message_start"
    assert events[-1][1]["type"] == "message_stop"
    text, args = "", {}
    for name, data in events:
        assert name == data["type"]
        if name == "ping":  # the SDK's stream skips pings: no typed event for them
            continue
        EVENT.validate_python(data)
        if data["type"] == "content_block_delta" and data["delta"]["type"] == "text_delta":
            text += data["delta"]["text"]
    want = ""
    for c in chunks:
        for ch in c.get("choices") or []:
            content = (ch.get("delta") or {}).get("content") or ""
            if isinstance(content, list):  # Mistral streams parts: the text parts are the text
                content = "".join(p.get("text", "") for p in content if p.get("type") == "text")
            want += content
            want += (ch.get("delta") or {}).get("refusal") or ""
    assert text == want
