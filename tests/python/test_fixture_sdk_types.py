"""Issue 9, "Proof on real recordings": every recorded provider response in the fixture tree
(/work/shared/data/provider-fixtures, see its README.md), translated to OpenAI by
modeenvoy.translate_response / modeenvoy.StreamTranslator(<dialect>, "openai"), is read by the
official openai SDK's types, and says what the recording says.

Per fixture (one test id each):
  * whole bodies: ChatCompletion.model_validate_json(..., strict=True) (strict: `created` must
    be an int, not "0"), `object == "chat.completion"`;
  * streams: fed whole, byte by byte and in seeded random pieces, the output bytes are
    identical; every event but the final `[DONE]` is a ChatCompletionChunk (strict), with
    `object == "chat.completion.chunk"`;
  * text, reasoning text, tool-call names and arguments, finish reason, model and usage totals
    equal what a small reader in this file takes from the recording itself (per provider,
    written from the provider's API and docs/providers.md's mapping tables, not from the C++
    code);
  * error recordings raise modeenvoy.Error (translate_response: the body is not an answer);
    broken or truncated streams raise it too, identically under every split, and what came
    out before the error (a raising call's part of it in Error.partial_output) is the same
    bytes under every split and still valid.

Hand-edited mocks (README: Kong's trimmed bodies, vercel's synthetic ids) are compared on
values too: the readers take the values from the same file, so fabricated counts (e.g. 0) are
still what the translation must keep; no fixture needs its values skipped.

Every file in the tree must be classified here: one that is not, and is not in EXCLUDED with
its reason, fails test_every_fixture_file_is_classified, so new recordings are not silently
ignored. Where the fixtures are absent (MODEENVOY_FIXTURES_DIR, else MODEENVOY_SHARED_DATA/
provider-fixtures) every test here skips; none passes.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from conftest import require_module, shared_data_dir

modeenvoy = require_module("modeenvoy")
openai_chat = require_module("openai.types.chat")


def _fixtures_root() -> Path:
    env = os.environ.get("MODEENVOY_FIXTURES_DIR")
    return Path(env) if env else shared_data_dir() / "provider-fixtures"


ROOT = _fixtures_root()
KONG = "kong/spec/fixtures/ai-proxy/"
VERCEL = "vercel-ai/packages/"

# ---------------------------------------------------------------------------------------
# What is not a chat response a dialect reads, and why. Each entry is a regular expression
# over the path relative to the fixtures root (full match) and its reason; an entry that
# matches no file fails test_every_exclusion_matches_a_file (so the list cannot go stale).
EXCLUDED: List[Tuple[str, str]] = [
    (r"README\.md|MANIFEST\.tsv|(vercel-ai|kong)/LICENSE", "the tree's own documentation"),
    # Other OpenAI APIs than Chat Completions: no modeenvoy dialect speaks them.
    (VERCEL + r"openai/src/responses/__fixtures__/.*", "OpenAI Responses API, not Chat Completions"),
    (VERCEL + r"xai/src/responses/__fixtures__/.*", "xAI Responses API, not Chat Completions"),
    (VERCEL + r"openai/src/completion/__fixtures__/.*", "legacy Completions (text_completion)"),
    (VERCEL + r"openai/src/(embedding|image|skills|transcription|speech-translation)/__fixtures__/.*",
     "embeddings / images / skills / audio APIs, not chat"),
    (VERCEL + r"(groq|mistral)/src/__fixtures__/[^/]*transcription[^/]*\.json",
     "audio transcription response, not chat"),
    (VERCEL + r"cohere/src/__fixtures__/cohere-embedding\.json", "embeddings, not chat"),
    (VERCEL + r"(cohere|amazon-bedrock)/src/reranking/__fixtures__/.*", "reranking, not chat"),
    # Kong: requests, schemas and Kong's own expected outputs are not provider responses.
    (KONG + r"[^/]+/llm-v1-(chat|completions)/requests/.*", "a client request, not a response"),
    (KONG + r"unit/requests/.*|" + KONG + r"unit/expected-requests/.*",
     "a request (Kong's input or its translation), not a response"),
    (KONG + r"native/.*", "provider-native requests and Kong's OpenAI translation of them"),
    (KONG + r"llama2/ollama/chat-stream\.json", "an OpenAI-format streaming request"),
    (KONG + r"unit/expected-responses/.*",
     "Kong's own translation of unit/real-responses (its choices, not a recording)"),
    (KONG + r"json-schema\.json|" + KONG + r"oas\.yaml", "Kong's schemas"),
    (KONG + r"[^/]+/llm-v1-completions/.*|" + KONG + r"unit/real-responses/.*/llm-v1-completions\.json|"
     + KONG + r"unit/real-stream-frames/(openai|cohere)/llm-v1-completions\.txt",
     "legacy completions (llm/v1/completions), not chat"),
    (KONG + r"openai/llm-v1-embeddings/.*", "embeddings, not chat"),
    (KONG + r"huggingface/.*|" + KONG + r"llama2/raw/.*|" + KONG + r"llama2/request-transformer/.*|"
     + KONG + r"unit/real-responses/llama2/raw/.*",
     "Hugging Face inference / raw llama2 text generation: no modeenvoy dialect"),
    (KONG + r"unit/real-stream-frames/cohere/llm-v1-chat\.txt|"
     + KONG + r"unit/streaming-chunk-formats/complete-json/.*",
     "Cohere v1 NDJSON stream frames: the cohere dialect is v2 (v1 bodies are refused by name, "
     "see the cohere v1 cases); a v1 stream has no v2 reading to check"),
]


# ---------------------------------------------------------------------------------------
# What a response says, as read from a recording (expected) or from our output (got).

@dataclass
class Call:
    name: str
    arguments: str  # JSON text
    # True when `arguments` is text the provider streamed (fragments concatenated), which a
    # translator passes on as it came; False when this file serialized the provider's object.
    streamed: bool = False


@dataclass
class Facts:
    text: str = ""
    reasoning: str = ""
    calls: List[Call] = field(default_factory=list)
    finish: Optional[str] = None
    usage: Optional[Tuple[int, int, int]] = None  # prompt, completion, total
    model: Optional[str] = None  # None: the recording names none


def _args_equal(got: str, want: str) -> bool:
    """Arguments equal as JSON values; an empty recording means a call without arguments."""
    return json.loads(got or "{}") == json.loads(want or "{}")


def _usage_of(u: Optional[dict]) -> Optional[Tuple[int, int, int]]:
    if not u:
        return None
    return (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"])


# ---- OpenAI Chat Completions and the compatible family (also Azure) -------------------

def _mistral_parts(parts: list) -> Tuple[str, str]:
    """(text, reasoning) of Mistral's content parts (its API's ContentChunks, as magistral
    models answer): "text" parts are the answer, "thinking" parts hold text parts of
    reasoning."""
    text = "".join(p["text"] for p in parts if p["type"] == "text")
    reasoning = "".join(t["text"] for p in parts if p["type"] == "thinking"
                        for t in p["thinking"])
    return text, reasoning


def _openai_content(holder: dict) -> Tuple[str, str]:
    """(text, reasoning) of a message or delta of the OpenAI-compatible family."""
    content = holder.get("content")
    text, reasoning = (_mistral_parts(content) if isinstance(content, list)
                       else (content or "", ""))
    return text, reasoning + (holder.get("reasoning_content") or holder.get("reasoning") or "")


def _openai_body(body: dict) -> Facts:
    choice = next(c for c in body["choices"] if c.get("index", 0) == 0)
    msg = choice["message"]
    text, reasoning = _openai_content(msg)
    return Facts(
        text=text,
        reasoning=reasoning,
        calls=[Call(t["function"]["name"], t["function"].get("arguments") or "")
               for t in msg.get("tool_calls") or []],
        finish=choice.get("finish_reason") or None,
        usage=_usage_of(body.get("usage")),
        model=body.get("model"))


def _openai_stream(payloads: List[dict]) -> Facts:
    f = Facts()
    by_index: Dict[int, Call] = {}
    for p in payloads:
        if p.get("model"):
            f.model = p["model"]
        if p.get("usage"):
            f.usage = _usage_of(p["usage"])  # some servers repeat it: the last one counts
        for c in p.get("choices") or []:
            if c.get("index", 0) != 0:
                continue
            d = c.get("delta") or {}
            text, reasoning = _openai_content(d)
            f.text += text
            f.reasoning += reasoning
            for t in d.get("tool_calls") or []:
                fn = t.get("function") or {}
                if "index" in t:
                    k = t["index"]
                elif t.get("id"):  # servers that send no index send each call whole
                    k = len(by_index)
                else:
                    k = max(by_index)
                if k not in by_index:
                    by_index[k] = Call(fn.get("name", ""), "", streamed=True)
                by_index[k].arguments += fn.get("arguments") or ""
            if c.get("finish_reason"):
                f.finish = c["finish_reason"]
    f.calls = [by_index[k] for k in sorted(by_index)]
    return f


# ---- Anthropic Messages ----------------------------------------------------------------

_ANTHROPIC_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                   "model_context_window_exceeded": "length", "tool_use": "tool_calls",
                   "refusal": "content_filter"}


def _anthropic_usage(u: Optional[dict]) -> Optional[Tuple[int, int, int]]:
    if not u or "input_tokens" not in u or "output_tokens" not in u:
        return None
    prompt = (u["input_tokens"] + (u.get("cache_read_input_tokens") or 0)
              + (u.get("cache_creation_input_tokens") or 0))
    return (prompt, u["output_tokens"], prompt + u["output_tokens"])


def _anthropic_blocks(f: Facts, blocks: List[dict]) -> None:
    for b in blocks:
        if b["type"] == "text":
            f.text += b["text"]
        elif b["type"] == "thinking":
            f.reasoning += b.get("thinking", "")
        elif b["type"] == "tool_use":
            f.calls.append(Call(b["name"], json.dumps(b.get("input", {}))))


def _anthropic_body(body: dict) -> Facts:
    f = Facts(model=body.get("model"))
    _anthropic_blocks(f, body.get("content") or [])
    f.finish = _ANTHROPIC_STOP.get(body.get("stop_reason"), "stop")
    f.usage = _anthropic_usage(body.get("usage"))
    return f


def _anthropic_stream(payloads: List[dict]) -> Facts:
    f = Facts()
    usage: dict = {}
    open_blocks: Dict[int, dict] = {}
    for p in payloads:
        t = p["type"]
        if t == "message_start":
            f.model = p["message"].get("model")
            usage.update(p["message"].get("usage") or {})
            _anthropic_blocks(f, p["message"].get("content") or [])
            if p["message"].get("stop_reason"):  # a resumed message may start finished
                f.finish = _ANTHROPIC_STOP.get(p["message"]["stop_reason"], "stop")
        elif t == "content_block_start":
            b = p["content_block"]
            open_blocks[p["index"]] = b
            if b["type"] == "text":
                f.text += b.get("text", "")
            elif b["type"] == "thinking":
                f.reasoning += b.get("thinking", "")
            elif b["type"] == "tool_use":
                # The input streams as input_json_delta; a block that streams none carries
                # it whole here (programmatic tool calls).
                f.calls.append(Call(b["name"], json.dumps(b.get("input") or {})))
                b["_call"] = f.calls[-1]
        elif t == "content_block_delta":
            d = p["delta"]
            if d["type"] == "text_delta":
                f.text += d["text"]
            elif d["type"] == "thinking_delta":
                f.reasoning += d["thinking"]
            elif d["type"] == "input_json_delta" and "_call" in open_blocks[p["index"]]:
                call = open_blocks[p["index"]]["_call"]
                if not call.streamed:
                    call.arguments, call.streamed = "", True
                call.arguments += d["partial_json"]
        elif t == "message_delta":
            f.finish = _ANTHROPIC_STOP.get(p["delta"].get("stop_reason"), "stop")
            usage.update({k: v for k, v in (p.get("usage") or {}).items() if v is not None})
    f.usage = _anthropic_usage(usage)
    return f


# ---- Gemini / Vertex ---------------------------------------------------------------------

_GEMINI_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                    "IMAGE_SAFETY", "LANGUAGE"}


def _gemini_usage(u: Optional[dict]) -> Optional[Tuple[int, int, int]]:
    if not u or "totalTokenCount" not in u:
        return None
    prompt = u.get("promptTokenCount", 0) + u.get("toolUsePromptTokenCount", 0)
    completion = u.get("candidatesTokenCount", 0) + u.get("thoughtsTokenCount", 0)
    return (prompt, completion, u["totalTokenCount"])


def _set_json_path(root: dict, path: str, value, append: bool) -> None:
    """Sets `$.a.b[2].c` in `root`; strings continued across parts are concatenated."""
    steps = re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path[1:])
    node = root
    for i, (key, index) in enumerate(steps):
        last = i == len(steps) - 1
        k = key if key else int(index)
        nxt = steps[i + 1] if not last else None
        empty = ([] if nxt and nxt[1] else {})
        if isinstance(node, list):
            while len(node) <= k:
                node.append(None)
        if last:
            if append and isinstance(node[k] if isinstance(node, list) else node.get(k), str):
                node[k] += value
            else:
                node[k] = value
            return
        cur = node[k] if isinstance(node, list) else node.get(k)
        if cur is None:
            node[k] = empty
        node = node[k]


class _GeminiCalls:
    """A candidate's function calls, whole or streamed as partialArgs."""

    def __init__(self, f: Facts) -> None:
        self.f = f
        self.open: Optional[dict] = None  # the streamed call's arguments
        self.continued: set = set()

    def part(self, fc: dict) -> None:
        if fc.get("name") and (fc.get("willContinue") or fc.get("partialArgs")):
            self.close()
            self.f.calls.append(Call(fc["name"], ""))
            self.open, self.continued = {}, set()
        elif fc.get("name"):
            self.close()
            self.f.calls.append(Call(fc["name"], json.dumps(fc.get("args", {}))))
            return
        if self.open is None:
            return
        for a in fc.get("partialArgs") or []:
            path = a["jsonPath"]
            if "stringValue" in a:
                value = a["stringValue"]
            elif "numberValue" in a:
                value = a["numberValue"]
            elif "boolValue" in a:
                value = a["boolValue"]
            else:
                value = None
            _set_json_path(self.open, path, value, append=path in self.continued)
            if a.get("willContinue"):
                self.continued.add(path)
            else:
                self.continued.discard(path)
        if not fc.get("willContinue") and not fc.get("name"):
            self.close()

    def close(self) -> None:
        if self.open is not None:
            self.f.calls[-1].arguments = json.dumps(self.open)
            self.open = None


