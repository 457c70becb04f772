"""End to end: the Model Context Protocol through modeenvoy-gateway (issue 10).

The official openai SDK sends only its new turns with an X-Session-Id header; the gateway
keeps the conversation (in-memory store) and sends the provider emulator the whole history.
The emulator records what it received (emulator_requests), and echoes the last user message,
so every reply is known in advance. Also: the session endpoints, ownership with two API keys,
many concurrent clients on one session (queue mode: every turn exactly once, in order;
reject mode: some 409 session_busy). Ownership and the concurrent clients run against both
stores (`store_section`: memory, and a redis-server the test starts on a free port); the
conversation, two gateway processes on one Redis and a Redis restart run against Redis.
"""

from __future__ import annotations

import threading

import pytest

from conftest import (emulator_requests, http_json, openai_client, require_module,
                      start_emulator, start_gateway)

openai = require_module("openai")

KEYS = {"team-a": "sk-team-a-0123456789", "team-b": "sk-team-b-0123456789"}


def config(emulator_url: str, context: dict | None = None, latency_ms: int = 0) -> dict:
    headers = {"x-emulator-latency-ms": str(latency_ms)} if latency_ms else {}
    return {
        "listen": {"address": "127.0.0.1", "port": 0},
        "providers": {"emu": {"type": "openai", "base_url": f"{emulator_url}/v1",
                              "headers": headers}},
        "models": {"demo": {"provider": "emu"}},
        "context": {"store": {"type": "memory"}, **(context or {})},
        "filters": [
            {"type": "api_key_auth",
             "config": {"keys": [{"name": name, "key": key} for name, key in KEYS.items()]}},
            {"type": "context"},
        ],
    }


@pytest.fixture
def emulator(start_process):
    return start_emulator(start_process)


@pytest.fixture(params=["memory", "redis"])
def store_section(request) -> dict:
    """The `context` keys selecting the store a test runs against (both, by parametrize)."""
    if request.param == "memory":
        return {"store": {"type": "memory"}}
    server = request.getfixturevalue("redis_server")
    return {"store": {"type": "redis", "url": f"{server.url}/0", "key_prefix": "e2e:",
                      "operation_timeout_ms": 2000, "connect_timeout_ms": 1000},
            "store_timeout_ms": 5000, "failure_mode": "closed"}


def chat_requests(emulator) -> list[dict]:
    import json
    return [json.loads(r["body"]) for r in
            emulator_requests(emulator, lambda t: t.startswith("/v1/chat/completions"))]


def messages_sent(request: dict) -> list[tuple[str, str]]:
    return [(m["role"], m.get("content")) for m in request["messages"]]


def auth(name: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def test_sdk_sends_only_new_turns_and_the_provider_sees_the_history(start_process, emulator,
                                                                     tmp_path):
    gw = start_gateway(start_process, tmp_path, config(emulator.base_url))
    client = openai_client(gw, api_key=KEYS["team-a"])
    session = {"X-Session-Id": "sdk-1"}
    turns = ["My name is Ada.", "What is my name?", "Say it twice."]
    for i, text in enumerate(turns, start=1):
        raw = client.chat.completions.with_raw_response.create(
            model="demo", messages=[{"role": "user", "content": text}], extra_headers=session)
        reply = raw.parse()
        assert reply.choices[0].message.content == text  # the emulator echoes
        assert raw.headers["x-session-id"] == "sdk-1"
        assert raw.headers["x-session-turn"] == str(i)
    sent = chat_requests(emulator)
    assert len(sent) == 3
    assert messages_sent(sent[2]) == [
        ("user", turns[0]), ("assistant", turns[0]),
        ("user", turns[1]), ("assistant", turns[1]),
        ("user", turns[2])]
    assert "metadata" not in sent[2]


def test_streamed_turns_are_kept_too(start_process, emulator, tmp_path):
    gw = start_gateway(start_process, tmp_path, config(emulator.base_url))
    client = openai_client(gw, api_key=KEYS["team-a"])
    texts = ["first streamed turn", "second streamed turn", "third one"]
    for text in texts:
        stream = client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": text}], stream=True,
            metadata={"session_id": "stream-1"})
        got = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert got == text
    sent = chat_requests(emulator)
    assert messages_sent(sent[2]) == [
        ("user", texts[0]), ("assistant", texts[0]),
        ("user", texts[1]), ("assistant", texts[1]),
        ("user", texts[2])]
    # The gateway-only metadata field never reaches the provider.
    assert all("metadata" not in body for body in sent)


