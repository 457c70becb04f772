"""The emulator's OpenAI Responses API (POST /v1/responses), proven with the official openai
SDK as the client (`client.responses.create`, whole and streamed) and compared key by key,
with each value's JSON type, against recorded OpenAI Responses traffic (shared provider
fixtures, vercel-ai openai/src/responses).

Expected values come from the emulator's documented rules (examples/emulator/README.md: the
answer echoes the last user message; `call <tool> {json}` lines make calls; scripts; usage
in words with --usage-counter words) and from OpenAI's API reference, not from the emulator's
code.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from conftest import EMULATOR, Process, binary, http_json, require_module, shared_data_dir

openai = require_module("openai")

RECORDED = (shared_data_dir() /
            "provider-fixtures/vercel-ai/packages/openai/src/responses/__fixtures__")
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}
HEX50 = re.compile(r"[0-9a-f]{50}")


@pytest.fixture(scope="module")
def emu():
    p = Process([str(binary(EMULATOR)), "--port", "0", "--usage-counter", "words"])
    yield p
    assert p.stop() == 0


@pytest.fixture(scope="module")
def client(emu):
    return openai.OpenAI(base_url=f"{emu.base_url}/v1", api_key="sk-test", max_retries=0,
                         timeout=20)


def script(**fields) -> dict:
    return {"x-emulator-script": json.dumps(fields)}


def raw(emu, body: dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(f"{emu.base_url}/v1/responses", data=json.dumps(body).encode(),
                                 method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def sse(body: bytes) -> list[dict]:
    """The events of a Responses stream; each `event:` line must name its data's type."""
    events = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and \
            lines[1].startswith("data: "), block
        data = json.loads(lines[1].removeprefix("data: "))
        assert data["type"] == lines[0].removeprefix("event: ")
        events.append(data)
    return events


# --- the SDK as client -------------------------------------------------------------------

def test_text_whole(client):
    r = client.responses.create(model="gpt-4o-mini", instructions="Be brief.",
                                input="What is 1 + 1?")
    assert isinstance(r, openai.types.responses.Response)
    assert r.id.startswith("resp_") and HEX50.fullmatch(r.id.removeprefix("resp_"))
    assert r.object == "response" and r.status == "completed" and r.model == "gpt-4o-mini"
    assert isinstance(r.created_at, (int, float)) and r.created_at > 1_600_000_000
    assert [o.type for o in r.output] == ["message"]
    (msg,) = r.output
    assert msg.id.startswith("msg_") and msg.role == "assistant" and msg.status == "completed"
    assert [(p.type, p.text) for p in msg.content] == [("output_text", "What is 1 + 1?")]
    assert r.output_text == "What is 1 + 1?"
    assert r.instructions == "Be brief." and r.previous_response_id is None
    # Words: "Be brief." (2) + the input (5); the echo is 5.
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (7, 5, 12)
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.usage.output_tokens_details.reasoning_tokens == 0


def test_text_streamed(client):
    events = list(client.responses.create(model="gpt-4o-mini", input="one two three",
                                          stream=True))
    types = [e.type for e in events]
    assert types == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * 3,
                     "response.output_text.done", "response.content_part.done",
                     "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == \
        "one two three"
    assert events[0].response.status == "in_progress" and events[0].response.usage is None
    final = events[-1].response
    assert final.id == events[0].response.id and final.status == "completed"
    assert final.output_text == "one two three" and final.usage.output_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
def test_function_call(client, stream):
    args = dict(model="gpt-4o-mini", tools=[WEATHER],
                input=[{"role": "user", "content": 'call get_weather {"city": "Paris"}'}])
    if stream:
        events = list(client.responses.create(**args, stream=True))
        deltas = "".join(e.delta for e in events
                         if e.type == "response.function_call_arguments.delta")
        (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert deltas == done.arguments
        added = [e.item for e in events if e.type == "response.output_item.added"]
        assert [(i.type, i.status, i.arguments) for i in added] == \
            [("function_call", "in_progress", "")]
        r = events[-1].response
    else:
        r = client.responses.create(**args)
    (call,) = r.output
    assert call.type == "function_call" and call.status == "completed"
    assert call.id.startswith("fc_") and re.fullmatch(r"call_[A-Za-z0-9]{24}", call.call_id)
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    # The result goes back as a function_call_output item answering the call's call_id.
    follow = client.responses.create(model="gpt-4o-mini", tools=[WEATHER], input=[
        *args["input"],
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}])
    assert follow.output_text == "sunny, 21 C"