def _gemini_elements(elements: List[dict]) -> Facts:
    f = Facts()
    calls = _GeminiCalls(f)
    native_finish = None
    for e in elements:
        if e.get("modelVersion"):
            f.model = e["modelVersion"]
        if _gemini_usage(e.get("usageMetadata")):
            f.usage = _gemini_usage(e["usageMetadata"])
        for c in e.get("candidates") or []:
            if c.get("index", 0) != 0:
                continue
            for part in (c.get("content") or {}).get("parts") or []:
                if "functionCall" in part:
                    calls.part(part["functionCall"])
                elif part.get("thought"):
                    f.reasoning += part.get("text", "")
                elif "text" in part:
                    f.text += part["text"]
            if c.get("finishReason"):
                native_finish = c["finishReason"]
    calls.close()
    if native_finish is not None:
        if native_finish == "MAX_TOKENS":
            f.finish = "length"
        elif native_finish in _GEMINI_FILTERED:
            f.finish = "content_filter"
        else:
            f.finish = "tool_calls" if f.calls else "stop"
    return f


# ---- Bedrock Converse ----------------------------------------------------------------------

_BEDROCK_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                 "model_context_window_exceeded": "length", "tool_use": "tool_calls",
                 "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}


def _bedrock_usage(u: Optional[dict]) -> Optional[Tuple[int, int, int]]:
    if not u or "inputTokens" not in u:  # Kong's hand-edited body has OpenAI's names here
        return None
    prompt = (u["inputTokens"] + u.get("cacheReadInputTokens", 0)
              + u.get("cacheWriteInputTokens", 0))
    return (prompt, u["outputTokens"], prompt + u["outputTokens"])