def test_session_endpoints_and_ownership(start_process, emulator, store_section, tmp_path):
    gw = start_gateway(start_process, tmp_path, config(emulator.base_url, store_section))
    a = openai_client(gw, api_key=KEYS["team-a"])
    b = openai_client(gw, api_key=KEYS["team-b"])
    for sid in ("own-1", "own-2"):
        a.chat.completions.create(model="demo", messages=[{"role": "user", "content": sid}],
                                  extra_headers={"X-Session-Id": sid,
                                                 "X-Session-Metadata": '{"tier": "gold"}'})

    status, record = http_json("GET", f"{gw.base_url}/v1/sessions/own-1", headers=auth("team-a"))
    assert status == 200
    assert record["session_id"] == "own-1"
    assert record["owner"] == "team-a"
    assert record["schema_version"] == 2
    assert record["metadata"] == {"tier": "gold"}
    assert record["turn_count"] == 1
    assert [e["message"]["role"] for e in record["history"]] == ["user", "assistant"]
    assert [e["turn"] for e in record["history"]] == [1, 1]

    # Another key: the session does not exist for it, whatever it tries.
    with pytest.raises(openai.NotFoundError) as err:
        b.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}],
                                  extra_headers={"X-Session-Id": "own-1"})
    assert err.value.code == "session_not_found"
    for method in ("GET", "DELETE"):
        status, body = http_json(method, f"{gw.base_url}/v1/sessions/own-1",
                                 headers=auth("team-b"))
        assert status == 404, (method, body)
        assert body["error"]["code"] == "session_not_found"
    status, listed = http_json("GET", f"{gw.base_url}/v1/sessions", headers=auth("team-b"))
    assert status == 200 and listed["data"] == []

    status, listed = http_json("GET", f"{gw.base_url}/v1/sessions?limit=1",
                               headers=auth("team-a"))
    assert status == 200
    assert [s["id"] for s in listed["data"]] == ["own-1"]
    assert listed["has_more"] is True and listed["last_id"] == "own-1"
    status, rest = http_json("GET", f"{gw.base_url}/v1/sessions?limit=1&after=own-1",
                             headers=auth("team-a"))
    assert [s["id"] for s in rest["data"]] == ["own-2"] and rest["has_more"] is False

    status, deleted = http_json("DELETE", f"{gw.base_url}/v1/sessions/own-1",
                                headers=auth("team-a"))
    assert (status, deleted) == (200, {"id": "own-1", "object": "session.deleted",
                                       "deleted": True})
    status, _ = http_json("GET", f"{gw.base_url}/v1/sessions/own-1", headers=auth("team-a"))
    assert status == 404


def test_bad_session_input_is_a_400_naming_the_field(start_process, emulator, tmp_path):
    gw = start_gateway(start_process, tmp_path, config(emulator.base_url))
    client = openai_client(gw, api_key=KEYS["team-a"])
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"X-Session-Id": "s" * 300})
    assert err.value.param == "X-Session-Id"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"X-Session-Id": "ok",
                                                      "X-Session-Metadata": "{oops"})
    assert err.value.param == "X-Session-Metadata"
    assert chat_requests(emulator) == []


def run_clients(gw, session: str, clients: int, turns: int):
    """`clients` threads, each sending `turns` turns on one session; returns (ok texts per
    client, errors)."""
    sent: dict[int, list[str]] = {c: [] for c in range(clients)}
    errors: list[Exception] = []
    lock = threading.Lock()

    def worker(c: int):
        client = openai_client(gw, api_key=KEYS["team-a"])
        for t in range(turns):
            text = f"client {c} turn {t}"
            try:
                reply = client.chat.completions.create(
                    model="demo", messages=[{"role": "user", "content": text}],
                    extra_headers={"X-Session-Id": session})
                assert reply.choices[0].message.content == text
                with lock:
                    sent[c].append(text)
            except openai.APIStatusError as err:
                with lock:
                    errors.append(err)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sent, errors


def history_pairs(gw, session: str) -> list[tuple[str, str]]:
    status, record = http_json("GET", f"{gw.base_url}/v1/sessions/{session}",
                               headers=auth("team-a"))
    assert status == 200, record
    return [(e["message"]["role"], e["message"]["content"]) for e in record["history"]]


