"""Issue 11: the official `openai` npm package (Node) as a client of the gateway:
chat.completions.create whole and streamed, a tool call round trip, responses.create whole and
streamed, a function call round trip, and errors surfaced as the SDK's APIError subclasses
with the right status. tests/node/openai_client.mjs makes the calls (one Node process for the
module, against one gateway and one emulator) and prints what the SDK returned; this file
checks it.

Node and the package (tests/node/package.json, installed by scripts/setup.sh with `npm ci`)
are required: their absence fails, never skips.

Expected values come from the emulator's documented behaviour (examples/emulator/README.md:
the answer echoes the last user or tool message; `call <tool> {json}` lines make tool calls;
usage counts words with --usage-counter words), from the Responses API's documented event
sequence and from the SDK's error classes, not from the gateway's code.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import REPO, Process, start_emulator, start_gateway

NODE_DIR = REPO / "tests" / "node"
SCRIPT = NODE_DIR / "openai_client.mjs"
CLIENT_KEY = "sk-node-client"
CHAT_MODELS = ["via-openai", "via-anthropic"]
RESPONSES_MODELS = ["via-anthropic", "via-openai"]


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; scripts/setup.sh installs it", pytrace=False)
    if not (NODE_DIR / "node_modules" / "openai" / "package.json").is_file():
        pytest.fail(f"the openai npm package is not installed in {NODE_DIR}/node_modules; "
                    "scripts/setup.sh installs it (npm ci)", pytrace=False)
    return node


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Runs the Node client once against a gateway in front of an emulator; its results by
    "<case>/<model>"."""
    node = _node()
    started: list[Process] = []

    def start(args, **kwargs):
        p = Process([str(a) for a in args], **kwargs)
        started.append(p)
        return p

    try:
        emulator = start_emulator(start, "--usage-counter", "words")
        emu = emulator.base_url
        config = {
            "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 1048576},
            "filters": [{"type": "api_key_auth",
                         "config": {"keys": [{"key": CLIENT_KEY, "name": "node"}]}}],
            "providers": {
                "oai": {"type": "openai", "base_url": f"{emu}/v1", "api_key": "sk-up"},
                "oai-429": {"type": "openai", "base_url": f"{emu}/v1", "api_key": "sk-up",
                            "headers": {"x-emulator-status": "429",
                                        "x-emulator-error-message": "Rate limit reached"}},
                "ant": {"type": "anthropic", "base_url": emu, "api_key": "sk-ant-up"},
            },
            "models": {
                "via-openai": {"provider": "oai", "upstream_model": "gpt-4o-mini"},
                "via-anthropic": {"provider": "ant", "upstream_model": "claude-sonnet-4-5"},
                "limited": {"provider": "oai-429"},
            },
        }
        gateway = start_gateway(start, tmp_path_factory.mktemp("node"), config)
        spec = {"models": {"chat": CHAT_MODELS, "responses": RESPONSES_MODELS},
                "limited": "limited"}
        done = subprocess.run([node, str(SCRIPT), gateway.base_url, CLIENT_KEY, json.dumps(spec)],
                              capture_output=True, text=True, timeout=120, cwd=NODE_DIR)
        assert done.returncode == 0, f"node exited {done.returncode}:\n{done.stderr}"
        yield json.loads(done.stdout)
    finally:
        for p in started:
            p.stop()


def ok(results: dict, key: str) -> dict:
    assert key in results, sorted(results)
    got = results[key]
    assert "thrown" not in got, got["thrown"]
    return got


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_whole(results, model):
    got = ok(results, f"chat_whole/{model}")
    assert got["object"] == "chat.completion"
    assert got["text"] == "hello there friend"
    assert got["finish_reason"] == "stop"
    assert got["completion_tokens"] == 3  # three words, counted by the emulator


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_streamed(results, model):
    got = ok(results, f"chat_stream/{model}")
    assert got["text"] == "one two three four"
    assert got["finish_reason"] == "stop"
    assert got["chunks"] >= 2
    assert got["completion_tokens"] == 4


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_tool_call_round_trip(results, model):
    got = ok(results, f"chat_tool_call/{model}")
    assert got["finish_reason"] == "tool_calls"
    assert len(got["calls"]) == 1
    call = got["calls"][0]
    assert call["type"] == "function" and call["name"] == "get_weather"
    assert call["arguments"] == {"city": "Paris"}
    assert call["id"]
    assert got["answer"] == "sunny and 21 degrees"  # the emulator echoes the tool result
    assert got["answer_finish_reason"] == "stop"


@pytest.mark.parametrize("model", RESPONSES_MODELS)
def test_responses_whole(results, model):
    got = ok(results, f"responses_whole/{model}")
    assert got["object"] == "response" and got["status"] == "completed"
    assert got["id"].startswith("resp_")
    assert got["output_text"] == "hello there friend"
    assert got["output_types"] == ["message"]
    assert got["output_tokens"] == 3


@pytest.mark.parametrize("model", RESPONSES_MODELS)
def test_responses_streamed(results, model):
    got = ok(results, f"responses_stream/{model}")
    types = got["types"]
    # The sequence of a one-message answer in the API reference (streaming events).
    assert types[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert [t for t in types if t != "response.output_text.delta"][-4:] == [
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert got["sequence"] == list(range(len(types)))
    assert got["text"] == "one two three four"
    assert got["status"] == "completed" and got["final_text"] == "one two three four"
    assert got["output_tokens"] == 4


@pytest.mark.parametrize("model", RESPONSES_MODELS)
def test_responses_function_call_round_trip(results, model):
    got = ok(results, f"responses_tool_call/{model}")
    assert len(got["calls"]) == 1
    assert got["calls"][0]["name"] == "get_weather"
    assert got["calls"][0]["arguments"] == {"city": "Paris"}
    assert got["calls"][0]["call_id"]
    assert got["answer"] == "sunny and 21 degrees"


def test_upstream_429_is_the_sdks_rate_limit_error(results):
    err = results["error_rate_limited/limited"].get("thrown")
    assert err is not None, results["error_rate_limited/limited"]
    assert err["is_api_error"] and err["class"] == "RateLimitError"
    assert err["status"] == 429


def test_bad_chat_field_is_the_sdks_bad_request_error(results):
    err = results[f"error_bad_field/{CHAT_MODELS[0]}"].get("thrown")
    assert err is not None
    assert err["is_api_error"] and err["class"] == "BadRequestError"
    assert err["status"] == 400
    assert err["type"] == "invalid_request_error"
    assert "temperature" in (err["param"] or "") + err["message"]


def test_bad_responses_field_is_the_sdks_bad_request_error(results):
    err = results[f"error_responses_bad_field/{RESPONSES_MODELS[0]}"].get("thrown")
    assert err is not None
    assert err["is_api_error"] and err["class"] == "BadRequestError"
    assert err["status"] == 400
    assert "max_output_tokens" in (err["param"] or "") + err["message"]
