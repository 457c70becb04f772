"""modeenvoy.ContextStore and modeenvoy.fit_context from Python (issue 10).

Windows are checked against counts made here with the PyPI `tiktoken` package and the
OpenAI cookbook's chat rules (3 tokens per message, 4 on gpt-3.5-turbo-0301, plus the
tokens of the role and the content), not with modeenvoy's own counter. tiktoken runs
offline from the verified rank files set-up copies to .data/tiktoken-cache.
"""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path

import pytest

from conftest import RedisServer, require_module

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("MODEENVOY_DATA_DIR", REPO / ".data"))
os.environ["TIKTOKEN_CACHE_DIR"] = str(DATA / "tiktoken-cache")
os.environ.setdefault("MODEENVOY_TOKENIZER_DIR", str(DATA / "tokenizers"))

modeenvoy = require_module("modeenvoy", reason="the modeenvoy module is not built")


@pytest.fixture(scope="module")
def redis_for_contexts():
    """One redis-server for this module's Redis cases (each store gets its own key prefix).
    Not installed: a failure under `make test` (scripts/setup.sh installs it)."""
    server = RedisServer()
    yield server
    server.stop()


_prefixes = itertools.count()


def make_store(kind: str, request, **options):
    """A fresh store of `kind` ("memory" or "redis") with the same options."""
    if kind == "memory":
        return modeenvoy.ContextStore.memory(**{"max_bytes": 1 << 20, **options})
    server = request.getfixturevalue("redis_for_contexts")
    return modeenvoy.ContextStore.redis(f"{server.url}/0", key_prefix=f"t{next(_prefixes)}:",
                                        **options)


# The same conformance cases run against both stores.
@pytest.fixture(params=["memory", "redis"])
def store(request):
    return make_store(request.param, request, ttl_seconds=3600)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


# --- ContextStore.memory -------------------------------------------------------------------

def test_append_creates_then_extends_a_session(store, request):
    assert store.kind == request.node.callspec.params["store"]
    assert store.get("s-1") is None
    v1 = store.append("s-1", [user("hi")], owner="team-a", metadata={"language": "de"})
    assert isinstance(v1, int) and v1 >= 1
    v2 = store.append("s-1", [assistant("hallo"), user("wie geht's?")], owner="team-a")
    assert v2 > v1
    record = store.get("s-1")
    assert record["version"] == v2
    assert record["session_id"] == "s-1"
    assert record["owner"] == "team-a"
    assert record["schema_version"] == 2
    assert record["turn_count"] == 2
    assert record["metadata"] == {"language": "de"}
    assert record["history"] == [
        {"message": user("hi"), "turn": 1},
        {"message": assistant("hallo"), "turn": 2},
        {"message": user("wie geht's?"), "turn": 2},
    ]
    assert record["created"] <= record["updated"]
    assert record["created"].endswith("Z")


def test_expected_versions_are_compare_and_set(store):
    v1 = store.append("s-1", [user("one")], owner="a", expected_version=0)
    with pytest.raises(modeenvoy.ContextConflictError) as err:
        store.append("s-1", [user("again")], owner="a", expected_version=0)
    assert err.value.code == "ABORTED"
    assert isinstance(err.value, modeenvoy.Error)
    with pytest.raises(modeenvoy.ContextConflictError):
        store.append("s-1", [user("stale")], owner="a", expected_version=v1 + 1000)
    assert store.get("s-1")["version"] == v1  # nothing written
    v2 = store.append("s-1", [user("two")], owner="a", expected_version=v1)
    assert v2 > v1
    assert [e["message"]["content"] for e in store.get("s-1")["history"]] == ["one", "two"]


def test_another_owners_session_is_refused(store):
    store.append("s-1", [user("mine")], owner="a")
    with pytest.raises(modeenvoy.Error) as err:
        store.append("s-1", [user("theirs")], owner="b")
    assert err.value.code == "PERMISSION_DENIED"
    assert len(store.get("s-1")["history"]) == 1


