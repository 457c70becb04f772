"""End to end: official openai SDK -> modeenvoy-gateway -> provider emulator, over loopback.

Every layer is real: the SDK's HTTP client, the example proxy's HTTP server, the engine's
filter chain and routing, the libcurl upstream client, and the emulator speaking OpenAI's
wire format. The emulator records what it received, so the tests also check what the
gateway forwarded upstream.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from conftest import binary, http_json, require_module

openai = require_module("openai")


def _loopback_host_name() -> str | None:
    """The machine's own name when it resolves to loopback (curl answers "localhost"
    itself, without its resolver thread, so that name would not exercise it)."""
    import socket
    name = socket.gethostname()
    try:
        return name if socket.gethostbyname(name).startswith("127.") else None
    except OSError:
        return None


LOOPBACK_NAME = _loopback_host_name()


def gateway_config(emulator_url: str, *, extra_models: dict | None = None) -> dict:
    base = f"{emulator_url}/v1"
    models = {
        "demo": {"provider": "emu"},
        "aliased": {"provider": "emu", "upstream_model": "upstream-model-7"},
        "limited": {"provider": "emu-429"},
        "slow": {"provider": "emu-slow"},
        "by-name": {"provider": "emu-by-name"},
    }
    models.update(extra_models or {})
    return {
        "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
        "providers": {
            "emu": {"type": "openai", "base_url": base, "api_key": "sk-upstream-secret"},
            "emu-429": {"type": "openai", "base_url": base,
                        "headers": {"x-emulator-status": "429",
                                    "x-emulator-error-message": "Rate limit reached for requests"}},
            # The same emulator named by host name: curl resolves it on a helper thread
            # whose descriptors the upstream client must not confuse with its sockets.
            "emu-by-name": {"type": "openai",
                            "base_url": base.replace("127.0.0.1", LOOPBACK_NAME or "localhost"),
                            "timeouts": {"connect_ms": 3000, "first_byte_ms": 10000}},
            "emu-slow": {"type": "openai", "base_url": base,
                         "headers": {"x-emulator-chunks": "12",
                                     "x-emulator-chunk-interval-ms": "250"}},
        },
        "models": models,
    }


@pytest.fixture
def emulator(start_process):
    # Word counts keep the expected usage obvious here; the emulator's own tests check its
    # tokenizer counts against tiktoken. This suite checks that usage is relayed unchanged.
    return start_process([binary("examples/emulator/modeenvoy-emulator"), "--port", "0",
                          "--usage-counter", "words"])


ADMIN_TOKEN = "e2e-admin-token-0123456789"
# Headers of a configuration posted to /admin/reload by the operator.
ADMIN_POST = {"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def gateway(start_process, emulator, tmp_path):
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps(gateway_config(emulator.base_url)))
    token = tmp_path / "admin-token"
    token.write_text(ADMIN_TOKEN + "\n")
    gw = start_process([binary("examples/proxy/modeenvoy-gateway"), "--config", config,
                        "--port", "0", "--admin-token-file", token])
    gw.config_path = config
    return gw


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="sk-client", max_retries=0,
                         timeout=30)


def last_upstream_request(emulator) -> dict:
    status, stats = http_json("GET", f"{emulator.base_url}/emulator/stats")
    assert status == 200
    recent = [r for r in stats["recent"] if r["target"].endswith("/chat/completions")]
    assert recent, stats
    return recent[-1]


def test_non_streaming_reply_field_by_field(client, emulator):
    resp = client.chat.completions.create(
        model="demo", messages=[{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hello gateway world"}])
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == "demo"
    assert isinstance(resp.created, int) and resp.created > 1_600_000_000
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    # The emulator echoes the last user message.
    assert choice.message.content == "Hello gateway world"
    assert choice.message.tool_calls is None
    # Usage counts whitespace-separated words (the emulator's documented rule): 2 + 3 in,
    # 3 out.
    assert resp.usage.prompt_tokens == 5
    assert resp.usage.completion_tokens == 3
    assert resp.usage.total_tokens == 8

    upstream = last_upstream_request(emulator)
    headers = dict(upstream["headers"])
    # The provider's key replaces the client's.
    assert headers["authorization"] == "Bearer sk-upstream-secret"
    body = json.loads(upstream["body"])
    assert body["model"] == "demo"
    assert body["messages"][1] == {"role": "user", "content": "Hello gateway world"}


def test_streaming_reply_chunk_by_chunk(client):
    stream = client.chat.completions.create(
        model="demo", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three four five"}])
    chunks = list(stream)
    assert len(chunks) >= 7  # role, 5 words, finish, usage
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    # include_usage: a last chunk with no choices and the usage; null usage before it.
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 5
    assert chunks[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_usage_has_no_usage_chunk(client):
    chunks = list(client.chat.completions.create(
        model="demo", stream=True, messages=[{"role": "user", "content": "a b"}]))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_tool_call_round_trip(client):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    resp = client.chat.completions.create(
        model="demo", tools=tools,
        messages=[{"role": "user", "content": 'call get_weather {"city": "Paris"}'}])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    # Streamed, the arguments arrive in fragments that the SDK's consumer reassembles.
    pieces = {}
    for chunk in client.chat.completions.create(
            model="demo", tools=tools, stream=True,
            messages=[{"role": "user", "content": 'call get_weather {"city": "Oslo"}'}]):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = pieces.setdefault(tc.index, {"name": "", "arguments": ""})
            if tc.function and tc.function.name:
                entry["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                entry["arguments"] += tc.function.arguments
    assert pieces[0]["name"] == "get_weather"
    assert json.loads(pieces[0]["arguments"]) == {"city": "Oslo"}


@pytest.mark.skipif(LOOPBACK_NAME is None,
                    reason="this machine's host name does not resolve to a loopback address")
def test_provider_named_by_host_name(client):
    # Several calls, so pooled connections and fresh resolutions alternate.
    for i in range(4):
        resp = client.chat.completions.create(
            model="by-name", messages=[{"role": "user", "content": f"request {i} by name"}])
        assert resp.choices[0].message.content == f"request {i} by name"


def test_unknown_fields_are_forwarded_upstream(client, emulator):
    client.chat.completions.create(
        model="aliased", messages=[{"role": "user", "content": "hi", "x_msg_field": 7}],
        temperature=0.25, extra_body={"x_vendor_option": {"nested": [1, "two", None]},
                                      "top_k": 40})
    body = json.loads(last_upstream_request(emulator)["body"])
    assert body["model"] == "upstream-model-7"  # the provider's name for the model
    assert body["x_vendor_option"] == {"nested": [1, "two", None]}
    assert body["top_k"] == 40
    assert body["temperature"] == 0.25
    assert body["messages"][0]["x_msg_field"] == 7


def test_invalid_request_is_rejected_with_field_path(client, emulator):
    before = http_json("GET", f"{emulator.base_url}/emulator/stats")[1]["requests"]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="demo", messages=[{"role": "wizard", "content": "x"}])
    assert err.value.status_code == 400
    body = err.value.body
    assert body["type"] == "invalid_request_error"
    assert body["param"] == "messages[0].role"
    assert "wizard" in body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}],
                                       temperature=7)
    assert err.value.body["param"] == "temperature"
    # Nothing invalid reached the provider.
    assert http_json("GET", f"{emulator.base_url}/emulator/stats")[1]["requests"] == before


def test_malformed_json_gets_400(gateway):
    status, body = http_json("POST", f"{gateway.base_url}/v1/chat/completions", b'{"model": "demo",',
                             headers={"Content-Type": "application/json"})
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"


def test_unknown_model_gets_404(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model",
                                       messages=[{"role": "user", "content": "x"}])
    assert "no-such-model" in err.value.body["message"]


def test_upstream_rate_limit_passes_through(client):
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="limited", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 429
    assert "Rate limit reached" in err.value.body["message"]


def test_upstream_unreachable_gets_502(start_process, tmp_path):
    # A provider on a port nobody listens on (bound then released by the emulator fixture's
    # absence): the gateway answers 502 in OpenAI's shape.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()
    config = tmp_path / "gw.json"
    config.write_text(json.dumps({
        "providers": {"dead": {"type": "openai", "base_url": f"http://127.0.0.1:{dead_port}/v1"}},
        "models": {"demo": {"provider": "dead"}}}))
    gw = start_process([binary("examples/proxy/modeenvoy-gateway"), "--config", config,
                        "--port", "0"])
    status, body = http_json("POST", f"{gw.base_url}/v1/chat/completions",
                             json.dumps({"model": "demo",
                                         "messages": [{"role": "user", "content": "x"}]}),
                             headers={"Content-Type": "application/json"})
    assert status == 502
    assert body["error"]["type"] == "server_error"


def test_models_and_health(client, gateway):
    names = sorted(m.id for m in client.models.list())
    assert names == ["aliased", "by-name", "demo", "limited", "slow"]
    status, body = http_json("GET", f"{gateway.base_url}/healthz")
    assert status == 200 and body["status"] == "ok"


def test_reload_while_streams_are_open(client, gateway, emulator):
    """Streams opened before a reload finish whole on their snapshot; new requests see the
    new configuration."""
    results: list = [None] * 3
    first_chunk = [threading.Event() for _ in results]

    def consume(i):
        text = ""
        for chunk in client.chat.completions.create(
                model="slow", stream=True,
                messages=[{"role": "user", "content": f"stream {i} " + "word " * 10}]):
            first_chunk[i].set()
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        results[i] = text

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for e in first_chunk:
        assert e.wait(30)

    # The new configuration drops "slow" and adds "fresh".
    new_config = gateway_config(emulator.base_url, extra_models={"fresh": {"provider": "emu"}})
    del new_config["models"]["slow"]
    status, body = http_json("POST", f"{gateway.base_url}/admin/reload", json.dumps(new_config),
                             headers=ADMIN_POST)
    assert status == 200, body
    assert body["config_generation"] == 2
    # The reload really happened mid-stream: 12 pieces 250 ms apart are far from done.
    assert all(r is None for r in results), results

    for t in threads:
        t.join(60)
    for i, text in enumerate(results):
        assert text == f"stream {i} " + " ".join(["word"] * 10), (i, text)

    assert "fresh" in [m.id for m in client.models.list()]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "x"}])


def test_invalid_reload_keeps_running_config(client, gateway):
    status, body = http_json("POST", f"{gateway.base_url}/admin/reload",
                             json.dumps({"providers": {"p": {"type": "openai", "base_url": "ftp://x"}},
                                         "models": {}}),
                             headers=ADMIN_POST)
    assert status == 400
    assert body["error"]["param"] == "providers.p.base_url"
    assert client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "still here"}]
    ).choices[0].message.content == "still here"


def test_client_disconnect_cancels_upstream_call(gateway, emulator):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({
        "model": "slow", "stream": True,
        "messages": [{"role": "user", "content": "word " * 40}]}),
        headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    resp.fp.readline()  # the first bytes of the stream arrived
    conn.sock.close()
    conn.close()
    deadline = time.monotonic() + 20
    aborted = 0
    while time.monotonic() < deadline:
        aborted = http_json("GET", f"{emulator.base_url}/emulator/stats")[1]["aborted"]
        if aborted >= 1:
            break
        time.sleep(0.05)
    assert aborted >= 1


def test_sigterm_lets_open_stream_finish(start_process, emulator, tmp_path):
    config = tmp_path / "gw.json"
    config.write_text(json.dumps(gateway_config(emulator.base_url)))
    gw = start_process([binary("examples/proxy/modeenvoy-gateway"), "--config", config,
                        "--port", "0"])
    client = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(
        model="slow", stream=True, messages=[{"role": "user", "content": "a b c d e f g h"}])
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    gw.proc.send_signal(15)
    rest = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert rest == "a b c d e f g h"
    assert gw.proc.wait(20) == 0


def test_admin_refuses_what_a_browser_page_could_send(gateway, emulator):
    config = json.dumps(gateway_config(emulator.base_url))
    url = f"{gateway.base_url}/admin/reload"
    # A cross-site fetch carries Origin; a no-preflight form post is text/plain; a DNS
    # rebinding attack arrives with the attacker's host name.
    cases = [
        ({**ADMIN_POST, "Origin": "https://evil.example"}, 403),
        ({**ADMIN_POST, "Content-Type": "text/plain"}, 415),
        ({**ADMIN_POST, "Host": "evil.example"}, 403),
    ]
    for headers, want in cases:
        status, body = http_json("POST", url, config, headers=headers)
        assert status == want, (headers, status, body)
    assert http_json("GET", f"{gateway.base_url}/admin/config")[1]["config_generation"] == 1


def test_reload_cannot_move_the_listener(gateway, emulator):
    config = gateway_config(emulator.base_url)
    config["listen"]["max_body_bytes"] = 2048
    status, body = http_json("POST", f"{gateway.base_url}/admin/reload", json.dumps(config),
                             headers=ADMIN_POST)
    assert status == 400, body
    assert body["error"]["param"] == "listen"
    assert http_json("GET", f"{gateway.base_url}/admin/config")[1]["config_generation"] == 1


def test_posted_reload_needs_the_admin_token(gateway, emulator):
    config = json.dumps(gateway_config(emulator.base_url))
    url = f"{gateway.base_url}/admin/reload"
    for auth in [None, "Bearer wrong-token-0123456789", f"Basic {ADMIN_TOKEN}",
                 f"Bearer {ADMIN_TOKEN}x", f"Bearer {ADMIN_TOKEN[:-1]}"]:
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        status, body = http_json("POST", url, config, headers=headers)
        assert status == 401, (auth, status, body)
        assert body["error"]["type"] == "authentication_error"
    assert http_json("GET", f"{gateway.base_url}/admin/config")[1]["config_generation"] == 1
    # An empty body re-reads the operator's file and needs no token.
    status, body = http_json("POST", url, b"", headers={"Content-Type": "application/json"})
    assert status == 200, body
    assert body["config_generation"] == 2


def test_without_an_admin_token_only_empty_reloads_are_accepted(start_process, emulator,
                                                                 tmp_path):
    config = tmp_path / "gw.json"
    config.write_text(json.dumps(gateway_config(emulator.base_url)))
    gw = start_process([binary("examples/proxy/modeenvoy-gateway"), "--config", config,
                        "--port", "0"], env={"MODEENVOY_ADMIN_TOKEN": ""})
    url = f"{gw.base_url}/admin/reload"
    status, body = http_json("POST", url, config.read_text(), headers=ADMIN_POST)
    assert status == 403, body
    assert "admin token" in body["error"]["message"]
    status, body = http_json("POST", url, b"", headers={"Content-Type": "application/json"})
    assert status == 200, body


def test_posted_reload_may_not_read_new_environment_variables(start_process, emulator,
                                                               tmp_path):
    """A posted configuration could otherwise send any variable of the gateway's
    environment to a base_url of its choosing."""
    base = gateway_config(emulator.base_url)
    base["providers"]["emu"] = {"type": "openai", "base_url": f"{emulator.base_url}/v1",
                                "api_key_env": "E2E_USED_KEY"}
    config = tmp_path / "gw.json"
    config.write_text(json.dumps(base))
    token = tmp_path / "token"
    token.write_text(ADMIN_TOKEN)
    env = {"E2E_USED_KEY": "sk-used", "E2E_OTHER_SECRET": "do-not-leak",
           "E2E_LISTED": "sk-listed"}
    gw = start_process([binary("examples/proxy/modeenvoy-gateway"), "--config", config,
                        "--port", "0", "--admin-token-file", token, "--allow-env", "E2E_LISTED"],
                       env=env)
    url = f"{gw.base_url}/admin/reload"

    def post_with_key_from(var):
        posted = gateway_config(emulator.base_url)
        posted["providers"]["emu"] = {"type": "openai", "base_url": f"{emulator.base_url}/v1",
                                      "api_key_env": var}
        return http_json("POST", url, json.dumps(posted), headers=ADMIN_POST)

    status, body = post_with_key_from("E2E_OTHER_SECRET")
    assert status == 403, body
    assert "E2E_OTHER_SECRET" in body["error"]["message"]
    assert http_json("GET", f"{gw.base_url}/admin/config")[1]["config_generation"] == 1
    # The filter's key_env is held to the same rule.
    posted = gateway_config(emulator.base_url)
    posted["filters"] = [{"type": "api_key_auth",
                          "config": {"keys": [{"name": "x", "key_env": "E2E_OTHER_SECRET"}]}}]
    status, body = http_json("POST", url, json.dumps(posted), headers=ADMIN_POST)
    assert status == 403, body
    # What the operator's configuration used, and what --allow-env lists, may be named.
    status, body = post_with_key_from("E2E_USED_KEY")
    assert status == 200, body
    status, body = post_with_key_from("E2E_LISTED")
    assert status == 200, body
    assert body["config_generation"] == 3


def test_reload_does_not_stall_the_serving_loop(start_process, emulator, tmp_path):
    """A reload runs on its own thread. The configuration file is a FIFO, so the test holds
    the reload in the middle of reading it while /healthz is asked on the only worker loop."""
    import os
    fifo = tmp_path / "gw.fifo"
    os.mkfifo(fifo)
    text = json.dumps(gateway_config(emulator.base_url)).encode()

    def write_once():
        with open(fifo, "wb") as f:  # blocks until the gateway opens the FIFO to read
            f.write(text)

    writer = threading.Thread(target=write_once)
    writer.start()
    gw = start_process([binary("examples/proxy/modeenvoy-gateway"), "--config", fifo,
                        "--port", "0", "--threads", "1"])
    writer.join(30)

    reload_result = []
    reloading = threading.Thread(target=lambda: reload_result.append(http_json(
        "POST", f"{gw.base_url}/admin/reload", b"",
        headers={"Content-Type": "application/json"})))
    reloading.start()
    # Opening a FIFO to write without blocking fails (ENXIO) until a reader has it open:
    # once it succeeds, the reload is waiting for the configuration.
    deadline = time.monotonic() + 20
    fd = None
    while fd is None and time.monotonic() < deadline:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            time.sleep(0.01)
    assert fd is not None, "the reload never opened the configuration"
    try:
        status, body = http_json("GET", f"{gw.base_url}/healthz", timeout=5)
        assert status == 200 and body["config_generation"] == 1, body
        assert not reload_result  # still waiting for the file
    except Exception:
        os.close(fd)
        reloading.join(30)
        raise
    os.write(fd, text)
    os.close(fd)
    reloading.join(30)
    assert reload_result and reload_result[0][0] == 200, reload_result
    assert reload_result[0][1]["config_generation"] == 2


def test_connections_over_max_connections_get_503(start_process, emulator, tmp_path):
    import socket
    config = tmp_path / "gw.json"
    config.write_text(json.dumps(gateway_config(emulator.base_url)))
    gw = start_process([binary("examples/proxy/modeenvoy-gateway"), "--config", config,
                        "--port", "0", "--threads", "1", "--max-connections", "1"])
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as held:
        held.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert held.recv(4096).startswith(b"HTTP/1.1 200 ")  # accepted and counted
        status, body = http_json("GET", f"{gw.base_url}/healthz", timeout=10)
        assert status == 503, body
        assert body["error"]["type"] == "server_error"
    # The slot is free again once the held connection is gone.
    deadline = time.monotonic() + 10
    while http_json("GET", f"{gw.base_url}/healthz")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.01)