def _bedrock_body(body: dict) -> Facts:
    f = Facts()
    for b in body["output"]["message"]["content"]:
        if "text" in b:
            f.text += b["text"]
        elif "toolUse" in b:
            f.calls.append(Call(b["toolUse"]["name"], json.dumps(b["toolUse"].get("input", {}))))
        elif "reasoningContent" in b:
            f.reasoning += (b["reasoningContent"].get("reasoningText") or {}).get("text", "")
    f.finish = _BEDROCK_STOP.get(body.get("stopReason"), "stop")
    f.usage = _bedrock_usage(body.get("usage"))
    return f


def _bedrock_events(events: List[Tuple[str, dict]]) -> Facts:
    f = Facts()
    call_of_block: Dict[int, Call] = {}
    for kind, p in events:
        if kind == "contentBlockStart" and "toolUse" in p.get("start", {}):
            f.calls.append(Call(p["start"]["toolUse"]["name"], "", streamed=True))
            call_of_block[p["contentBlockIndex"]] = f.calls[-1]
        elif kind == "contentBlockDelta":
            d = p["delta"]
            f.text += d.get("text", "")
            if "toolUse" in d:
                call_of_block[p["contentBlockIndex"]].arguments += d["toolUse"].get("input", "")
            f.reasoning += (d.get("reasoningContent") or {}).get("text", "")
        elif kind == "messageStop":
            f.finish = _BEDROCK_STOP.get(p["stopReason"], "stop")
        elif kind == "metadata":
            f.usage = _bedrock_usage(p.get("usage"))
    return f