def test_tool_calls_and_their_results_become_agent_state(store):
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function",
         "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
        {"id": "c2", "type": "function", "function": {"name": "time", "arguments": "{}"}}]}
    store.append("s-1", [user("weather and time?"), call,
                         {"role": "tool", "tool_call_id": "c2", "content": "12:00"}], owner="a")
    store.append("s-1", [{"role": "tool", "tool_call_id": "c1",
                          "content": [{"type": "text", "text": "4"}, {"type": "text", "text": "C"}]}],
                 owner="a",
                 model_choice={"model": "gpt-4o", "provider": "openai", "upstream_model": "gpt-4o",
                               "usage": {"prompt_tokens": 10, "completion_tokens": 2,
                                         "total_tokens": 12}})
    record = store.get("s-1")
    assert record["tool_calls"] == [
        {"turn": 1, "id": "c1", "name": "weather", "arguments": "{\"city\":\"Oslo\"}",
         "result": "4C"},
        {"turn": 1, "id": "c2", "name": "time", "arguments": "{}", "result": "12:00"},
    ]
    assert len(record["model_choices"]) == 1
    choice = record["model_choices"][0]
    assert choice["turn"] == 2 and choice["model"] == "gpt-4o" and choice["provider"] == "openai"
    assert choice["usage"]["total_tokens"] == 12


def test_pinned_entries_keep_their_flag(store):
    store.append("s-1", [{"message": user("my name is Ana"), "pinned": True}, assistant("hi")],
                 owner="a")
    assert store.get("s-1")["history"][0] == {"message": user("my name is Ana"), "turn": 1,
                                              "pinned": True}


def test_delete_and_list_pages_by_session_id(store):
    for sid in ["s-3", "s-1", "s-5", "s-2", "s-4"]:
        store.append(sid, [user(sid)], owner="a")
    store.append("t-1", [user("other owner")], owner="b")
    assert store.delete("s-5") is True
    assert store.delete("s-5") is False
    assert store.get("s-5") is None

    page = store.list("a", limit=2)
    assert [s["session_id"] for s in page["sessions"]] == ["s-1", "s-2"]
    assert page["sessions"][0]["turn_count"] == 1
    page = store.list("a", cursor=page["next_cursor"], limit=2)
    assert [s["session_id"] for s in page["sessions"]] == ["s-3", "s-4"]
    assert page["next_cursor"] == ""
    assert [s["session_id"] for s in store.list("b")["sessions"]] == ["t-1"]
    assert store.list("nobody") == {"sessions": [], "next_cursor": ""}


def test_bad_input_names_the_field(store):
    with pytest.raises(modeenvoy.ContextValueError) as err:
        store.append("", [user("x")], owner="a")
    assert err.value.param == "session_id" and isinstance(err.value, ValueError)
    with pytest.raises(modeenvoy.ContextValueError) as err:
        store.append("s-1", [{"content": "no role"}], owner="a")
    assert err.value.param.startswith("messages[0]")
    with pytest.raises(modeenvoy.ContextValueError) as err:
        store.append("s-1", [user("x")], owner="")
    assert err.value.param == "owner"
    with pytest.raises(modeenvoy.ContextValueError) as err:
        store.append("s-1", [user("x")], owner="a", metadata={"tier": 3})
    assert err.value.param == "metadata.tier"
    with pytest.raises(ValueError):
        store.list("a", limit=0)
    with pytest.raises(ValueError):
        store.list("a", limit=1001)
    with pytest.raises(ValueError):
        modeenvoy.ContextStore.memory(max_bytes=0)
    assert store.get("s-1") is None  # nothing written by any of them


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_record_over_the_bound_is_refused(kind, request):
    small = make_store(kind, request, max_record_bytes=300)
    small.append("s-1", [user("short")], owner="a")
    with pytest.raises(modeenvoy.Error) as err:
        small.append("s-1", [user("x" * 400)], owner="a")
    assert err.value.code == "RESOURCE_EXHAUSTED"
    assert len(small.get("s-1")["history"]) == 1


