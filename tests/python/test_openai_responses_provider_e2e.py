"""Issue 11, the `openai_responses` provider type end to end: modeenvoy-gateway calling the
emulator's OpenAI Responses API (POST /v1/responses, examples/emulator/
openai_responses_dialect.cc) for clients of every ingress:

1. the openai SDK's `client.chat.completions.create` (unified -> a Responses request), whole
   and streamed, tool calls round trip (the emulator refuses a function_call_output whose
   call_id no function_call in the input carries, as OpenAI does), reasoning and refusals;
2. `client.responses.create` against a route whose provider is `openai_responses`, whole and
   streamed, a hosted `web_search` tool reaching the provider (the emulator answers with a
   `web_search_call` item before the message) and refused with a 400 on an `openai` route;
3. a conversation chained by `previous_response_id` under the documented id rule
   (docs/providers.md, "One id rule for every provider, OpenAI included"): the client holds
   the gateway's ids, the chain is re-sent as input upstream, no `previous_response_id`
   reaches the provider, and an id the provider itself issued is unknown to the gateway;
4. the anthropic SDK's `/v1/messages` to the same route.

Expected values come from the emulator's documented rules (examples/emulator/README.md: the
answer echoes the last user or tool message; `call <tool> {json}` lines make calls; scripts;
usage counted in words with --usage-counter words) and from the API references, not from the
gateway's code.
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import (EMULATOR, GATEWAY, Process, binary, emulator_requests, http_json,
                      require_module)

openai = require_module("openai")
anthropic = require_module("anthropic")

CLIENT_KEY = "sk-responses-provider"
MODEL = "via-responses"  # provider type openai_responses
UPSTREAM_MODEL = "gpt-5-mini"
CHAT_WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
RESP_WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather",
                "parameters": CHAT_WEATHER["function"]["parameters"]}


@pytest.fixture(scope="module")
def emulator():
    p = Process([str(binary(EMULATOR)), "--port", "0", "--usage-counter", "words"])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def gateway(emulator, tmp_path_factory):
    emu = emulator.base_url
    config = {
        "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
        "filters": [{"type": "api_key_auth",
                     "config": {"keys": [{"key": CLIENT_KEY, "name": "tester"}]}}],
        "providers": {
            "resp": {"type": "openai_responses", "base_url": f"{emu}/v1", "api_key": "sk-up"},
            "oai": {"type": "openai", "base_url": f"{emu}/v1", "api_key": "sk-up"},
        },
        "models": {
            MODEL: {"provider": "resp", "upstream_model": UPSTREAM_MODEL},
            "via-openai": {"provider": "oai", "upstream_model": "gpt-4o-mini"},
        },
        "context": {"store": {"type": "memory"}},
    }
    path = tmp_path_factory.mktemp("gw-responses-provider") / "gateway.json"
    path.write_text(json.dumps(config))
    p = Process([str(binary(GATEWAY)), "--config", str(path), "--port", "0"])
    yield p
    p.stop()


def oai(gateway):
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=CLIENT_KEY, max_retries=0,
                         timeout=30)


def upstream(emulator) -> dict:
    """The body of the last request the emulator's Responses endpoint received."""
    recent = emulator_requests(emulator, lambda t: t == "/v1/responses")
    assert recent, "no request reached POST /v1/responses"
    return json.loads(recent[-1]["body"])


def requests_served(emulator) -> int:
    """How many provider requests the emulator has answered (its stats counter; "recent"
    keeps only the last 32)."""
    status, stats = http_json("GET", f"{emulator.base_url}/emulator/stats")
    assert status == 200
    return stats["requests"]


def input_texts(body: dict) -> list[tuple[str, str]]:
    """(role or item type, text) of each upstream input item."""
    out = []
    for item in body["input"]:
        if item.get("type", "message") == "message":
            c = item["content"]
            text = c if isinstance(c, str) else "".join(p.get("text", "") for p in c)
            out.append((item["role"], text))
        elif item["type"] == "function_call_output":
            out.append(("function_call_output", item["output"]))
        else:
            out.append((item["type"], item.get("arguments", "")))
    return out


def directive(**script) -> str:
    return "@emulator " + json.dumps(script)