def test_queue_mode_keeps_every_turn_of_many_concurrent_clients_once_in_order(
        start_process, emulator, store_section, tmp_path):
    gw = start_gateway(start_process, tmp_path,
                       config(emulator.base_url, {**store_section,
                                                  "concurrency": {"mode": "queue",
                                                                  "max_queue": 64}},
                              latency_ms=20),
                       "--threads", "4")  # the session gate spans worker threads
    sent, errors = run_clients(gw, "busy-q", clients=8, turns=4)
    assert errors == []
    history = history_pairs(gw, "busy-q")
    assert len(history) == 2 * 32
    users = [content for role, content in history[0::2]]
    assert [role for role, _ in history[0::2]] == ["user"] * 32
    # Each user turn is followed by its own reply (the emulator echoes).
    assert history[1::2] == [("assistant", u) for u in users]
    assert sorted(users) == sorted(t for texts in sent.values() for t in texts)
    for c, texts in sent.items():  # every client's turns in the order it sent them
        assert [u for u in users if u.startswith(f"client {c} ")] == texts
    # The provider saw the conversation grow by exactly one turn per request.
    lengths = sorted(len(b["messages"]) for b in chat_requests(emulator))
    assert lengths == [2 * i + 1 for i in range(32)][-len(lengths):]


def test_reject_mode_answers_some_requests_409(start_process, emulator, tmp_path):
    gw = start_gateway(start_process, tmp_path,
                       config(emulator.base_url, {"concurrency": {"mode": "reject"}},
                              latency_ms=200))
    sent, errors = run_clients(gw, "busy-r", clients=6, turns=2)
    assert errors, "concurrent requests on one session must collide"
    for err in errors:
        assert err.status_code == 409
        assert err.code == "session_busy"
    kept = [t for texts in sent.values() for t in texts]
    history = history_pairs(gw, "busy-r")
    assert sorted(c for role, c in history if role == "user") == sorted(kept)


def test_make_run_default_config_keeps_conversations(start_process):
    """`make run`'s embedded configuration (no --config) serves the README's example."""
    from conftest import GATEWAY, binary
    gw = start_process([binary(GATEWAY), "--port", "0"],
                       env={"OPENAI_API_KEY": ""})
    client = openai_client(gw)
    session = {"X-Session-Id": "readme-1"}
    for i, text in enumerate(["My name is Ada.", "What is my name?"], start=1):
        raw = client.chat.completions.with_raw_response.create(
            model="demo", extra_headers=session, messages=[{"role": "user", "content": text}])
        assert raw.parse().choices[0].message.content == text
        assert raw.headers["x-session-turn"] == str(i)
    status, record = http_json("GET", f"{gw.base_url}/v1/sessions/readme-1")
    assert status == 200
    assert record["owner"] == "anonymous"
    assert [(e["message"]["role"], e["message"]["content"]) for e in record["history"]] == [
        ("user", "My name is Ada."), ("assistant", "My name is Ada."),
        ("user", "What is my name?"), ("assistant", "What is my name?")]


# ---------------------------------------------------------------------------------------
# The same protocol against Redis (redis_server: a redis-server on a free port).

def redis_config(emulator_url: str, redis_url: str, **context) -> dict:
    return config(emulator_url, {"store": {"type": "redis", "url": redis_url,
                                           "key_prefix": "e2e:", "operation_timeout_ms": 500,
                                           "connect_timeout_ms": 500,
                                           "reconnect_backoff_min_ms": 20,
                                           "reconnect_backoff_max_ms": 100},
                                 "store_timeout_ms": 1000, **context})


def test_conversation_against_redis(start_process, emulator, redis_server, tmp_path):
    gw = start_gateway(start_process, tmp_path, redis_config(emulator.base_url, redis_server.url),
                       "--threads", "2")
    client = openai_client(gw, api_key=KEYS["team-a"])
    texts = ["one in redis", "two in redis", "three in redis"]
    for i, text in enumerate(texts, start=1):
        raw = client.chat.completions.with_raw_response.create(
            model="demo", messages=[{"role": "user", "content": text}],
            stream=(i == 2), extra_headers={"X-Session-Id": "r-1"})
        assert raw.headers["x-session-turn"] == str(i)
    sent = chat_requests(emulator)
    assert messages_sent(sent[2]) == [
        ("user", texts[0]), ("assistant", texts[0]), ("user", texts[1]),
        ("assistant", texts[1]), ("user", texts[2])]
    assert history_pairs(gw, "r-1")[-1] == ("assistant", texts[2])
    assert redis_server.command("EXISTS", "e2e:{r-1}:meta").strip() == b":1"
    # The per-loop Redis stores go before their loops: a clean exit (a lease release kept
    # past its store once made this a double free at exit).
    assert gw.stop() == 0, gw.log()[-2000:]