def test_concurrent_appends_without_versions_lose_nothing(store):
    threads, per_thread = 4, 25

    def work(t: int) -> None:
        for i in range(per_thread):
            store.append("shared", [user(f"{t}:{i}")], owner="a")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    record = store.get("shared")
    texts = [e["message"]["content"] for e in record["history"]]
    assert len(texts) == threads * per_thread
    assert record["turn_count"] == threads * per_thread
    for t in range(threads):  # each writer's turns in its order
        assert [x for x in texts if x.startswith(f"{t}:")] == [f"{t}:{i}" for i in range(per_thread)]


# --- ContextStore.redis only ----------------------------------------------------------------

def test_redis_store_uses_the_gateways_key_layout(redis_for_contexts):
    store = modeenvoy.ContextStore.redis(redis_for_contexts.url, key_prefix="layout:")
    assert store.kind == "redis"
    store.append("s-1", [user("hi")], owner="team-a")
    # redis_store.h: P{S}:meta (a hash with the owner), P{S}:h (one element per entry).
    assert redis_for_contexts.command("HGET", "layout:{s-1}:meta", "owner") == b"$6\r\nteam-a\r\n"
    assert redis_for_contexts.command("LLEN", "layout:{s-1}:h") == b":1\r\n"
    assert redis_for_contexts.command("TTL", "layout:{s-1}:h").startswith(b":8")  # ~86400 s
    # Another store (another process) with the same url and prefix sees the same session.
    again = modeenvoy.ContextStore.redis(redis_for_contexts.url, key_prefix="layout:")
    assert [e["message"] for e in again.get("s-1")["history"]] == [user("hi")]
    assert modeenvoy.ContextStore.redis(redis_for_contexts.url, key_prefix="other:").get("s-1") is None


@pytest.mark.parametrize("url, param", [
    ("rediss://127.0.0.1:6380", "url"),        # TLS: not supported by the store
    ("redis://", "url"),                       # no host
    ("redis://127.0.0.1:70000", "url"),        # port out of range
    ("redis://127.0.0.1:6379/db", "url"),      # database not a number
    ("http://127.0.0.1:6379", "url"),
    ("unix://relative.sock", "url"),
])
def test_redis_bad_url_is_a_value_error_naming_it(url, param):
    with pytest.raises(ValueError) as err:
        modeenvoy.ContextStore.redis(url)
    assert isinstance(err.value, modeenvoy.ContextValueError)
    assert err.value.param == param, err.value
    if url.startswith("rediss"):
        assert "TLS" in str(err.value)


def test_redis_bad_options_are_value_errors():
    with pytest.raises(modeenvoy.ContextValueError) as err:
        modeenvoy.ContextStore.redis("redis://127.0.0.1:1", key_prefix="a{b}")
    assert err.value.param == "key_prefix"
    for name in ("connect_timeout", "operation_timeout"):
        with pytest.raises(modeenvoy.ContextValueError) as err:
            modeenvoy.ContextStore.redis("redis://127.0.0.1:1", **{name: 0})
        assert err.value.param == name
    with pytest.raises(modeenvoy.ContextValueError) as err:
        modeenvoy.ContextStore.redis("redis://127.0.0.1:1", ttl_seconds=0)
    assert err.value.param == "ttl_seconds"


def test_redis_unreachable_is_unavailable_not_a_hang():
    import socket
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = modeenvoy.ContextStore.redis(f"redis://127.0.0.1:{port}", connect_timeout=0.5,
                                         operation_timeout=0.5)
    with pytest.raises(modeenvoy.Error) as err:
        store.get("s-1")
    assert err.value.code == "UNAVAILABLE"
    assert not isinstance(err.value, ValueError)


# --- fit_context ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiktoken():
    mod = require_module("tiktoken", reason="PyPI tiktoken is not installed")
    try:
        mod.get_encoding("o200k_base")
        mod.get_encoding("cl100k_base")
    except Exception as err:  # noqa: BLE001 - any failure means the offline cache is missing
        pytest.skip(f"tiktoken rank files unavailable offline: {err}")
    return mod


def cookbook_tokens(enc, messages, per_message: int = 3) -> int:
    """The cookbook's num_tokens_from_messages, without the reply priming."""
    return sum(per_message + len(enc.encode(m["role"])) + len(enc.encode(m["content"]))
               for m in messages)


