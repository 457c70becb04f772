"""Issue 11, Responses state on the context store, end to end with the official `openai` SDK:
a three-turn conversation chained by `previous_response_id` against an emulated Anthropic
provider (turn 3's upstream request holds turns 1 and 2), streaming and not;
`client.responses.retrieve`, `.delete`, `.input_items.list` (limit, order, after); another
key's 404; `store: false` not retrievable; both stores (memory, and a real redis-server).

One emulator per module and one gateway per store (module-scoped): the module costs two
gateway starts and about 40 requests. Expected values come from the emulator's documented
behaviour (examples/emulator/README.md: the answer echoes the last user message's text) and
the Responses API reference, not from the gateway's code.
"""

from __future__ import annotations

import json

import pytest

from conftest import (GATEWAY, EMULATOR, Process, RedisServer, binary, http_json,
                      require_module)

openai = require_module("openai")

OWNER_KEY = "sk-state-owner"
OTHER_KEY = "sk-state-other"
MODEL = "via-anthropic"


@pytest.fixture(scope="module")
def emulator():
    p = Process([str(binary(EMULATOR)), "--port", "0"])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def redis_url():
    server = RedisServer()
    yield server.url
    server.stop()


@pytest.fixture(scope="module", params=["memory", "redis"])
def gateway(request, emulator, tmp_path_factory):
    if request.param == "memory":
        store = {"type": "memory"}
    else:
        store = {"type": "redis", "url": request.getfixturevalue("redis_url") + "/0",
                 "key_prefix": "resp-e2e:"}
    config = {
        "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
        "filters": [{"type": "api_key_auth",
                     "config": {"keys": [{"key": OWNER_KEY, "name": "owner"},
                                         {"key": OTHER_KEY, "name": "other"}]}}],
        "providers": {"ant": {"type": "anthropic", "base_url": emulator.base_url,
                              "api_key": "sk-ant-up"}},
        "models": {MODEL: {"provider": "ant", "upstream_model": "claude-sonnet-4-5"}},
        "context": {"store": store},
    }
    path = tmp_path_factory.mktemp(f"gw-{request.param}") / "gateway.json"
    path.write_text(json.dumps(config))
    p = Process([str(binary(GATEWAY)), "--config", str(path), "--port", "0"])
    yield p
    p.stop()


def client(gateway, key: str = OWNER_KEY):
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0,
                         timeout=30)


def last_anthropic_request(emulator) -> dict:
    status, stats = http_json("GET", f"{emulator.base_url}/emulator/stats")
    assert status == 200
    recent = [r for r in stats["recent"] if r["target"].startswith("/v1/messages")]
    assert recent, stats
    return json.loads(recent[-1]["body"])


def texts(anthropic_messages: list[dict]) -> list[tuple[str, str]]:
    """(role, text) per Anthropic message (string content or text blocks joined)."""
    out = []
    for m in anthropic_messages:
        c = m["content"]
        if isinstance(c, list):
            c = "".join(b.get("text", "") for b in c if b.get("type") == "text")
        out.append((m["role"], c))
    return out


def create(gw, stream: bool, **kwargs):
    """responses.create, whole or streamed; returns the final response object and (for a
    stream) every event."""
    if not stream:
        return client(gw).responses.create(model=MODEL, **kwargs), []
    events = list(client(gw).responses.create(model=MODEL, stream=True, **kwargs))
    assert events[-1].type == "response.completed", [e.type for e in events]
    return events[-1].response, events


@pytest.mark.parametrize("stream", [False, True])
def test_three_turn_chain_sends_the_earlier_turns_upstream(gateway, emulator, stream):
    tag = "s" if stream else "w"
    r1, _ = create(gateway, stream, input=f"alpha {tag}", instructions="Be brief.")
    assert r1.id.startswith("resp_") and r1.output_text == f"alpha {tag}"
    assert r1.store is True and r1.previous_response_id is None
    r2, _ = create(gateway, stream, input=f"beta {tag}", previous_response_id=r1.id)
    assert r2.output_text == f"beta {tag}" and r2.previous_response_id == r1.id
    r3, events = create(gateway, stream, input=f"gamma {tag}", previous_response_id=r2.id)
    assert r3.output_text == f"gamma {tag}" and r3.previous_response_id == r2.id
    assert len({r1.id, r2.id, r3.id}) == 3

    body = last_anthropic_request(emulator)
    assert texts(body["messages"]) == [
        ("user", f"alpha {tag}"), ("assistant", f"alpha {tag}"),
        ("user", f"beta {tag}"), ("assistant", f"beta {tag}"),
        ("user", f"gamma {tag}")]
    # Instructions are not carried over (as OpenAI's); the gateway's members never go up.
    assert "system" not in body
    assert "previous_response_id" not in json.dumps(body) and "store" not in body

    # The gateway's id in every event that names the response.
    for e in events:
        if hasattr(e, "response"):
            assert e.response.id == r3.id, e.type
    got = client(gateway).responses.retrieve(r3.id)
    assert got.id == r3.id and got.output_text == f"gamma {tag}"
    assert got.previous_response_id == r2.id and got.status == "completed"
    assert got.usage is not None and got.usage.input_tokens > 0