def test_two_gateways_share_one_redis_session(start_process, emulator, redis_server, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cfg = redis_config(emulator.base_url, redis_server.url)
    gateways = [start_gateway(start_process, tmp_path / "a", cfg),
                start_gateway(start_process, tmp_path / "b", cfg)]
    clients = [openai_client(g, api_key=KEYS["team-a"]) for g in gateways]
    texts = [f"turn {i} via gateway {i % 2}" for i in range(6)]
    for i, text in enumerate(texts):
        reply = clients[i % 2].chat.completions.create(
            model="demo", messages=[{"role": "user", "content": text}],
            extra_headers={"X-Session-Id": "shared"})
        assert reply.choices[0].message.content == text
    expected = []
    for text in texts:
        expected += [("user", text), ("assistant", text)]
    assert history_pairs(gateways[0], "shared") == expected
    assert history_pairs(gateways[1], "shared") == expected
    # Each gateway sent the provider the whole conversation so far.
    assert [len(b["messages"]) for b in chat_requests(emulator)] == [1, 3, 5, 7, 9, 11]
    # And concurrently: both processes, several clients each, queue mode.
    sent, errors = [], []
    threads = []
    lock = threading.Lock()

    def worker(g: int, c: int):
        client = openai_client(gateways[g], api_key=KEYS["team-a"])
        for t in range(3):
            text = f"g{g} c{c} t{t}"
            try:
                client.chat.completions.create(model="demo",
                                               messages=[{"role": "user", "content": text}],
                                               extra_headers={"X-Session-Id": "shared"})
                with lock:
                    sent.append(text)
            except openai.APIStatusError as err:
                with lock:
                    errors.append(err)

    for g in (0, 1):
        for c in range(3):
            threads.append(threading.Thread(target=worker, args=(g, c)))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    history = history_pairs(gateways[0], "shared")[len(expected):]
    users = [c for r, c in history[0::2]]
    assert sorted(users) == sorted(sent) and len(users) == 18
    assert history[1::2] == [("assistant", u) for u in users]
    for g in gateways:
        assert g.stop() == 0, g.log()[-2000:]


def restart_redis(port: int, workdir):
    """redis-server on `port` again (daemonized, no persistence); returns its stop function
    (by the pid in its pidfile)."""
    import os
    import signal
    import socket
    import subprocess
    import time
    workdir.mkdir()
    pidfile = workdir / "redis.pid"
    subprocess.run(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                    "--daemonize", "yes", "--save", "", "--appendonly", "no",
                    "--dir", str(workdir), "--pidfile", str(pidfile)], check=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "redis-server did not come back"
        time.sleep(0.05)

    def stop():
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.05)
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
    return stop


def test_redis_killed_and_restarted_mid_run(start_process, emulator, redis_server, tmp_path):
    gw = start_gateway(start_process, tmp_path, redis_config(emulator.base_url, redis_server.url))
    client = openai_client(gw, api_key=KEYS["team-a"])

    def turn(text: str):
        return client.chat.completions.with_raw_response.create(
            model="demo", messages=[{"role": "user", "content": text}],
            extra_headers={"X-Session-Id": "phoenix"})

    assert turn("before").headers["x-session-turn"] == "1"
    port = redis_server.port
    redis_server.stop()
    down = turn("while down")  # fail-open: answered without context, says so
    assert down.parse().choices[0].message.content == "while down"
    assert down.headers["x-context-status"] == "unavailable"
    assert "x-session-turn" not in down.headers
    # A new server on the same port (empty: the data was not persisted).
    revived = restart_redis(port, tmp_path / "revived")
    try:
        import time
        deadline = time.monotonic() + 10
        while True:
            r = turn("after")
            if "x-context-status" not in r.headers or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert "x-context-status" not in r.headers, "the gateway reconnected"
        assert r.headers["x-session-turn"] == "1"  # a fresh server: a new conversation
    finally:
        revived()
