"""End to end: what picks a router pool and a deployment for a request (issue 12).

- `select` on the conversation's metadata: the context filter publishes a session's stored
  metadata as `context.metadata.<key>` before routing, so a session marked
  {"tier": "gold"} (X-Session-Metadata on any earlier turn) is planned on the gold pool for
  every later turn, without the client naming it again.
- `select` on the API key (`api_key.name`, set by api_key_auth).
- A split sticky per API key (`lb.sticky` with `hash_key: "tenant"`): every request of one
  key lands on one deployment, where the same round robin without stickiness alternates.

The emulator records the upstream model of each request it gets (its /emulator/stats
"recent"), which tells the deployment that answered.
"""

from __future__ import annotations

import json

import pytest

from conftest import emulator_requests, openai_client, require_module, start_emulator, start_gateway

require_module("openai")

KEYS = {"team-a": "sk-team-a-0123456789", "team-b": "sk-team-b-0123456789",
        "vip": "sk-vip-0123456789"}


def config(emulator_url: str) -> dict:
    models = {name: {"provider": "emu", "upstream_model": f"up-{name}"}
              for name in ("std", "gold", "vip", "one", "two")}
    return {
        "listen": {"address": "127.0.0.1", "port": 0},
        "providers": {"emu": {"type": "openai", "base_url": f"{emulator_url}/v1"}},
        "models": models,
        "context": {"store": {"type": "memory"}},
        "filters": [
            {"type": "api_key_auth",
             "config": {"keys": [{"name": name, "key": key} for name, key in KEYS.items()]}},
            {"type": "context"},
        ],
        "routes": [
            {"match": {"model": "assistant"}, "policy": "router",
             "select": [{"metadata": {"api_key.name": "vip"}, "model": "assistant-vip"},
                        {"metadata": {"context.metadata.tier": "gold"},
                         "model": "assistant-gold"}],
             "pools": [{"name": "assistant", "deployments": [{"id": "std", "model": "std"}]},
                       {"name": "assistant-gold", "deployments": [{"id": "gold", "model": "gold"}]},
                       {"name": "assistant-vip", "deployments": [{"id": "vip", "model": "vip"}]}]},
            {"match": {"model": "split"}, "policy": "router",
             "pools": [{"name": "split",
                        "lb": {"policy": "round_robin", "sticky": True, "hash_key": "tenant"},
                        "deployments": [{"id": "one", "model": "one"},
                                        {"id": "two", "model": "two"}]}]},
            {"match": {"model": "alternating"}, "policy": "router",
             "pools": [{"name": "alternating", "lb": {"policy": "round_robin"},
                        "deployments": [{"id": "one-rr", "model": "one"},
                                        {"id": "two-rr", "model": "two"}]}]},
        ],
    }


@pytest.fixture
def setup(start_process, tmp_path):
    emulator = start_emulator(start_process)
    gateway = start_gateway(start_process, tmp_path, config(emulator.base_url))
    return emulator, gateway


def upstream_models(emulator) -> list[str]:
    return [json.loads(r["body"])["model"] for r in
            emulator_requests(emulator, lambda t: t.startswith("/v1/chat/completions"))]


def ask(client, model: str, text: str, headers: dict | None = None) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], extra_headers=headers or {})
    return reply.choices[0].message.content


def test_a_sessions_stored_metadata_selects_the_pool_on_later_turns(setup):
    emulator, gateway = setup
    client = openai_client(gateway, api_key=KEYS["team-a"])
    # An unmarked session: the route's own pool.
    ask(client, "assistant", "plain", {"X-Session-Id": "plain-1"})
    # The first turn marks the session gold: it is stored before routing, so this turn too.
    ask(client, "assistant", "turn 1", {"X-Session-Id": "gold-1",
                                        "X-Session-Metadata": '{"tier": "gold"}'})
    # Later turns name only the session: the stored metadata still selects the gold pool.
    ask(client, "assistant", "turn 2", {"X-Session-Id": "gold-1"})
    ask(client, "assistant", "turn 3", {"X-Session-Id": "gold-1"})
    # Another value does not match.
    ask(client, "assistant", "silver", {"X-Session-Id": "silver-1",
                                        "X-Session-Metadata": '{"tier": "silver"}'})
    assert upstream_models(emulator) == ["up-std", "up-gold", "up-gold", "up-gold", "up-std"]


def test_the_api_key_selects_the_pool_first(setup):
    emulator, gateway = setup
    vip = openai_client(gateway, api_key=KEYS["vip"])
    # The vip selector comes first: it wins over the session's gold tier.
    ask(vip, "assistant", "hello", {"X-Session-Id": "vip-1",
                                    "X-Session-Metadata": '{"tier": "gold"}'})
    ask(openai_client(gateway, api_key=KEYS["team-b"]), "assistant", "hello")
    assert upstream_models(emulator) == ["up-vip", "up-std"]


def test_a_sticky_split_per_api_key_keeps_each_key_on_one_deployment(setup):
    emulator, gateway = setup
    picks: dict[str, set[str]] = {}
    for name in ("team-a", "team-b", "vip"):
        client = openai_client(gateway, api_key=KEYS[name])
        before = len(upstream_models(emulator))
        for i in range(6):
            # Different sessions and prompts: the key alone decides.
            ask(client, "split", f"question {i}", {"X-Session-Id": f"{name}-{i}"})
        picks[name] = set(upstream_models(emulator)[before:])
    assert all(len(models) == 1 for models in picks.values()), picks
    assert all(models <= {"up-one", "up-two"} for models in picks.values()), picks

    # The same pool without stickiness alternates for one key: what stickiness changed.
    client = openai_client(gateway, api_key=KEYS["team-a"])
    before = len(upstream_models(emulator))
    for i in range(4):
        ask(client, "alternating", f"question {i}")
    assert sorted(upstream_models(emulator)[before:]) == ["up-one", "up-one", "up-two", "up-two"]