def conversation(turns: int) -> list[dict]:
    out = [{"role": "system", "content": "You are a concise assistant."}]
    for t in range(1, turns + 1):
        out.append(user(f"Question {t}: what happened in chapter {t} of the story?"))
        out.append(assistant(f"In chapter {t} the travellers crossed river number {t}."))
    return out


def test_fit_context_drops_the_oldest_turns_to_fit(tiktoken):
    enc = tiktoken.get_encoding("o200k_base")
    history = conversation(10)
    new = [user("And in the last chapter?")]
    # Room for the system prompt, the last three turns and the new message, with a reply
    # reserve of 100 and the reply priming (3): one token less drops a fourth turn.
    keep = [history[0]] + history[-6:] + new
    window = cookbook_tokens(enc, keep) + 100 + 3
    fitted = modeenvoy.fit_context(new, "gpt-4o", 100, context_window=window, history=history)
    assert fitted == keep
    assert all(a is b for a, b in zip(fitted, keep))  # the caller's own dicts
    fitted = modeenvoy.fit_context(new, "gpt-4o", 100, context_window=window - 1, history=history)
    assert fitted == [history[0]] + history[-4:] + new
    # The published window (gpt-4o: 128,000) holds it all.
    assert modeenvoy.fit_context(new, "gpt-4o", 4096, history=history) == history + new


def test_fit_context_counts_by_the_models_rules(tiktoken):
    enc = tiktoken.get_encoding("cl100k_base")
    history = conversation(4)
    new = [user("Next?")]
    keep = [history[0]] + history[-2:] + new
    # gpt-3.5-turbo-0301 spends 4 tokens per message: a window that fits the last turn by
    # the usual 3 per message does not fit it by that model's rules.
    window = cookbook_tokens(enc, keep, per_message=3) + 3
    assert modeenvoy.fit_context(new, "gpt-4", 0, context_window=window, history=history) == keep
    assert (modeenvoy.fit_context(new, "gpt-3.5-turbo-0301", 0, context_window=window,
                                  history=history) == [history[0]] + new)
    window = cookbook_tokens(enc, keep, per_message=4) + 3
    assert (modeenvoy.fit_context(new, "gpt-3.5-turbo-0301", 0, context_window=window,
                                  history=history) == keep)


def test_fit_context_reads_a_stored_record(store, tiktoken):
    enc = tiktoken.get_encoding("o200k_base")
    store.append("s-1", [{"message": user("remember: blue"), "pinned": True},
                         assistant("noted")], owner="a")
    store.append("s-1", [user("a long question " * 20), assistant("a long answer " * 20)],
                 owner="a")
    new = [user("what colour?")]
    pinned = user("remember: blue")
    long_turn = [user("a long question " * 20), assistant("a long answer " * 20)]
    # The oldest turn goes first, all of it but the pinned message.
    window = cookbook_tokens(enc, [pinned] + long_turn + new) + 3
    fitted = modeenvoy.fit_context(new, "gpt-4o", 0, context_window=window,
                                   history=store.get("s-1"))
    assert fitted == [pinned] + long_turn + new
    window = cookbook_tokens(enc, [pinned] + new) + 3
    assert modeenvoy.fit_context(new, "gpt-4o", 0, context_window=window,
                                 history=store.get("s-1")) == [pinned] + new


def test_fit_context_errors(tiktoken):
    with pytest.raises(ValueError) as err:
        modeenvoy.fit_context([user("hi")], "no-such-model-7", 100)
    assert "no-such-model-7" in str(err.value)
    assert isinstance(err.value, modeenvoy.Error)
    # A model without a known window or encoding works with an explicit window.
    assert modeenvoy.fit_context([user("hi")], "no-such-model-7", 10, context_window=1000) == [
        user("hi")]
    with pytest.raises(modeenvoy.ContextValueError) as err:
        modeenvoy.fit_context([user("x " * 500)], "gpt-4o", 100, context_window=200)
    assert err.value.param == "messages"
    with pytest.raises(ValueError):
        modeenvoy.fit_context([user("hi")], "gpt-4o", -1)