def test_output_for_an_unknown_call_is_refused(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="gpt-4o-mini", input=[
            {"role": "user", "content": "hi"},
            {"type": "function_call_output", "call_id": "call_nowhere", "output": "x"}])
    assert err.value.body["message"] == \
        "No tool call found for function call output with call_id call_nowhere."


@pytest.mark.parametrize("stream", [False, True])
def test_scripted_reasoning_is_a_summary_before_the_message(client, stream):
    headers = script(reasoning="Add one and one.", reply="2")
    if stream:
        events = list(client.responses.create(model="o4-mini", input="1+1?", stream=True,
                                              extra_headers=headers))
        summary = "".join(e.delta for e in events
                          if e.type == "response.reasoning_summary_text.delta")
        assert summary == "Add one and one."
        r = events[-1].response
    else:
        r = client.responses.create(model="o4-mini", input="1+1?", extra_headers=headers)
    assert [o.type for o in r.output] == ["reasoning", "message"]
    assert [(s.type, s.text) for s in r.output[0].summary] == [("summary_text",
                                                                 "Add one and one.")]
    assert r.output_text == "2"
    assert r.usage.output_tokens_details.reasoning_tokens == 4
    assert r.usage.output_tokens == 5


@pytest.mark.parametrize("stream", [False, True])
def test_scripted_refusal(client, stream):
    headers = script(refusal="I can't help with that.")
    if stream:
        events = list(client.responses.create(model="gpt-4o-mini", input="x", stream=True,
                                              extra_headers=headers))
        assert "".join(e.delta for e in events if e.type == "response.refusal.delta") == \
            "I can't help with that."
        assert "response.output_text.delta" not in [e.type for e in events]
        r = events[-1].response
    else:
        r = client.responses.create(model="gpt-4o-mini", input="x", extra_headers=headers)
    (msg,) = r.output
    assert [(p.type, p.refusal) for p in msg.content] == [("refusal", "I can't help with that.")]


def test_max_output_tokens_makes_an_incomplete_response(client):
    r = client.responses.create(model="gpt-4o-mini", input="x", max_output_tokens=20,
                                extra_headers=script(reply_tokens=100))
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 20
    events = list(client.responses.create(model="gpt-4o-mini", input="x", max_output_tokens=20,
                                          stream=True, extra_headers=script(reply_tokens=100)))
    assert events[-1].type == "response.incomplete"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="gpt-4o-mini", input="x", max_output_tokens=5)
    assert err.value.body["param"] == "max_output_tokens"