def test_input_items_list_pages_through_the_response_input(gateway):
    r = client(gateway).responses.create(model=MODEL, input=[
        {"role": "user", "content": "one"}, {"role": "user", "content": "two"},
        {"role": "user", "content": "three"}])
    assert r.output_text == "three"
    c = client(gateway)
    page = c.responses.input_items.list(r.id)  # default order: desc
    assert [i.content[0].text for i in page.data] == ["three", "two", "one"]
    assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id
    assert page.has_more is False and all(i.type == "message" for i in page.data)
    assert len({i.id for i in page.data}) == 3

    asc = c.responses.input_items.list(r.id, order="asc", limit=2)
    assert [i.content[0].text for i in asc.data] == ["one", "two"] and asc.has_more is True
    rest = c.responses.input_items.list(r.id, order="asc", after=asc.last_id)
    assert [i.content[0].text for i in rest.data] == ["three"] and rest.has_more is False

    for query, param in [("limit=0", "limit"), ("limit=101", "limit"), ("order=up", "order"),
                         ("after=nope", "after"), ("colour=red", "colour")]:
        status, err = http_json("GET", f"{gateway.base_url}/v1/responses/{r.id}/input_items?"
                                f"{query}", headers={"authorization": f"Bearer {OWNER_KEY}"})
        assert status == 400, (query, err)
        assert err["error"]["param"] == param, (query, err)


def test_continuation_holds_only_its_own_input_in_input_items(gateway):
    r1 = client(gateway).responses.create(model=MODEL, input="first")
    r2 = client(gateway).responses.create(model=MODEL, input="second",
                                          previous_response_id=r1.id)
    items = client(gateway).responses.input_items.list(r2.id).data
    assert [i.content[0].text for i in items] == ["second"]


def test_delete_then_gone(gateway):
    c = client(gateway)
    r = c.responses.create(model=MODEL, input="to be deleted")
    status, body = http_json("DELETE", f"{gateway.base_url}/v1/responses/{r.id}",
                             headers={"authorization": f"Bearer {OWNER_KEY}"})
    assert (status, body) == (200, {"id": r.id, "object": "response", "deleted": True})
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError) as err:
        c.responses.create(model=MODEL, input="more", previous_response_id=r.id)
    assert err.value.body["param"] == "previous_response_id"


def test_sdk_delete(gateway):
    c = client(gateway)
    r = c.responses.create(model=MODEL, input="sdk delete")
    assert c.responses.delete(r.id) is None  # the SDK returns nothing on success
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r.id)


def test_another_key_gets_404_everywhere(gateway):
    r = client(gateway).responses.create(model=MODEL, input="mine")
    other = client(gateway, OTHER_KEY)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(r.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError) as err:
        other.responses.create(model=MODEL, input="steal", previous_response_id=r.id)
    assert err.value.body["param"] == "previous_response_id"
    assert client(gateway).responses.retrieve(r.id).output_text == "mine"  # still there


def test_store_false_is_answered_but_not_kept(gateway):
    c = client(gateway)
    r = c.responses.create(model=MODEL, input="forget me", store=False)
    assert r.id.startswith("resp_") and r.output_text == "forget me" and r.store is False
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model=MODEL, input="next", previous_response_id=r.id)


def test_unknown_previous_response_id_is_a_404_in_openai_shape(gateway):
    status, body = http_json(
        "POST", f"{gateway.base_url}/v1/responses",
        json.dumps({"model": MODEL, "input": "x", "previous_response_id": "resp_nope"}),
        headers={"authorization": f"Bearer {OWNER_KEY}", "content-type": "application/json"})
    assert status == 404
    assert body["error"]["param"] == "previous_response_id"
    assert body["error"]["code"] == "previous_response_not_found"
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    assert "resp_nope" in body["error"]["message"]


def test_make_run_default_config_serves_the_readme_chain(start_process):
    """`make run`'s embedded configuration (no --config) has the memory context store, so the
    README's chained Responses snippet works against it."""
    gw = start_process([binary(GATEWAY), "--port", "0"], env={"OPENAI_API_KEY": ""})
    c = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-client", max_retries=0,
                      timeout=30)
    first = c.responses.create(model="demo-anthropic", input="My name is Ada.")
    second = c.responses.create(model="demo-anthropic", input="What is my name?",
                                previous_response_id=first.id)
    assert second.output_text == "What is my name?"  # the emulator echoes the last user turn
    assert c.responses.retrieve(second.id).output_text == "What is my name?"
    assert [i.content[0].text for i in c.responses.input_items.list(second.id).data] == [
        "What is my name?"]
    c.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(first.id)
