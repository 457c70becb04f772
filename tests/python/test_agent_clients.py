"""Issue 11: real agent clients complete a one-turn task through the gateway against emulated
non-native providers, offline:

- Claude Code (npm `@anthropic-ai/claude-code`, `claude -p`) with ANTHROPIC_BASE_URL at the
  gateway and non-essential traffic off: POST /v1/messages?beta=true (streamed, with
  anthropic-version and anthropic-beta) translated to an emulated OpenAI provider;
- OpenAI's Codex CLI (npm `@openai/codex`, `codex exec`) with a model provider entry whose
  base_url is the gateway's Responses API (`wire_api = "responses"`): POST /v1/responses
  (streamed) translated to an emulated OpenAI Chat Completions provider (the emulator has no
  Responses API, so nothing passes through natively).

- Codex CLI the same way against an emulated Anthropic provider (translated to POST
  /v1/messages). Its request carries a `namespace` tool (`multi_agent_v1`) and the hosted
  `web_search` tool, which run only at OpenAI (a 400 naming the tool for any other provider):
  the config a user needs for a non-OpenAI provider turns them off (`web_search = "disabled"`,
  `[features] multi_agent = false`). Its `prompt_cache_key` (a cache hint the anthropic dialect
  does not send), `include` and `client_metadata` (OpenAI-only members the Responses ingress
  takes out) never reach the Anthropic body, which the emulator validates like Anthropic
  ("Extra inputs are not permitted").

Both CLIs are native binaries shipped in npm optional dependencies, installed by
scripts/setup.sh into tests/agents/node_modules (pinned in tests/agents/package.json); their
absence fails, never skips. Each client talks to a RecordingProxy (tests/python/
recording_proxy.py) in front of the gateway, so the test also states which endpoints and
headers the client used. The emulated provider is told to answer "pong" (x-emulator-reply on
the provider), so the expected answer does not depend on the gateway.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, Process, emulator_requests, start_emulator, start_gateway
from recording_proxy import RecordingProxy

AGENTS = REPO / "tests" / "agents" / "node_modules"
CLAUDE = AGENTS / "@anthropic-ai" / "claude-code-linux-x64" / "claude"
CODEX = AGENTS / "@openai" / "codex-linux-x64" / "vendor" / "x86_64-unknown-linux-musl" / "bin" / "codex"
KEY = "sk-agent-client"
TASK = "Reply with the word pong and nothing else."
TIMEOUT_S = 90


def _require(path: Path) -> Path:
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not installed; scripts/setup.sh installs it (npm ci in "
                    "tests/agents)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    started: list[Process] = []

    def start(args, **kwargs):
        p = Process([str(a) for a in args], **kwargs)
        started.append(p)
        return p

    try:
        emulator = start_emulator(start, "--usage-counter", "words")
        emu = emulator.base_url
        pong = {"x-emulator-reply": "pong"}
        config = {
            "listen": {"address": "127.0.0.1", "port": 0, "max_body_bytes": 8388608},
            "filters": [{"type": "api_key_auth",
                         "config": {"keys": [{"key": KEY, "name": "agents"}]}}],
            "providers": {
                "oai": {"type": "openai", "base_url": f"{emu}/v1", "api_key": "sk-up",
                        "headers": pong},
                "ant": {"type": "anthropic", "base_url": emu, "api_key": "sk-ant-up",
                        "headers": pong},
                "aws": {"type": "bedrock", "base_url": emu, "api_key": "bedrock-key",
                        "headers": pong},
                "gem": {"type": "gemini", "base_url": f"{emu}/v1beta", "api_key": "g-key",
                        "headers": pong},
            },
            "models": {
                # Claude Code's main and small models, both served by the OpenAI dialect.
                "claude-sonnet-4-5": {"provider": "oai", "upstream_model": "gpt-4o-mini"},
                "claude-haiku-4-5": {"provider": "oai", "upstream_model": "gpt-4o-mini"},
                # Codex's model, served through Chat Completions.
                "gpt-5-codex-via-chat": {"provider": "oai", "upstream_model": "gpt-4o-mini"},
                # Codex's model, served by an Anthropic provider.
                "claude-via-codex": {"provider": "ant", "upstream_model": "claude-sonnet-4-5"},
                # Claude Code's models served by Bedrock (issue 11: its thinking and
                # metadata.user_id reach Converse as its own members).
                "claude-sonnet-4-5-via-bedrock": {
                    "provider": "aws", "upstream_model": "anthropic.claude-sonnet-4-5-v1:0"},
                # And by Gemini (its thinking, cache_control hints, context_management).
                "claude-sonnet-4-5-via-gemini": {
                    "provider": "gem", "upstream_model": "gemini-2.5-flash"},
            },
        }
        gateway = start_gateway(start, tmp_path_factory.mktemp("agents"), config)
        yield emulator, gateway
    finally:
        for p in started:
            p.stop()


def _clean_env(home: Path, **extra: str) -> dict:
    """No variable of the caller's (credentials, proxies) reaches the client."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "TERM": "dumb", "NO_COLOR": "1"}
    env.update(extra)
    return env