def test_scripted_errors(client, emu):
    with pytest.raises(openai.RateLimitError) as err:
        client.responses.create(model="gpt-4o-mini", input="x",
                                extra_headers=script(error={"status": 429}))
    assert err.value.body["code"] == "rate_limit_exceeded"
    # Mid-stream: OpenAI's `error` event, then response.failed (recorded shape, below).
    stream = client.responses.create(
        model="gpt-4o-mini", input="one two three four", stream=True,
        extra_headers=script(interrupt={"after_chunks": 4,
                                        "error": {"status": 500, "code": "server_error"}}))
    seen = []
    with pytest.raises(openai.APIError):
        for e in stream:
            seen.append(e.type)
    assert seen == ["response.created", "response.in_progress", "response.output_item.added",
                    "response.content_part.added"]
    status, _, body = raw(emu, {"model": "m", "input": "a b", "stream": True}, script(
        interrupt={"after_chunks": 3, "error": {"status": 500, "code": "server_error"}}))
    events = sse(body)
    assert status == 200 and [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert [e["sequence_number"] for e in events] == list(range(5))
    assert events[-1]["response"]["error"]["code"] == "server_error"


def test_unknown_parameter_is_refused(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="gpt-4o-mini", input="x", extra_body={"messages": []})
    assert (err.value.body["param"], err.value.body["code"]) == ("messages", "unknown_parameter")


@pytest.mark.parametrize("stream", [False, True])
def test_hosted_web_search_answers_with_a_web_search_call(client, stream):
    args = dict(model="gpt-5-mini", input="tech news today", tools=[{"type": "web_search"}],
                include=["web_search_call.action.sources"])
    if stream:
        events = list(client.responses.create(**args, stream=True))
        types = [e.type for e in events]
        i = types.index("response.web_search_call.in_progress")
        assert types[i - 1:i + 4] == ["response.output_item.added",
                                      "response.web_search_call.in_progress",
                                      "response.web_search_call.searching",
                                      "response.web_search_call.completed",
                                      "response.output_item.done"]
        r = events[-1].response
    else:
        r = client.responses.create(**args)
    assert [o.type for o in r.output] == ["web_search_call", "message"]
    search = r.output[0]
    assert search.id.startswith("ws_") and search.status == "completed"
    assert search.action.type == "search" and search.action.query == "tech news today"
    assert [s.type for s in search.action.sources] == ["url"]
    assert r.output_text == "tech news today"
    # The tool echoed with the defaults OpenAI fills in.
    assert r.tools[0].type == "web_search" and r.tools[0].search_context_size == "medium"


def test_previous_response_id_chains_and_unknown_ids_are_400(client):
    first = client.responses.create(model="gpt-4o-mini", input="one two")
    second = client.responses.create(model="gpt-4o-mini", input="three",
                                     previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.id != first.id
    # The chained conversation is input again: the first turn's 2 + 2, then "three".
    assert second.usage.input_tokens == first.usage.total_tokens + 1
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="gpt-4o-mini", input="x",
                                previous_response_id="resp_unknown")
    assert err.value.body == {"message": "Previous response with id 'resp_unknown' not found.",
                              "type": "invalid_request_error",
                              "param": "previous_response_id",
                              "code": "previous_response_not_found"}
    unstored = client.responses.create(model="gpt-4o-mini", input="x", store=False)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4o-mini", input="y",
                                previous_response_id=unstored.id)


def test_a_call_of_the_previous_response_can_be_answered(client):
    first = client.responses.create(model="gpt-4o-mini", tools=[WEATHER],
                                    input='call get_weather {"city": "Oslo"}')
    (call,) = first.output
    r = client.responses.create(model="gpt-4o-mini", tools=[WEATHER],
                                previous_response_id=first.id,
                                input=[{"type": "function_call_output", "call_id": call.call_id,
                                        "output": "snow"}])
    assert r.output_text == "snow"


# --- compared with recorded OpenAI traffic -------------------------------------------------

def need(name: str) -> Path:
    path = RECORDED / name
    if not path.exists():
        pytest.skip(f"fixture {path} missing (shared provider fixtures)")
    return path


def recorded_events(name: str) -> list[dict]:
    return [json.loads(line) for line in need(name).read_text().splitlines() if line]


def jtype(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(v)]


def shape(value, prefix="", skip=()) -> dict[str, set[str]]:
    """Every key path ('output[].content[].text') with the JSON types seen there; array
    elements merge. Paths under `skip` (top-level keys) are left out."""
    out: dict[str, set[str]] = {}

    def walk(v, p):
        out.setdefault(p, set()).add(jtype(v))
        if isinstance(v, dict):
            for k, x in v.items():
                if not p and k in skip:
                    continue
                walk(x, f"{p}.{k}" if p else k)
        elif isinstance(v, list):
            for x in v:
                walk(x, p + "[]")
    walk(value, prefix)
    return out


