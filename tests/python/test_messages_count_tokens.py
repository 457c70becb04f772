"""Issue 11, POST /v1/messages/count_tokens through modeenvoy-gateway with the official
`anthropic` SDK (client.messages.count_tokens).

A route whose target speaks the Messages API natively (an "anthropic" provider) gets the
client's body at its /v1/messages/count_tokens and its answer is passed through; a fake
Anthropic server here records what arrived and answers a fixed count. Any other target is
counted by the gateway with the target model's tiktoken encoding and marked
`x-modeenvoy-token-count: estimate`. The expected counts are made here with the PyPI
`tiktoken` package over the prompt text built by the documented rules
(lib/anthropic_ingress/count_tokens.h, the emulator's Anthropic input billing), not with
modeenvoy's counter.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import data_dir, http_json, require_module, start_gateway

anthropic = require_module("anthropic")

DATA = data_dir()
os.environ["TIKTOKEN_CACHE_DIR"] = str(DATA / "tiktoken-cache")
os.environ.setdefault("MODEENVOY_TOKENIZER_DIR", str(DATA / "tokenizers"))

CLIENT_KEY = "sk-count-client"
# A key scoped to the OpenAI-backed names only (api_key_auth's per-key "models").
SCOPED_KEY = "sk-count-scoped"
WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "input_schema": {"type": "object", "required": ["city"],
                            "properties": {"city": {"type": "string"}}}}


@pytest.fixture(scope="module")
def tiktoken():
    mod = require_module("tiktoken", reason="PyPI tiktoken is not installed")
    try:
        mod.get_encoding("o200k_base")
        mod.get_encoding("cl100k_base")
    except Exception as err:  # no network and no cached rank file
        pytest.skip(f"tiktoken rank files unavailable offline: {err}")
    return mod


class FakeAnthropic:
    """An Anthropic API stand-in: records each request, answers `reply` (status, body)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.reply = (200, {"input_tokens": 4321})
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": body})
                status, answer = outer.reply
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("request-id", "req_fake_1")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_anthropic():
    fake = FakeAnthropic()
    yield fake
    fake.close()


@pytest.fixture
def gateway(start_process, fake_anthropic, tmp_path):
    # The non-native providers are never called: their URLs only need to be valid.
    config = {
        "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
        "filters": [{"type": "api_key_auth",
                     "config": {"keys": [{"key": CLIENT_KEY, "name": "tester"},
                                         {"key": SCOPED_KEY, "name": "scoped",
                                          "models": ["via-openai", "gpt-alias"]}]}}],
        "providers": {
            "oai": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-up"},
            "gem": {"type": "gemini", "base_url": "http://127.0.0.1:9/v1beta", "api_key": "k"},
            "ant": {"type": "anthropic", "base_url": fake_anthropic.base_url,
                    "api_key": "sk-ant-upstream"},
        },
        "models": {
            "via-openai": {"provider": "oai", "upstream_model": "gpt-4o-mini"},
            "via-gpt4": {"provider": "oai", "upstream_model": "gpt-4"},
            "via-gemini": {"provider": "gem", "upstream_model": "gemini-2.5-flash"},
            "via-anthropic": {"provider": "ant", "upstream_model": "claude-sonnet-4-5"},
        },
        "routes": [{"match": {"model": "claude-alias"}, "target": "via-anthropic"},
                   {"match": {"model": "gpt-alias"}, "target": "via-openai"}],
    }
    return start_gateway(start_process, tmp_path, config)


def client(gateway):
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0,
                               timeout=30)


def expected(enc, pieces: list[str]) -> int:
    return len(enc.encode_ordinary("\n".join(p for p in pieces if p)))


def schema_text(schema: dict) -> str:
    return json.dumps(schema, separators=(",", ":"), sort_keys=True)


@pytest.mark.parametrize("model", ["via-openai", "gpt-alias"])
def test_counted_with_the_target_models_tokenizer(gateway, tiktoken, model):
    raw = client(gateway).messages.with_raw_response.count_tokens(
        model=model, system="Be brief.",
        messages=[{"role": "user", "content": "hello there friend, how are you today?"}])
    counted = raw.parse()
    assert isinstance(counted, anthropic.types.MessageTokensCount)
    enc = tiktoken.get_encoding("o200k_base")  # gpt-4o-mini's encoding
    assert counted.input_tokens == expected(
        enc, ["Be brief.", "hello there friend, how are you today?"])
    assert raw.headers["x-modeenvoy-token-count"] == "estimate"
    assert raw.headers["x-modeenvoy-token-count-method"] == "tokenizer"


def test_tools_tool_round_trip_and_images_with_cl100k(gateway, tiktoken):
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "What is the weather in Paris?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should call the tool.", "signature": "c2ln"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"unit": "C", "city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1",
             "content": [{"type": "text", "text": "18 degrees, sunny"}]},
            {"type": "text", "text": "Thanks!"}]},
    ]
    counted = client(gateway).messages.count_tokens(
        model="via-gpt4", system=[{"type": "text", "text": "You are a weather bot."}],
        tools=[WEATHER], tool_choice={"type": "auto"}, messages=messages)
    enc = tiktoken.get_encoding("cl100k_base")  # gpt-4's encoding
    # Hand-built by the documented rules: system, tool name/description/schema, then the
    # messages' text, "image", tool_use name + sorted input, tool_result text; thinking not.
    pieces = ["You are a weather bot.", "get_weather", "Current weather in a city",
              schema_text(WEATHER["input_schema"]),
              "What is the weather in Paris?", "image",
              "Let me check.", "get_weather", '{"city":"Paris","unit":"C"}',
              "18 degrees, sunny", "Thanks!"]
    assert counted.input_tokens == expected(enc, pieces)
    # An unknown model (to tiktoken) counts with o200k_base.
    counted = client(gateway).messages.count_tokens(
        model="via-gemini", messages=[{"role": "user", "content": "Bonjour tout le monde"}])
    assert counted.input_tokens == expected(tiktoken.get_encoding("o200k_base"),
                                            ["Bonjour tout le monde"])


