"""The router's overflow in the proxy (issue 12's saturation test): a slow local deployment
with capacity 4, a cloud overflow tier with capacity 4 and a pool queue of 4; 14 requests at
once: 8 are called at once (4 local, 4 overflowed to the cloud), 4 wait in the queue and are
served when slots free up, 2 find the queue full (429, retry-after = the queue timeout).
Then the tiered rules' engine inputs: a long prompt (counted with the pool model's tokenizer)
goes to the long-context pool, a short one stays, and an API key's tier picks its pool.
One gateway and one emulator for the module; the slow calls use the emulator's latency
control (timers); no sleeps. Wall time: two waves of LATENCY_MS plus process start-up."""
from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import EMULATOR, GATEWAY, Process, binary, data_dir, http_json

LATENCY_MS = 1500      # every call of the slow deployments
QUEUE_TIMEOUT_MS = 3000  # longer than one call: the queued requests are served
CAPACITY = 4
QUEUE_DEPTH = 4


@pytest.fixture(scope="module")
def saturation(tmp_path_factory):
    tokenizers = data_dir() / "tokenizers"
    if not (tokenizers / "o200k_base.tiktoken").exists():
        pytest.skip(f"o200k_base rank file not in {tokenizers} (prompt tokens are counted)")
    emu = Process([str(binary(EMULATOR)), "--port", "0"])
    slow = {"x-emulator-latency-ms": str(LATENCY_MS)}
    config = {
        "providers": {
            "local": {"type": "openai", "base_url": f"{emu.base_url}/v1", "headers": slow},
            "cloud": {"type": "openai", "base_url": f"{emu.base_url}/v1", "headers": slow},
            "fast": {"type": "openai", "base_url": f"{emu.base_url}/v1"}},
        "models": {"local-llama": {"provider": "local", "upstream_model": "llama-3-8b"},
                   "cloud-gpt": {"provider": "cloud", "upstream_model": "gpt-4o"},
                   "small": {"provider": "fast", "upstream_model": "gpt-4o-mini",
                             "context_window": 16000},
                   "large": {"provider": "fast", "upstream_model": "gpt-4.1"},
                   "budget": {"provider": "fast", "upstream_model": "gpt-4o-mini"}},
        "filters": [{"type": "api_key_auth", "config": {"keys": [
            {"name": "paid", "key": "sk-paid"},
            {"name": "trial", "key": "sk-trial", "tier": "free"}]}}],
        "routes": [
            {"match": {"model": "burst"}, "policy": "router",
             "pools": [{"name": "burst",
                        "queue": {"max_depth": QUEUE_DEPTH, "timeout_ms": QUEUE_TIMEOUT_MS},
                        "deployments": [
                            {"id": "local", "model": "local-llama",
                             "max_in_flight": CAPACITY},
                            {"id": "cloud", "model": "cloud-gpt", "tier": 1,
                             "max_in_flight": CAPACITY}]}]},
            {"match": {"model": "tiered"}, "policy": "router",
             "pools": [{"name": "tiered",
                        "rules": [{"name": "long", "to": "tiered-long",
                                   "prompt_tokens": {"min": 2000}},
                                  {"name": "free", "to": "tiered-free",
                                   "key_tiers": ["free"]}],
                        "deployments": [{"id": "small", "model": "small"}]},
                       {"name": "tiered-long", "deployments": [{"id": "large", "model": "large"}]},
                       {"name": "tiered-free",
                        "deployments": [{"id": "budget", "model": "budget"}]}]}]}
    path = tmp_path_factory.mktemp("saturation") / "gateway.json"
    path.write_text(json.dumps(config))
    gw = Process([str(binary(GATEWAY)), "--config", str(path), "--port", "0"],
                 env={"MODEENVOY_TOKENIZER_DIR": str(tokenizers)})
    yield gw
    gw.stop()
    emu.stop()


def chat(port: int, model: str, prompt: str, key: str = "sk-paid"):
    """(status, headers, body text, seconds taken) of one chat completion."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.monotonic()
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"content-type": "application/json", "authorization": f"Bearer {key}"})
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
        return resp.status, dict(resp.getheaders()), text, time.monotonic() - started
    finally:
        conn.close()


def upstreams(port: int) -> dict[str, dict]:
    status, body = http_json("GET", f"http://127.0.0.1:{port}/admin/upstreams",
                             headers={"authorization": "Bearer sk-paid"})
    assert status == 200, body
    return {d["id"]: d for r in body["routers"] for p in r["pools"] for d in p["deployments"]}


def test_a_burst_fills_local_overflows_to_cloud_queues_and_refuses(saturation):
    n = 2 * CAPACITY + QUEUE_DEPTH + 2
    barrier = threading.Barrier(n)

    def one(i: int):
        barrier.wait()
        return chat(saturation.port, "burst", f"burst {i}")

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    # Every request arrives while the first calls are still out (LATENCY_MS): 4 + 4 are
    # called, 4 wait, the remaining 2 find the queue full.
    assert len(ok) == 2 * CAPACITY + QUEUE_DEPTH, [(r[0], r[2][:200]) for r in refused]
    assert len(refused) == 2
    for status, headers, body, _ in refused:
        assert status == 429, body
        assert "queue is full" in json.loads(body)["error"]["message"], body
        # retry-after: the queue's timeout in whole seconds
        assert headers.get("retry-after") == str(-(-QUEUE_TIMEOUT_MS // 1000)), headers
    # The queued requests waited for a slot (at least one call) before their own call.
    waited = [r for r in ok if r[3] >= 2 * LATENCY_MS / 1000]
    assert len(waited) >= QUEUE_DEPTH, sorted(r[3] for r in ok)
    ups = upstreams(saturation.port)
    local, cloud = ups["local"], ups["cloud"]
    assert local["attempts"] + cloud["attempts"] == len(ok), ups
    assert local["successes"] + cloud["successes"] == len(ok), ups
    # The first wave filled both tiers; the queue went to whichever freed a slot first.
    assert local["attempts"] >= CAPACITY and cloud["attempts"] >= CAPACITY, ups
    assert local["in_flight"] == 0 and cloud["in_flight"] == 0, ups


def test_prompt_tokens_and_key_tier_pick_the_pool(saturation):
    port = saturation.port

    def served_by(prompt: str, key: str = "sk-paid") -> str:
        before = upstreams(port)
        status, _, body, _ = chat(port, "tiered", prompt, key)
        assert status == 200, body
        after = upstreams(port)
        # A router state shows its deployments once it planned a request.
        moved = [d for d in ("small", "large", "budget")
                 if after[d]["attempts"] != before.get(d, {}).get("attempts", 0)]
        assert len(moved) == 1, moved
        return moved[0]

    assert served_by("hello") == "small"
    # Each repeated word is at least one token: 3000 words are past the rule's 2000.
    assert served_by("hello " * 3000) == "large"
    assert served_by("hello", key="sk-trial") == "budget"
    assert served_by("hello " * 3000, key="sk-trial") == "large"  # rules in order: long first