# --- 1. Chat Completions clients -> a Responses upstream ----------------------------------

def test_chat_whole(gateway, emulator):
    r = oai(gateway).chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "hello there friend"}])
    assert r.object == "chat.completion"
    (choice,) = r.choices
    assert choice.message.content == "hello there friend" and choice.finish_reason == "stop"
    # Words: "Be brief." and the user's three; the echo is three.
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (5, 3, 8)
    body = upstream(emulator)
    assert body["model"] == UPSTREAM_MODEL and "messages" not in body
    assert input_texts(body) == [("system", "Be brief."), ("user", "hello there friend")]


def test_chat_streamed(gateway, emulator):
    chunks = list(oai(gateway).chat.completions.create(
        model=MODEL, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three four"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 4 and chunks[-1].usage.prompt_tokens == 4
    assert upstream(emulator)["stream"] is True


@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_call_round_trip(gateway, emulator, stream):
    c = oai(gateway)
    first = [{"role": "user", "content": 'call get_weather {"city": "Paris"}'}]
    if stream:
        calls: dict[int, dict] = {}
        finish = None
        for chunk in c.chat.completions.create(model=MODEL, messages=first,
                                               tools=[CHAT_WEATHER], stream=True):
            if not chunk.choices:
                continue
            finish = chunk.choices[0].finish_reason or finish
            for d in chunk.choices[0].delta.tool_calls or []:
                acc = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                acc["id"] = d.id or acc["id"]
                if d.function:
                    acc["name"] += d.function.name or ""
                    acc["arguments"] += d.function.arguments or ""
        (call,) = calls.values()
        call_id, name, arguments = call["id"], call["name"], call["arguments"]
    else:
        r = c.chat.completions.create(model=MODEL, messages=first, tools=[CHAT_WEATHER])
        finish = r.choices[0].finish_reason
        (tc,) = r.choices[0].message.tool_calls
        call_id, name, arguments = tc.id, tc.function.name, tc.function.arguments
    assert finish == "tool_calls"
    # The provider's call_id (OpenAI's call_ + 24 characters) is the client's tool call id.
    assert re.fullmatch(r"call_[A-Za-z0-9]{24}", call_id)
    assert name == "get_weather" and json.loads(arguments) == {"city": "Paris"}
    assert upstream(emulator)["tools"] == [{"type": "function", **{
        k: v for k, v in CHAT_WEATHER["function"].items()}}]
    # The result turn: the emulator answers it only if the function_call_output's call_id
    # matches a function_call of the same input (else OpenAI's 400).
    r = c.chat.completions.create(model=MODEL, tools=[CHAT_WEATHER], messages=[
        *first,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21 C"}])
    assert r.choices[0].message.content == "sunny, 21 C"
    items = upstream(emulator)["input"]
    assert [i["type"] for i in items[1:]] == ["function_call", "function_call_output"]
    assert items[1]["call_id"] == items[2]["call_id"] == call_id


def test_chat_reasoning_and_refusal(gateway):
    c = oai(gateway)
    r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": (
        "1+1?\n" + directive(reasoning="Add one and one.", reply="2"))}])
    assert r.choices[0].message.content == "2"
    # The Responses reasoning summary, surfaced as the unified reasoning_content.
    assert r.choices[0].message.model_extra.get("reasoning_content") == "Add one and one."
    assert r.usage.completion_tokens_details.reasoning_tokens == 4
    r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": (
        "x\n" + directive(refusal="I can't help with that."))}])
    assert r.choices[0].message.refusal == "I can't help with that."


def test_chat_provider_error_keeps_its_status(gateway):
    with pytest.raises(openai.RateLimitError) as err:
        oai(gateway).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": (
            "x\n" + directive(error={"status": 429}))}])
    assert err.value.status_code == 429


def test_chat_max_tokens_below_the_responses_minimum_names_the_clients_field(gateway, emulator):
    before = requests_served(emulator)
    with pytest.raises(openai.BadRequestError) as err:
        oai(gateway).chat.completions.create(model=MODEL, max_tokens=5,
                                             messages=[{"role": "user", "content": "x"}])
    assert err.value.body["message"].startswith("max_tokens:")
    assert requests_served(emulator) == before