@pytest.mark.parametrize("model", ["via-anthropic", "claude-alias"])
def test_forwarded_to_a_native_anthropic_provider(gateway, fake_anthropic, model):
    c = anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0,
                            timeout=30, default_headers={"anthropic-beta": "token-counting-x",
                                                         "anthropic-version": "2023-06-01"})
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}]
    raw = c.messages.with_raw_response.count_tokens(model=model, messages=messages)
    assert raw.parse().input_tokens == 4321  # the provider's own answer
    assert "x-modeenvoy-token-count" not in raw.headers
    assert raw.headers["request-id"] == "req_fake_1"
    [req] = fake_anthropic.requests
    assert req["path"] == "/v1/messages/count_tokens"
    headers = {k.lower(): v for k, v in req["headers"].items()}
    assert headers["x-api-key"] == "sk-ant-upstream"  # the provider's key, not the client's
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "token-counting-x"
    sent = json.loads(req["body"])
    assert sent == {"model": "claude-sonnet-4-5", "messages": messages}


def test_native_provider_errors_pass_through(gateway, fake_anthropic):
    fake_anthropic.reply = (400, {"type": "error", "error": {
        "type": "invalid_request_error", "message": "messages.0.content: Field required"}})
    with pytest.raises(anthropic.BadRequestError) as err:
        client(gateway).messages.count_tokens(model="via-anthropic",
                                              messages=[{"role": "user"}])  # type: ignore
    assert err.value.status_code == 400
    assert err.value.body["error"]["message"] == "messages.0.content: Field required"


def test_errors_in_anthropics_shape(gateway):
    c = client(gateway)
    with pytest.raises(anthropic.NotFoundError) as err:
        c.messages.count_tokens(model="no-such-model",
                                messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model" in err.value.body["error"]["message"]

    with pytest.raises(anthropic.BadRequestError) as err:
        c.messages.count_tokens(model="via-openai",
                                messages=[{"role": "user", "content": 5}])  # type: ignore
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert "messages[0].content" in err.value.body["error"]["message"] or \
        "messages.0.content" in err.value.body["error"]["message"]

    url = f"{gateway.base_url}/v1/messages/count_tokens"
    auth = {"x-api-key": CLIENT_KEY, "content-type": "application/json"}
    status, body = http_json("POST", url, json.dumps(
        {"model": "via-openai", "max_tokens": 5,
         "messages": [{"role": "user", "content": "hi"}]}), auth)
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("max_tokens")
    status, body = http_json("POST", url, json.dumps({"messages": []}), auth)
    assert status == 400 and body["error"]["message"].startswith("model")
    status, body = http_json("POST", url, "{not json", auth)
    assert status == 400 and body["type"] == "error"

    status, body = http_json("POST", url, json.dumps(
        {"model": "via-openai", "messages": [{"role": "user", "content": "hi"}]}),
        {"x-api-key": "wrong", "content-type": "application/json"})
    assert status == 401


@pytest.mark.parametrize("model", ["via-anthropic", "claude-alias"])
def test_a_key_outside_the_models_scope_is_refused_as_messages_refuses_it(
        gateway, fake_anthropic, model):
    scoped = anthropic.Anthropic(base_url=gateway.base_url, api_key=SCOPED_KEY, max_retries=0,
                                 timeout=30)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.PermissionDeniedError) as refused_call:
        scoped.messages.create(model=model, max_tokens=8, messages=messages)
    with pytest.raises(anthropic.PermissionDeniedError) as refused_count:
        scoped.messages.count_tokens(model=model, messages=messages)
    assert refused_count.value.status_code == refused_call.value.status_code == 403
    assert refused_count.value.body == refused_call.value.body
    assert refused_count.value.body["error"]["type"] == "permission_error"
    # The provider never saw the request: the gateway's Anthropic key was not used for it.
    assert fake_anthropic.requests == []
    # The models in scope still count.
    assert scoped.messages.count_tokens(model="gpt-alias", messages=messages).input_tokens > 0


def test_model_lists_show_a_scoped_key_only_its_models(gateway):
    scoped = anthropic.Anthropic(base_url=gateway.base_url, api_key=SCOPED_KEY, max_retries=0,
                                 timeout=30)
    assert [m.id for m in scoped.models.list()] == ["gpt-alias", "via-openai"]
    status, body = http_json("GET", f"{gateway.base_url}/v1/models", None,
                             {"authorization": f"Bearer {SCOPED_KEY}"})
    assert status == 200 and [m["id"] for m in body["data"]] == ["gpt-alias", "via-openai"]
    assert len(list(client(gateway).models.list())) == 6  # 4 models + 2 routes