# ---- Cohere v2 ---------------------------------------------------------------------------

_COHERE_FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length",
                  "TOOL_CALL": "tool_calls"}


def _cohere_usage(u: Optional[dict]) -> Optional[Tuple[int, int, int]]:
    if not u:
        return None
    t = u.get("tokens") or u.get("billed_units")
    if not t:
        return None
    return (t["input_tokens"], t["output_tokens"], t["input_tokens"] + t["output_tokens"])


def _cohere_args(a: Optional[str]) -> str:
    return "{}" if a in (None, "", "null") else a


def _cohere_body(body: dict) -> Facts:
    m = body["message"]
    f = Facts(finish=_COHERE_FINISH[body["finish_reason"]], usage=_cohere_usage(body.get("usage")))
    for c in m.get("content") or []:
        if c["type"] == "text":
            f.text += c["text"]
        elif c["type"] == "thinking":
            f.reasoning += c["thinking"]
    f.calls = [Call(t["function"]["name"], _cohere_args(t["function"].get("arguments")))
               for t in m.get("tool_calls") or []]
    return f


def _cohere_stream(payloads: List[dict]) -> Facts:
    f = Facts()
    calls: Dict[int, Call] = {}
    for p in payloads:
        t = p["type"]
        msg = (p.get("delta") or {}).get("message") or {}
        if t == "content-delta":
            f.text += (msg.get("content") or {}).get("text", "")
            f.reasoning += (msg.get("content") or {}).get("thinking", "")
        elif t == "tool-call-start":
            fn = msg["tool_calls"]["function"]
            calls[p["index"]] = Call(fn["name"], fn.get("arguments") or "", streamed=True)
        elif t == "tool-call-delta":
            calls[p["index"]].arguments += msg["tool_calls"]["function"].get("arguments") or ""
        elif t == "message-end":
            f.finish = _COHERE_FINISH[p["delta"]["finish_reason"]]
            f.usage = _cohere_usage(p["delta"].get("usage"))
    f.calls = [calls[k] for k in sorted(calls)]
    return f


# ---- Ollama ------------------------------------------------------------------------------

def _ollama_body(body: dict) -> Facts:
    m = body.get("message") or {}
    f = Facts(text=m.get("content") or "", reasoning=m.get("thinking") or "",
              model=body.get("model"))
    f.calls = [Call(t["function"]["name"], json.dumps(t["function"].get("arguments", {})))
               for t in m.get("tool_calls") or []]
    if body.get("done_reason") == "length":
        f.finish = "length"
    else:
        f.finish = "tool_calls" if f.calls else "stop"
    if "prompt_eval_count" in body or "eval_count" in body:
        p, c = body.get("prompt_eval_count", 0), body.get("eval_count", 0)
        f.usage = (p, c, p + c)
    return f


# ---------------------------------------------------------------------------------------
# Wire forms of the recordings (what the provider sent, as bytes).