def assert_same_shape(ours, recorded, skip=(), newer=()):
    """The same key paths, and the same JSON type at each path where both sides hold a
    value (a null on one side is a nullable member holding nothing: e.g. `instructions`).
    `newer`: paths only ours has because the recording predates them."""
    a, b = shape(ours, skip=skip), shape(recorded, skip=skip)
    assert set(a) - set(newer) == set(b), (sorted(set(a) - set(b)), sorted(set(b) - set(a)))
    for path in b:
        x, y = a[path] - {"null"}, b[path] - {"null"}
        assert not x or not y or x == y, (path, a[path], b[path])


def whole(emu, body: dict, headers: dict | None = None) -> dict:
    status, hdrs, data = raw(emu, body, headers)
    assert status == 200 and hdrs["content-type"] == "application/json", data
    return json.loads(data)


def streamed(emu, body: dict, headers: dict | None = None) -> list[dict]:
    status, hdrs, data = raw(emu, {**body, "stream": True}, headers)
    assert status == 200 and hdrs["content-type"] == "text/event-stream; charset=utf-8"
    return sse(data)


def by_type(events: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in events:
        out.setdefault(e["type"], []).append(e)
    return out


def items(events, kind, event="response.output_item.done"):
    return [e for e in events if e["type"] == event and e["item"]["type"] == kind]


def test_whole_text_response_matches_the_recording(emu):
    recorded = json.loads(need("openai-shell-local-multiturn.1.json").read_text())
    ours = whole(emu, {"model": "gpt-5.2", "input": "Which architecture is this?"})
    assert list(ours) == list(recorded)  # the same members, in the same order
    assert_same_shape(ours, recorded, skip=("tools",))
    assert list(ours["output"][0]) == list(recorded["output"][0])


def test_whole_function_call_matches_the_recording(emu):
    recorded = json.loads(need("openai-client-tool-search.2.json").read_text())
    ours = whole(emu, {"model": "gpt-5.4", "tools": [{**WEATHER, "strict": True}],
                       "input": 'call get_weather {"city": "Paris"}'})
    assert list(ours) == list(recorded)
    assert_same_shape(ours, recorded, skip=("tools",))
    assert list(ours["output"][0]) == list(recorded["output"][0])
    (rec_tool,) = [t for t in recorded["tools"] if t.get("name") == "get_weather" and
                   t["type"] == "function"]
    assert set(ours["tools"][0]) == set(rec_tool)  # echoed with OpenAI's default strict


def test_whole_web_search_call_matches_the_recording(emu):
    recorded = json.loads(need("openai-web-search-tool.1.json").read_text())
    ours = whole(emu, {"model": "gpt-5-mini", "input": "tech news", "tools": [{"type":
                                                                            "web_search"}],
                       "include": ["web_search_call.action.sources"]})
    rec_search = [o for o in recorded["output"]
                  if o["type"] == "web_search_call" and o["action"]["type"] == "search"]
    assert_same_shape(ours["output"][0], rec_search[0])
    assert_same_shape(ours["tools"], recorded["tools"])


def test_text_stream_matches_the_recording(emu):
    recorded = recorded_events("openai-shell-local-multiturn.1.chunks.txt")
    ours = streamed(emu, {"model": "gpt-5.2", "input": "Which architecture is this?"})

    def collapsed(events):  # the type sequence, runs of deltas as one
        seq = []
        for e in events:
            if not seq or seq[-1] != e["type"]:
                seq.append(e["type"])
        return seq
    assert collapsed(ours) == collapsed(recorded)
    rec, our = by_type(recorded), by_type(ours)
    for kind in our:
        for e in our[kind]:
            assert list(e) == list(rec[kind][0]), kind  # member order too
            assert_same_shape(e, rec[kind][0], skip=("response",))
    for kind in ["response.created", "response.in_progress", "response.completed"]:
        assert_same_shape(our[kind][0]["response"], rec[kind][0]["response"], skip=("tools",))
        assert list(our[kind][0]["response"]) == list(rec[kind][0]["response"])


def test_function_call_stream_matches_the_recording(emu):
    recorded = recorded_events("openai-client-tool-search.2.chunks.txt")
    ours = streamed(emu, {"model": "gpt-5.4", "tools": [WEATHER],
                          "input": 'call get_weather {"city": "Paris"}'})
    assert [e["type"] for e in ours if "delta" not in e["type"]] == \
        [e["type"] for e in recorded if "delta" not in e["type"]]
    rec, our = by_type(recorded), by_type(ours)
    for kind in our:
        for e in our[kind]:
            assert list(e) == list(rec[kind][0]), kind
            assert_same_shape(e, rec[kind][0], skip=("response",))


def test_reasoning_summary_events_match_the_recording(emu):
    recorded = recorded_events("openai-reasoning-encrypted-content.1.chunks.txt")
    ours = streamed(emu, {"model": "o4-mini", "input": "12 plus 7"},
                    script(reasoning="Adding twelve and seven.", reply="19"))
    rec, our = by_type(recorded), by_type(ours)
    kinds = [k for k in our if k.startswith("response.reasoning_summary")]
    assert sorted(kinds) == ["response.reasoning_summary_part.added",
                             "response.reasoning_summary_part.done",
                             "response.reasoning_summary_text.delta",
                             "response.reasoning_summary_text.done"]
    for kind in kinds:
        assert set(our[kind][0]) == set(rec[kind][0]), kind
        assert_same_shape(our[kind][0], rec[kind][0])
    # The reasoning item without encrypted content (asked for by `include` in the
    # recording): as the web search recording's items, which did not ask.
    web = recorded_events("openai-web-search-tool.1.chunks.txt")
    (ours_rs,) = items(ours, "reasoning")
    assert set(ours_rs["item"]) == set(items(web, "reasoning")[0]["item"])
    assert_same_shape(ours_rs["item"]["summary"],
                      items(recorded, "reasoning")[0]["item"]["summary"])


def test_web_search_stream_events_match_the_recording(emu):
    recorded = recorded_events("openai-web-search-tool.1.chunks.txt")
    ours = streamed(emu, {"model": "gpt-5-mini", "input": "tech news",
                          "tools": [{"type": "web_search"}]})
    rec, our = by_type(recorded), by_type(ours)
    for phase in ["in_progress", "searching", "completed"]:
        kind = f"response.web_search_call.{phase}"
        assert set(our[kind][0]) == set(rec[kind][0])
        assert_same_shape(our[kind][0], rec[kind][0])
    added = items(ours, "web_search_call", "response.output_item.added")[0]["item"]
    assert added == {"id": added["id"], "type": "web_search_call", "status": "in_progress"}
    assert set(added) == set(items(recorded, "web_search_call",
                                   "response.output_item.added")[0]["item"])


def test_failed_stream_matches_the_recording(emu):
    recorded = recorded_events("openai-error.1.chunks.txt")
    ours = streamed(emu, {"model": "gpt-5-nano", "input": "x"}, script(interrupt={
        "after_chunks": 2, "error": {"status": 429, "type": "insufficient_quota",
                                     "code": "insufficient_quota"}}))
    assert [e["type"] for e in ours] == [e["type"] for e in recorded]
    for o, r in zip(ours[2:], recorded[2:]):
        assert_same_shape(o, r, skip=("response",))
    # Recorded in 2025-11, before the response object gained three members (in every
    # recording since: openai-client-tool-search.2.json and the tests above).
    assert_same_shape(ours[-1]["response"], recorded[-1]["response"], skip=("tools",),
                      newer=("completed_at", "frequency_penalty", "presence_penalty"))
    assert ours[-1]["response"]["status"] == "failed"
    assert ours[2]["error"]["code"] == "insufficient_quota"


def test_error_body_matches_the_recording(emu):
    recorded = json.loads(need("openai-error.1.json").read_text())
    status, body = http_json("POST", f"{emu.base_url}/v1/responses",
                             json.dumps({"model": "m", "input": "x"}),
                             {"Content-Type": "application/json",
                              **script(error={"status": 429, "type": "insufficient_quota",
                                              "code": "insufficient_quota"})})
    assert status == 429
    assert list(body["error"]) == list(recorded["error"])
    assert_same_shape(body, recorded)