def _report(name: str, proxy: RecordingProxy, done: subprocess.CompletedProcess) -> str:
    lines = [f"{name} exited {done.returncode}", "requests:", *proxy.summary(),
             "stdout:", done.stdout[-4000:], "stderr:", done.stderr[-4000:]]
    return "\n".join(lines)


def _claude_on_route(servers, tmp_path, route: str, small_model: str | None = None):
    """Runs Claude Code's one-turn TASK with its main model `route` and its small model
    `small_model` (default: `route` too); asserts it answered pong with every POST a 200.
    Returns (emulator, report, the POST /v1/messages records)."""
    claude = _require(CLAUDE)
    emulator, gateway = servers
    small = small_model or route
    work = tmp_path / "work"
    work.mkdir()
    with RecordingProxy(gateway.base_url) as proxy:
        env = _clean_env(
            tmp_path,
            ANTHROPIC_BASE_URL=proxy.base_url, ANTHROPIC_API_KEY=KEY,
            ANTHROPIC_MODEL=route, ANTHROPIC_DEFAULT_SONNET_MODEL=route,
            ANTHROPIC_DEFAULT_HAIKU_MODEL=small, ANTHROPIC_SMALL_FAST_MODEL=small,
            CLAUDE_CONFIG_DIR=str(tmp_path / "claude-config"),
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_TELEMETRY="1",
            DISABLE_AUTOUPDATER="1", DISABLE_ERROR_REPORTING="1")
        done = subprocess.run([str(claude), "-p", TASK, "--output-format", "json"],
                              cwd=work, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    report = _report("claude", proxy, done)
    assert done.returncode == 0, report
    result = json.loads(done.stdout)
    assert result.get("is_error") is False, report
    assert result["result"].strip() == "pong", report
    assert all(r.status == 200 for r in proxy.records if r.method == "POST"), report
    messages = [r for r in proxy.records
                if r.method == "POST" and r.path.split("?")[0] == "/v1/messages"]
    assert messages, report
    return emulator, report, messages


def test_claude_code_print_mode_through_the_messages_ingress(servers, tmp_path):
    emulator, report, messages = _claude_on_route(servers, tmp_path, "claude-sonnet-4-5",
                                                  small_model="claude-haiku-4-5")
    assert all(r.headers.get("anthropic-version") and r.headers.get("anthropic-beta")
               for r in messages), report
    # The emulated OpenAI provider answered it.
    assert emulator_requests(emulator, lambda t: t.startswith("/v1/chat/completions")), report


# What a user adds to Codex's config.toml for a model whose provider is not OpenAI's
# Responses API: the hosted web_search tool and the multi_agent namespace tool run only
# there. Top-level keys first (TOML puts every key after a [table] header into that table).
NON_OPENAI_TOP = 'web_search = "disabled"\n'
NON_OPENAI_TABLES = "[features]\nmulti_agent = false\n"


def test_codex_exec_through_the_responses_ingress(servers, tmp_path):
    codex = _require(CODEX)
    emulator, gateway = servers
    work = tmp_path / "work"
    work.mkdir()
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir()
    last = tmp_path / "last-message.txt"
    with RecordingProxy(gateway.base_url) as proxy:
        (codex_home / "config.toml").write_text(
            'model = "gpt-5-codex-via-chat"\n'
            'model_provider = "modeenvoy"\n'
            # Chat Completions runs no hosted tools: the gateway refuses them (400) unless
            # the model's provider is of type openai_responses.
            + NON_OPENAI_TOP + NON_OPENAI_TABLES +
            "[model_providers.modeenvoy]\n"
            'name = "modeenvoy gateway"\n'
            f'base_url = "{proxy.base_url}/v1"\n'
            'env_key = "MODEENVOY_API_KEY"\n'
            'wire_api = "responses"\n'
            "request_max_retries = 0\n"
            "stream_max_retries = 0\n")
        env = _clean_env(tmp_path, CODEX_HOME=str(codex_home), MODEENVOY_API_KEY=KEY)
        done = subprocess.run(
            [str(codex), "exec", "--skip-git-repo-check", "--sandbox", "read-only",
             "--output-last-message", str(last), TASK],
            cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
            stdin=subprocess.DEVNULL)
    report = _report("codex", proxy, done)
    print(report)
    assert done.returncode == 0, report
    assert last.read_text().strip() == "pong", report
    responses = [r for r in proxy.records if r.method == "POST"
                 and r.path.split("?")[0] == "/v1/responses"]
    assert responses, report
    assert all(r.status == 200 for r in responses), report
    assert all(r.headers.get("accept") == "text/event-stream" for r in responses), report
    # The emulated provider answered it through Chat Completions.
    assert emulator_requests(emulator, lambda t: t.startswith("/v1/chat/completions")), report


def test_codex_exec_through_the_responses_ingress_to_anthropic(servers, tmp_path):
    codex = _require(CODEX)
    emulator, gateway = servers
    work = tmp_path / "work"
    work.mkdir()
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir()
    last = tmp_path / "last-message.txt"
    with RecordingProxy(gateway.base_url) as proxy:
        (codex_home / "config.toml").write_text(
            'model = "claude-via-codex"\n'
            'model_provider = "modeenvoy"\n'
            + NON_OPENAI_TOP + NON_OPENAI_TABLES +
            "[model_providers.modeenvoy]\n"
            'name = "modeenvoy gateway"\n'
            f'base_url = "{proxy.base_url}/v1"\n'
            'env_key = "MODEENVOY_API_KEY"\n'
            'wire_api = "responses"\n'
            "request_max_retries = 0\n"
            "stream_max_retries = 0\n")
        env = _clean_env(tmp_path, CODEX_HOME=str(codex_home), MODEENVOY_API_KEY=KEY)
        done = subprocess.run(
            [str(codex), "exec", "--skip-git-repo-check", "--sandbox", "read-only",
             "--output-last-message", str(last), TASK],
            cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
            stdin=subprocess.DEVNULL)
    report = _report("codex", proxy, done)
    print(report)
    assert done.returncode == 0, report
    assert last.read_text().strip() == "pong", report
    responses = [r for r in proxy.records if r.method == "POST"
                 and r.path.split("?")[0] == "/v1/responses"]
    assert responses, report
    assert all(r.status == 200 for r in responses), report
    # The emulated Anthropic provider answered it, with none of the OpenAI-only members.
    sent = emulator_requests(emulator, lambda t: t.startswith("/v1/messages"))
    assert sent, report
    body = sent[-1]["body"]
    body = json.loads(body) if isinstance(body, str) else body
    assert body["model"] == "claude-sonnet-4-5", report
    for member in ("prompt_cache_key", "include", "client_metadata", "store", "reasoning"):
        assert member not in body, (member, report)



def test_claude_code_through_a_bedrock_route(servers, tmp_path):
    """Issue 11: Claude Code's ordinary request (thinking, context_management, and
    metadata.user_id, a JSON object in a string) through the Messages ingress to Bedrock's
    Converse, which has no end-user field: before, 400 `user` on every request."""
    emulator, report, messages = _claude_on_route(servers, tmp_path,
                                                  "claude-sonnet-4-5-via-bedrock")
    sent = [json.loads(r.body) for r in messages]
    user = json.loads(sent[-1]["metadata"]["user_id"])  # Claude Code's JSON user id
    upstream = emulator_requests(emulator, lambda t: t.startswith("/model/"))
    assert upstream, report
    body = json.loads(upstream[-1]["body"])
    assert body["requestMetadata"] == {f"user.{k}": v for k, v in user.items()}, report
    assert body["additionalModelRequestFields"]["thinking"] == sent[-1]["thinking"], report


def test_claude_code_through_a_gemini_route(servers, tmp_path):
    """Issue 11: Claude Code's ordinary request through the Messages ingress to Gemini:
    its thinking becomes thinkingConfig, its cache_control hints and context_management are
    left out (before: 400 `thinking`, then 400 on `cache_control`)."""
    emulator, report, messages = _claude_on_route(servers, tmp_path,
                                                  "claude-sonnet-4-5-via-gemini")
    sent = [json.loads(r.body) for r in messages]
    upstream = emulator_requests(emulator, lambda t: t.startswith("/v1beta/models/"))
    assert upstream, report
    raw = upstream[-1]["body"]
    assert "cache_control" not in raw and "context_management" not in raw, report
    if "thinking" in sent[-1] and sent[-1]["thinking"].get("type") == "enabled":
        body = json.loads(raw)
        assert body["generationConfig"]["thinkingConfig"]["thinkingBudget"] == \
            sent[-1]["thinking"]["budget_tokens"], report