def _lines(path: Path) -> List[str]:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _sse(payloads: List[str], named: bool, done: bool) -> bytes:
    out = []
    for p in payloads:
        head = f"event: {json.loads(p)['type']}\n" if named else ""
        out.append(f"{head}data: {p}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def _sse_payloads(raw: bytes) -> List[str]:
    """The data of each event of an SSE body (multi-line data joined with \\n)."""
    events = []
    for block in re.split(r"\r?\n\r?\n", raw.decode("utf-8")):
        data = [ln[5:].lstrip(" ") if ln.startswith("data:") else None
                for ln in block.splitlines()]
        data = [d for d in data if d is not None]
        if data:
            events.append("\n".join(data))
    return events


def _eventstream_message(event_type: str, payload: bytes) -> bytes:
    """One AWS EventStream message (prelude, CRC32s, string headers), as Bedrock frames its
    ConverseStream events."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        v = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _eventstream_events(raw: bytes) -> List[Tuple[str, str, dict]]:
    """(message type, event or exception type, payload) of each EventStream message."""
    out = []
    pos = 0
    while pos < len(raw):
        total, header_len = struct.unpack(">II", raw[pos:pos + 8])
        assert zlib.crc32(raw[pos:pos + 8]) == struct.unpack(">I", raw[pos + 8:pos + 12])[0]
        hdr = raw[pos + 12:pos + 12 + header_len]
        headers = {}
        h = 0
        while h < len(hdr):
            n = hdr[h]
            name = hdr[h + 1:h + 1 + n].decode()
            assert hdr[h + 1 + n] == 7, "only string headers in ConverseStream"
            vlen = struct.unpack(">H", hdr[h + 2 + n:h + 4 + n])[0]
            headers[name] = hdr[h + 4 + n:h + 4 + n + vlen].decode()
            h += 4 + n + vlen
        payload = raw[pos + 12 + header_len:pos + total - 4]
        kind = headers.get(":event-type") or headers.get(":exception-type", "")
        out.append((headers.get(":message-type", "event"), kind, json.loads(payload)))
        pos += total
    return out


# ---------------------------------------------------------------------------------------
# Cases.

@dataclass
class Case:
    id: str                       # the fixture's path (a folder for multi-read captures)
    files: Tuple[str, ...]        # every file the case covers
    dialect: str
    kind: str                     # "body", "stream", "error_body", "refused_body",
                                  # "broken_stream", "truncated_stream"
    reads: Callable[[], List[bytes]] = lambda: []          # the stream as recorded reads
    facts: Callable[[], Facts] = lambda: Facts()           # what the recording says
    options: Optional[dict] = None
    error_text: str = ""          # for refusals: a word the error message must contain
    # A file holding several responses (one per step of a multi-step exchange, each its own
    # HTTP response): (reads, facts) of each; None for a file holding one.
    messages: Optional[Callable[[], List[Tuple[List[bytes], Facts]]]] = None


def _read(rel: str) -> bytes:
    return (ROOT / rel).read_bytes()


def _json(rel: str) -> dict:
    return json.loads(_read(rel))


def _vercel_dir(rel: str) -> str:
    return rel.split("/__fixtures__/")[0] + "/__fixtures__/"


# vercel-ai folders in OpenAI Chat Completions format (OpenAI and compatible servers).
_OPENAI_FAMILY = re.compile(VERCEL + r"(openai/src/chat|openai-compatible/src/chat|deepseek/src/chat|"
                            r"groq/src|mistral/src|xai/src)/__fixtures__/[^/]+")


def _classify(rel: str) -> Optional[Case]:
    """The case of one file, or None when no rule knows it."""
    name = rel.rsplit("/", 1)[-1]
    # ---- vercel-ai ----
    if _OPENAI_FAMILY.fullmatch(rel):
        dialect = "azure_openai" if name.startswith("azure-") else "openai"
        opts = None
        if name.endswith(".chunks.txt"):
            return Case(rel, (rel,), dialect, "stream", options=opts,
                        reads=lambda: [_sse(_lines(ROOT / rel), named=False, done=True)],
                        facts=lambda: _openai_stream([json.loads(x) for x in _lines(ROOT / rel)]))
        if name.endswith(".sse"):  # a raw SSE body, [DONE] included
            return Case(rel, (rel,), dialect, "stream", options=opts, reads=lambda: [_read(rel)],
                        facts=lambda: _openai_stream([json.loads(x) for x in _sse_payloads(_read(rel))
                                                      if x != "[DONE]"]))
        if name.endswith(".json") and "error" in name:
            return Case(rel, (rel,), dialect, "error_body", options=opts)
        if name.endswith(".json"):
            return Case(rel, (rel,), dialect, "body", options=opts,
                        facts=lambda: _openai_body(_json(rel)))
    if rel.startswith(VERCEL + "anthropic/src/__fixtures__/"):
        if name in ("duplicate-message-start.chunks.txt", "spliced-message-start.chunks.txt"):
            # Deliberately broken upstream streams (README, caveats): the translator refuses.
            return Case(rel, (rel,), "anthropic", "broken_stream",
                        reads=lambda: [_sse(_lines(ROOT / rel), named=True, done=False)])
        if name.endswith(".chunks.txt"):
            # Some files hold the streams of several steps one after another (a message_start
            # after a message_stop): each is its own response.
            def messages(rel=rel):
                groups: List[List[str]] = []
                after_stop = True
                for ln in _lines(ROOT / rel):
                    kind = json.loads(ln)["type"]
                    if kind == "message_start" and after_stop:
                        groups.append([])
                    after_stop = kind == "message_stop"
                    groups[-1].append(ln)
                return [([_sse(g, named=True, done=False)],
                         _anthropic_stream([json.loads(x) for x in g])) for g in groups]
            return Case(rel, (rel,), "anthropic", "stream", messages=messages)
        if name.endswith(".json"):
            # anthropic-web-fetch-tool.error.json is a 200 answer whose web fetch failed.
            return Case(rel, (rel,), "anthropic", "body", facts=lambda: _anthropic_body(_json(rel)))
    if rel.startswith(VERCEL + "google/src/__fixtures__/"):
        vertex = "vertex" in name
        dialect = "vertex" if vertex else "gemini"
        opts = {"project": "p"} if vertex else None
        if name == "google-429-retry-info.json":
            return Case(rel, (rel,), dialect, "error_body", options=opts)
        if name.endswith(".chunks.txt"):
            return Case(rel, (rel,), dialect, "stream", options=opts,
                        reads=lambda: [_sse(_lines(ROOT / rel), named=False, done=False)],
                        facts=lambda: _gemini_elements([json.loads(x) for x in _lines(ROOT / rel)]))
        if name.endswith(".json"):
            return Case(rel, (rel,), dialect, "body", options=opts,
                        facts=lambda: _gemini_elements([_json(rel)]))
    if rel.startswith(VERCEL + "amazon-bedrock/src/__fixtures__/"):
        if name.endswith(".chunks.txt"):
            # vercel kept the decoded events ({"<eventType>": payload} per line): framed again
            # here as the binary EventStream Bedrock sends.
            def reads(rel=rel):
                out = b""
                for ln in _lines(ROOT / rel):
                    (kind, payload), = json.loads(ln).items()
                    out += _eventstream_message(kind, json.dumps(payload).encode())
                return [out]

            def facts(rel=rel):
                return _bedrock_events([next(iter(json.loads(ln).items()))
                                        for ln in _lines(ROOT / rel)])
            return Case(rel, (rel,), "bedrock", "stream", reads=reads, facts=facts)
        if name.endswith(".json"):
            return Case(rel, (rel,), "bedrock", "body", facts=lambda: _bedrock_body(_json(rel)))
    if rel.startswith(VERCEL + "cohere/src/__fixtures__/"):
        if name.endswith(".chunks.txt"):
            return Case(rel, (rel,), "cohere", "stream",
                        reads=lambda: [_sse(_lines(ROOT / rel), named=True, done=False)],
                        facts=lambda: _cohere_stream([json.loads(x) for x in _lines(ROOT / rel)]))
        if name.endswith(".json"):
            return Case(rel, (rel,), "cohere", "body", facts=lambda: _cohere_body(_json(rel)))
    # ---- Kong ----
    if not rel.startswith(KONG):
        return None
    k = rel[len(KONG):]
    m = re.fullmatch(r"(openai|anthropic|cohere|gemini|mistral)/llm-v1-chat/responses/(.+)", k)
    if m:
        provider, file = m.groups()
        dialect = {"mistral": "openai"}.get(provider, provider)
        if file in ("bad_request.json", "unauthorized.json", "internal_server_error.html",
                    "bad_upstream_response.json"):
            return Case(rel, (rel,), dialect, "error_body")
        if provider == "cohere":  # Kong's Cohere fixtures are the v1 API
            return Case(rel, (rel,), dialect, "refused_body", error_text="v1")
        reader = {"openai": _openai_body, "anthropic": _anthropic_body,
                  "gemini": lambda b: _gemini_elements([b])}[dialect]
        return Case(rel, (rel,), dialect, "body", facts=lambda: reader(_json(rel)))
    m = re.fullmatch(r"(openai|anthropic|azure|cohere|gemini|mistral)/request-transformer/"
                     r"(response-[^/]+\.json)", k)
    if m:
        provider = m.group(1)
        # Kong's mistral fixture here is an Ollama-native body (Mistral served by Ollama).
        dialect = {"azure": "azure_openai", "mistral": "ollama"}.get(provider, provider)
        if provider == "cohere":
            return Case(rel, (rel,), "cohere", "refused_body", error_text="v1")
        reader = {"openai": _openai_body, "azure_openai": _openai_body,
                  "anthropic": _anthropic_body, "ollama": _ollama_body,
                  "gemini": lambda b: _gemini_elements([b])}[dialect]
        return Case(rel, (rel,), dialect, "body", facts=lambda: reader(_json(rel)))
    m = re.fullmatch(r"unit/real-responses/(.+)/llm-v1-chat\.json", k)
    if m:
        provider = m.group(1)
        dialect = {"azure": "azure_openai", "llama2/ollama": "ollama", "mistral/ollama": "ollama",
                   "mistral/openai": "openai"}.get(provider, provider)
        if dialect == "cohere":
            return Case(rel, (rel,), "cohere", "refused_body", error_text="v1")
        reader = {"openai": _openai_body, "azure_openai": _openai_body,
                  "anthropic": _anthropic_body, "ollama": _ollama_body, "bedrock": _bedrock_body,
                  "gemini": lambda b: _gemini_elements([b])}.get(dialect)
        if reader is None:
            return None
        return Case(rel, (rel,), dialect, "body", facts=lambda: reader(_json(rel)))
    if k == "unit/real-stream-frames/openai/llm-v1-chat.txt":
        # One captured frame ("data: {...}"), no finish and no [DONE].
        return Case(rel, (rel,), "openai", "stream", reads=lambda: [_read(rel)],
                    facts=lambda: _openai_stream([json.loads(x) for x in _sse_payloads(_read(rel))]))
    if re.fullmatch(r"unit/streaming-chunk-formats/text-event-stream/.+", k):
        # expected-output.json is Kong's de-framing of input.bin: covered by reading input.bin.
        d = KONG + "unit/streaming-chunk-formats/text-event-stream/"
        return Case(d + "input.bin", (d + "input.bin", d + "expected-output.json"), "openai", "stream",
                    reads=lambda: [_read(d + "input.bin")],
                    facts=lambda: _openai_stream([json.loads(x) for x in _sse_payloads(_read(d + "input.bin"))
                                                  if x != "[DONE]"]))
    if re.fullmatch(r"unit/streaming-chunk-formats/aws/.+", k):
        d = KONG + "unit/streaming-chunk-formats/aws/"
        return Case(d + "input.bin", (d + "input.bin", d + "expected-output.json"), "bedrock", "stream",
                    reads=lambda: [_read(d + "input.bin")],
                    facts=lambda: _bedrock_events([(kind, p) for _, kind, p in
                                                   _eventstream_events(_read(d + "input.bin"))]))
    if re.fullmatch(r"bedrock/chunks/chunk-[123]\.txt", k):
        # Three network reads of one ConverseStream, each base64 of the bytes received.
        d = KONG + "bedrock/chunks/"
        files = tuple(f"{d}chunk-{i}.txt" for i in (1, 2, 3))
        reads = lambda: [base64.b64decode(_read(f)) for f in files]  # noqa: E731
        return Case(d, files, "bedrock", "stream", reads=reads,
                    facts=lambda: _bedrock_events([(kind, p) for _, kind, p in
                                                   _eventstream_events(b"".join(reads()))]))
    m = re.fullmatch(r"unit/streaming-chunk-formats/(partial-json-[a-z-]+)/.+", k)
    if m:
        d = KONG + f"unit/streaming-chunk-formats/{m.group(1)}/"
        names = sorted(p.name for p in (ROOT / d).iterdir())
        files = tuple(d + n for n in names)
        inputs = [d + n for n in names if n.startswith("input")]
        if m.group(1) == "partial-json-end":
            # A capture that starts between two elements (","): not a stream a reader can
            # start on.
            return Case(d, files, "gemini", "broken_stream", options={"stream_framing": "json_array"},
                        reads=lambda: [_read(f) for f in inputs])

        def facts(inputs=inputs):
            body = b"".join(_read(f) for f in inputs).decode()
            return _gemini_elements(json.loads(body + "]"))  # cut before the array's end
        return Case(d, files, "gemini", "truncated_stream", options={"stream_framing": "json_array"},
                    reads=lambda: [_read(f) for f in inputs], facts=facts)
    return None


def _all_files() -> List[str]:
    return sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file())


def _excluded(rel: str) -> Optional[str]:
    for pattern, reason in EXCLUDED:
        if re.fullmatch(pattern, rel):
            return reason
    return None


def _cases() -> List[Case]:
    cases: Dict[str, Case] = {}
    for rel in _all_files():
        if _excluded(rel):
            continue
        case = _classify(rel)
        if case is not None:
            cases.setdefault(case.id, case)
    return list(cases.values())


_HAVE_FIXTURES = ROOT.is_dir()
_SKIP = pytest.mark.skip(reason=f"provider fixtures not found at {ROOT}")
CASES = _cases() if _HAVE_FIXTURES else []


def _params(kinds):
    if not _HAVE_FIXTURES:
        return [pytest.param(None, marks=_SKIP, id="no-fixtures")]
    out = []
    for c in CASES:
        if c.kind in kinds:
            out.append(pytest.param(c, id=f"{c.dialect}:{c.id}"))
    return out


# ---------------------------------------------------------------------------------------
# Checks.

def _check_against_recording(got: Facts, want: Facts, case: Case) -> None:
    assert got.text == want.text
    assert got.reasoning == want.reasoning
    assert [c.name for c in got.calls] == [c.name for c in want.calls]
    for g, w in zip(got.calls, want.calls):
        assert _args_equal(g.arguments, w.arguments), (g.arguments, w.arguments)
        if w.arguments and w.streamed:
            # Streamed fragments are passed on as they came: the same text, byte for byte.
            assert g.arguments == w.arguments
    assert got.finish == want.finish
    if want.usage is None:
        assert got.usage in (None, (0, 0, 0)), "usage the recording does not have"
    else:
        assert got.usage == want.usage
    if want.model is not None:
        assert got.model == want.model


def _validate_completion(raw: str):
    parsed = openai_chat.ChatCompletion.model_validate_json(raw, strict=True)
    assert parsed.object == "chat.completion"
    assert parsed.choices, "no choices"
    return parsed


def _facts_of_completion(parsed) -> Facts:
    choice = next(c for c in parsed.choices if c.index == 0)
    msg = choice.message
    extra = msg.model_extra or {}
    return Facts(
        text=msg.content or "",
        reasoning=extra.get("reasoning_content") or extra.get("reasoning") or "",
        calls=[Call(t.function.name, t.function.arguments) for t in msg.tool_calls or []],
        finish=choice.finish_reason,
        usage=((parsed.usage.prompt_tokens, parsed.usage.completion_tokens,
                parsed.usage.total_tokens) if parsed.usage else None),
        model=parsed.model)


def _run_stream(case: Case, pieces: List[bytes]) -> Tuple[bytes, Optional[str]]:
    t = modeenvoy.StreamTranslator(case.dialect, "openai", source_options=case.options)
    out = b""
    try:
        for piece in pieces:
            out += t.feed(piece)
        out += t.finish()
    except modeenvoy.Error as err:
        # What the failing call produced before the error comes with it.
        return out + err.partial_output, f"{err.code} {err.status_code} {err.message}"
    return out, None


def _splits(case: Case, reads: List[bytes]) -> Dict[str, List[bytes]]:
    whole = b"".join(reads)
    rng = random.Random(case.id)  # seeded: the same pieces every run
    pieces, i = [], 0
    while i < len(whole):
        n = rng.randint(1, 97)
        pieces.append(whole[i:i + n])
        i += n
    return {"as recorded": reads, "whole": [whole],
            "byte by byte": [whole[i:i + 1] for i in range(len(whole))], "random": pieces}


def _translated_stream(case: Case, reads: Optional[List[bytes]] = None
                       ) -> Tuple[bytes, Optional[str]]:
    """The output, after checking that every split of the input gives the same: the same
    bytes, and the same error if any (a raising call's output before the error is its
    partial_output)."""
    reads = case.reads() if reads is None else reads
    results = {name: _run_stream(case, pieces) for name, pieces in _splits(case, reads).items()}
    finest = results["byte by byte"]
    for name, (out, error) in results.items():
        assert error == finest[1], f"{name}: {error} != byte by byte: {finest[1]}"
        assert out == finest[0], f"{name} differs from byte by byte"
    return finest


def _chunks(out: bytes) -> Tuple[list, bool, List[dict]]:
    """(validated chunks, ended with [DONE], error payloads) of an OpenAI SSE body."""
    assert out == b"" or out.endswith(b"\n\n")
    chunks, errors, done = [], [], False
    for data in _sse_payloads(out):
        assert not done, "an event after [DONE]"
        if data == "[DONE]":
            done = True
            continue
        obj = json.loads(data)
        if "error" in obj:
            errors.append(obj["error"])
            continue
        chunk = openai_chat.ChatCompletionChunk.model_validate_json(data, strict=True)
        assert chunk.object == "chat.completion.chunk"
        chunks.append(chunk)
    return chunks, done, errors


def _facts_of_chunks(chunks) -> Facts:
    f = Facts()
    calls: Dict[int, Call] = {}
    for ch in chunks:
        f.model = ch.model
        if ch.usage is not None:
            assert f.usage is None, "more than one usage chunk"
            assert ch.choices == [], "usage on a chunk with choices"
            f.usage = (ch.usage.prompt_tokens, ch.usage.completion_tokens, ch.usage.total_tokens)
        for c in ch.choices:
            if c.index != 0:
                continue
            d = c.delta
            extra = d.model_extra or {}
            f.text += d.content or ""
            f.reasoning += extra.get("reasoning_content") or extra.get("reasoning") or ""
            for t in d.tool_calls or []:
                if t.index not in calls:
                    assert t.id, "a tool call's first delta carries its id"
                    assert t.function is not None and t.function.name, "and its name"
                    calls[t.index] = Call(t.function.name, "")
                if t.function is not None and t.function.arguments:
                    calls[t.index].arguments += t.function.arguments
            if c.finish_reason is not None:
                f.finish = c.finish_reason
    assert sorted(calls) == list(range(len(calls))), "tool-call indices are dense from 0"
    f.calls = [calls[k] for k in sorted(calls)]
    return f


# ---------------------------------------------------------------------------------------
# Tests.

def test_every_fixture_file_is_classified():
    if not _HAVE_FIXTURES:
        pytest.skip(f"provider fixtures not found at {ROOT}")
    unknown = [rel for rel in _all_files() if not _excluded(rel) and _classify(rel) is None]
    assert unknown == [], "fixtures no case reads and EXCLUDED does not name"


def test_every_exclusion_matches_a_file():
    if not _HAVE_FIXTURES:
        pytest.skip(f"provider fixtures not found at {ROOT}")
    files = _all_files()
    stale = [p for p, _ in EXCLUDED if not any(re.fullmatch(p, f) for f in files)]
    assert stale == []


@pytest.mark.parametrize("case", _params({"body"}))
def test_whole_answer_is_a_valid_chat_completion_saying_what_the_recording_says(case):
    body = _read(case.id)
    out = modeenvoy.translate_response(body, case.dialect, "openai", source_options=case.options)
    parsed = _validate_completion(json.dumps(out))
    _check_against_recording(_facts_of_completion(parsed), case.facts(), case)


@pytest.mark.parametrize("case", _params({"stream"}))
def test_stream_is_valid_chunks_identical_under_any_split_saying_what_the_recording_says(case):
    messages = case.messages() if case.messages else [(case.reads(), case.facts())]
    for reads, want in messages:
        out, error = _translated_stream(case, reads)
        assert error is None
        chunks, done, errors = _chunks(out)
        assert errors == [] and done, "a recorded answer ends with [DONE]"
        assert chunks
        _check_against_recording(_facts_of_chunks(chunks), want, case)


@pytest.mark.parametrize("case", _params({"error_body"}))
def test_error_recording_is_not_taken_for_an_answer(case):
    with pytest.raises(modeenvoy.Error) as err:
        modeenvoy.translate_response(_read(case.id), case.dialect, "openai",
                                     source_options=case.options)
    assert err.value.status_code >= 400


@pytest.mark.parametrize("case", _params({"refused_body"}))
def test_body_of_an_api_version_the_dialect_does_not_speak_is_refused_by_name(case):
    with pytest.raises(modeenvoy.Error) as err:
        modeenvoy.translate_response(_read(case.id), case.dialect, "openai",
                                     source_options=case.options)
    assert case.error_text in err.value.message


@pytest.mark.parametrize("case", _params({"broken_stream"}))
def test_broken_stream_fails_the_same_way_under_any_split(case):
    out, error = _translated_stream(case)
    assert error is not None, "a broken stream must not pass as an answer"
    chunks, done, _ = _chunks(out)
    assert not done, "no [DONE] after a failed stream"


@pytest.mark.parametrize("case", _params({"truncated_stream"}))
def test_truncated_capture_gives_valid_chunks_then_fails(case):
    """Kong's captures of a Gemini JSON-array stream stop before the closing "]": what the
    elements said comes out as valid chunks, then the stream fails (cut short), never [DONE]."""
    out, error = _translated_stream(case)
    assert error is not None
    chunks, done, _ = _chunks(out)
    assert not done
    got, want = _facts_of_chunks(chunks), case.facts()
    assert got.text == want.text
    assert got.finish == want.finish