# --- 2. Responses clients on an openai_responses route ------------------------------------

def test_responses_whole(gateway, emulator):
    r = oai(gateway).responses.create(model=MODEL, instructions="Be brief.",
                                      input="hello there friend", temperature=0.5)
    assert r.status == "completed" and r.output_text == "hello there friend"
    assert [o.type for o in r.output] == ["message"]
    assert r.instructions == "Be brief." and r.temperature == 0.5
    assert (r.usage.input_tokens, r.usage.output_tokens) == (5, 3)
    # The gateway's id (resp_ + 32 hex digits), never the provider's (resp_ + 50).
    assert re.fullmatch(r"resp_[0-9a-f]{32}", r.id)
    body = upstream(emulator)
    assert body["model"] == UPSTREAM_MODEL and body["temperature"] == 0.5
    assert "store" not in body and "previous_response_id" not in body


def test_responses_streamed(gateway):
    events = list(oai(gateway).responses.create(model=MODEL, input="one two three four",
                                                stream=True))
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == \
        "one two three four"
    assert events[-1].response.usage.output_tokens == 4


@pytest.mark.parametrize("stream", [False, True])
def test_responses_function_call_round_trip(gateway, emulator, stream):
    c = oai(gateway)
    first = [{"role": "user", "content": 'call get_weather {"city": "Paris"}'}]
    if stream:
        events = list(c.responses.create(model=MODEL, input=first, tools=[RESP_WEATHER],
                                         stream=True))
        r = events[-1].response
    else:
        r = c.responses.create(model=MODEL, input=first, tools=[RESP_WEATHER])
    (call,) = [o for o in r.output if o.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    r2 = c.responses.create(model=MODEL, tools=[RESP_WEATHER], input=[
        *first,
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert r2.output_text == "sunny"


@pytest.mark.parametrize("stream", [False, True])
def test_hosted_web_search_reaches_the_provider(gateway, emulator, stream):
    args = dict(model=MODEL, input="tech news today",
                tools=[{"type": "web_search", "search_context_size": "low"}])
    if stream:
        events = list(oai(gateway).responses.create(**args, stream=True))
        assert events[-1].type == "response.completed"
        assert [e.sequence_number for e in events] == list(range(len(events)))
        r = events[-1].response
    else:
        r = oai(gateway).responses.create(**args)
    # The provider ran the search (its web_search_call item has no unified counterpart,
    # docs/providers.md) and answered; the client gets the message.
    assert r.status == "completed" and r.output_text == "tech news today"
    assert upstream(emulator)["tools"] == [{"type": "web_search", "search_context_size": "low"}]


def test_hosted_web_search_is_refused_on_an_openai_route(gateway, emulator):
    before = requests_served(emulator)
    with pytest.raises(openai.BadRequestError) as err:
        oai(gateway).responses.create(model="via-openai", input="tech news today",
                                      tools=[{"type": "web_search"}])
    assert err.value.body["message"].startswith("tools[0].type:")
    assert "openai_responses" in err.value.body["message"]
    assert requests_served(emulator) == before  # never sent


# OpenAI's recorded failure of a started Responses stream (vercel-ai openai-error.1.chunks.txt):
# response.created, response.in_progress, then an `error` event with type and code
# insufficient_quota (HTTP 429 when it is not streamed: openai-error.1.json), response.failed.
QUOTA = {"status": 429, "type": "insufficient_quota", "code": "insufficient_quota",
         "message": "You exceeded your current quota."}


def failed_stream(gateway, model: str, after: int) -> list:
    return list(oai(gateway).responses.create(
        model=model, stream=True, input="one two\n" + directive(
            interrupt={"after_chunks": after, "error": QUOTA})))


def test_quota_error_mid_stream_from_an_openai_provider_is_a_rate_limit(gateway):
    # The same error from a Chat Completions upstream, for comparison with the next test.
    events = failed_stream(gateway, "via-openai", 2)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "rate_limit_exceeded"


def test_quota_error_mid_stream_from_a_responses_provider_is_a_rate_limit(gateway):
    events = failed_stream(gateway, MODEL, 2)  # the recorded shape: created, in_progress
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "rate_limit_exceeded"


@pytest.mark.parametrize("model", [MODEL, "via-openai"])
def test_a_stream_failing_before_its_first_chunk_is_well_formed(gateway, model):
    try:
        events = failed_stream(gateway, model, 0)
    except openai.RateLimitError:
        return  # an HTTP error before any event is as good: nothing had been streamed
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.failed"
    assert {e.response.id for e in events} == {events[0].response.id}
    assert re.fullmatch(r"resp_[0-9a-f]{32}", events[0].response.id)


# --- 3. previous_response_id: the gateway's ids, the chain re-sent ------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_chain_by_previous_response_id_follows_the_one_id_rule(gateway, emulator, stream):
    c = oai(gateway)
    first = c.responses.create(model=MODEL, input="one two")
    assert re.fullmatch(r"resp_[0-9a-f]{32}", first.id)
    if stream:
        events = list(c.responses.create(model=MODEL, input="three",
                                         previous_response_id=first.id, stream=True))
        second = events[-1].response
    else:
        second = c.responses.create(model=MODEL, input="three", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert re.fullmatch(r"resp_[0-9a-f]{32}", second.id) and second.id != first.id
    assert second.output_text == "three"
    # Upstream: the stored turn re-sent as input, no previous_response_id (OpenAI's state
    # is not used), so the emulator counts exactly these words.
    body = upstream(emulator)
    assert "previous_response_id" not in body
    assert input_texts(body) == [("user", "one two"), ("assistant", "one two"),
                                 ("user", "three")]
    assert second.usage.input_tokens == 5
    third = c.responses.create(model=MODEL, input="four", previous_response_id=second.id)
    assert third.output_text == "four"
    assert input_texts(upstream(emulator)) == [
        ("user", "one two"), ("assistant", "one two"), ("user", "three"),
        ("assistant", "three"), ("user", "four")]


def test_an_id_the_provider_issued_is_not_the_clients(gateway, emulator):
    # The provider's own response, made directly (as OpenAI would keep it).
    status, native = http_json("POST", f"{emulator.base_url}/v1/responses",
                               json.dumps({"model": UPSTREAM_MODEL, "input": "hi"}),
                               {"Content-Type": "application/json"})
    assert status == 200 and re.fullmatch(r"resp_[0-9a-f]{50}", native["id"])
    before = requests_served(emulator)
    with pytest.raises(openai.NotFoundError) as err:
        oai(gateway).responses.create(model=MODEL, input="again",
                                      previous_response_id=native["id"])
    assert err.value.body["param"] == "previous_response_id"
    assert err.value.body["code"] == "previous_response_not_found"
    assert requests_served(emulator) == before


# --- 4. Anthropic clients on the same route ------------------------------------------------

def test_anthropic_messages_whole_and_streamed(gateway, emulator):
    c = anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0,
                            timeout=30)
    msg = c.messages.create(model=MODEL, max_tokens=200, system="Be brief.",
                            messages=[{"role": "user", "content": "hello there friend"}])
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "hello there friend" and msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (5, 3)
    body = upstream(emulator)
    assert body["max_output_tokens"] == 200
    assert input_texts(body) == [("system", "Be brief."), ("user", "hello there friend")]
    with c.messages.stream(model=MODEL, max_tokens=200,
                           messages=[{"role": "user", "content": "one two three"}]) as s:
        final = s.get_final_message()
    assert final.content[0].text == "one two three" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3


def test_anthropic_tool_use_round_trip(gateway):
    c = anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0,
                            timeout=30)
    tool = {"name": "get_weather", "description": "Current weather",
            "input_schema": CHAT_WEATHER["function"]["parameters"]}
    first = [{"role": "user", "content": 'call get_weather {"city": "Paris"}'}]
    msg = c.messages.create(model=MODEL, max_tokens=200, tools=[tool], messages=first)
    assert msg.stop_reason == "tool_use"
    (use,) = [b for b in msg.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    msg = c.messages.create(model=MODEL, max_tokens=200, tools=[tool], messages=[
        *first, {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                      "content": "sunny"}]}])
    assert msg.content[0].text == "sunny"
