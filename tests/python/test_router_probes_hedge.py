"""The router's active health probes and hedged attempts through the proxy on loopback
(issue 12). Probes: a deployment whose emulator fails its first probes (queued 503s) is
marked unhealthy at GET /admin/upstreams and comes back once the probes pass. Hedging: a
pool of a slow deployment (the emulator's x-emulator-latency-ms on its provider) and a fast
one, hedged after a fixed 100 ms: a request that starts on the slow one is answered by the
hedge and the slow call is counted as cancelled, not failed. One gateway and two emulators
per module; a handful of requests; waits poll /admin/upstreams with a bounded deadline."""
from __future__ import annotations

import http.client
import json
import time

import pytest

from conftest import EMULATOR, GATEWAY, Process, binary, http_json


def chat(port: int, model: str, i: int) -> tuple[int, dict | str]:
    body = {"model": model, "messages": [{"role": "user", "content": f"request {i}"}]}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"content-type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read().decode(errors="replace")
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw
    finally:
        conn.close()


def upstreams(port: int) -> dict[str, dict]:
    status, body = http_json("GET", f"http://127.0.0.1:{port}/admin/upstreams")
    assert status == 200, body
    return {d["id"]: d for r in body["routers"] for p in r["pools"] for d in p["deployments"]}


def wait_for(port: int, what, deadline_s: float = 20.0) -> dict[str, dict]:
    """Polls /admin/upstreams until what(deployments) holds (a bounded wait, not a timing
    assertion: the probes run every 200 ms)."""
    end = time.monotonic() + deadline_s
    while True:
        ups = upstreams(port)
        if what(ups):
            return ups
        assert time.monotonic() < end, ups
        time.sleep(0.05)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    probed_emu = Process([str(binary(EMULATOR)), "--port", "0", "--usage-counter", "words"])
    emu = Process([str(binary(EMULATOR)), "--port", "0", "--usage-counter", "words"])
    # The probed deployment's emulator fails its first three provider requests (probes).
    status, _ = http_json("POST", f"{probed_emu.base_url}/emulator/next",
                          json.dumps({"times": 3, "headers": {"x-emulator-status": "503"}}),
                          headers={"content-type": "application/json"})
    assert status == 200
    config = {
        "providers": {
            "probed-openai": {"type": "openai", "base_url": f"{probed_emu.base_url}/v1",
                              "api_key": "sk-probe"},
            "spare-openai": {"type": "openai", "base_url": f"{emu.base_url}/v1"},
            "slow-openai": {"type": "openai", "base_url": f"{emu.base_url}/v1",
                            "headers": {"x-emulator-latency-ms": "3000"}},
            "fast-openai": {"type": "openai", "base_url": f"{emu.base_url}/v1"}},
        "models": {"probed": {"provider": "probed-openai", "upstream_model": "gpt-4o-mini"},
                   "spare": {"provider": "spare-openai", "upstream_model": "gpt-4o-mini"},
                   "slow": {"provider": "slow-openai", "upstream_model": "gpt-4o-mini"},
                   "fast": {"provider": "fast-openai", "upstream_model": "gpt-4o-mini"}},
        "routes": [
            {"match": {"model": "probed-pool"}, "policy": "router",
             "pools": [{"name": "probed-pool", "deployments": [
                 {"id": "probed", "model": "probed",
                  "health_check": {"interval_ms": 200, "timeout_ms": 200, "jitter_ms": 0,
                                   "unhealthy_threshold": 2, "healthy_threshold": 2}},
                 {"id": "spare", "model": "spare"}]}]},
            {"match": {"model": "hedged-pool"}, "policy": "router",
             "pools": [{"name": "hedged-pool", "lb": {"policy": "round_robin"},
                        "hedge": {"delay_ms": 100},
                        "deployments": [{"id": "slow", "model": "slow"},
                                        {"id": "fast", "model": "fast"}]}]}]}
    path = tmp_path_factory.mktemp("probes") / "gateway.json"
    path.write_text(json.dumps(config))
    gw = Process([str(binary(GATEWAY)), "--config", str(path), "--port", "0"])
    yield gw, probed_emu
    gw.stop()
    emu.stop()
    probed_emu.stop()


def test_a_failing_deployment_is_marked_unhealthy_by_probes_and_comes_back(suite):
    gw, probed_emu = suite
    ups = wait_for(gw.port, lambda u: u["probed"]["probe"]["consecutive_failures"] >= 2)
    assert ups["probed"]["probe"]["healthy"] is False, ups["probed"]
    assert ups["probed"]["healthy"] is False
    assert ups["probed"]["probe"]["last_error"] == "HTTP 503"
    # The emulator answers from the fourth request on: two passing probes bring it back.
    ups = wait_for(gw.port, lambda u: u["probed"]["probe"]["healthy"])
    assert ups["probed"]["probe"]["consecutive_successes"] >= 2
    assert ups["probed"]["healthy"] is True
    assert ups["probed"]["attempts"] == 0  # only probes reached it
    # The probes were the dialect's one-token chat, with the provider's key.
    status, stats = http_json("GET", f"{probed_emu.base_url}/emulator/stats")
    assert status == 200
    probe = stats["recent"][-1]
    assert probe["method"] == "POST" and probe["target"] == "/v1/chat/completions", probe
    assert json.loads(probe["body"])["max_tokens"] == 1
    headers = {k.lower(): v for k, v in probe["headers"].items()}
    assert headers["authorization"] == "Bearer sk-probe"


def test_a_slow_first_deployment_is_hedged_and_the_loser_is_cancelled(suite):
    gw, _ = suite
    # Round robin (one counter for first attempts and hedges): the first request starts on
    # the slow deployment (3 s) and is hedged to the fast one after 100 ms; each later one
    # starts where the counter points, slow ones hedged the same way.
    n = 3
    for i in range(n):
        status, body = chat(gw.port, "hedged-pool", i)
        assert status == 200, body
        assert body["choices"][0]["message"]["content"]
    ups = upstreams(gw.port)
    assert ups["slow"]["cancelled"] >= 1, ups["slow"]
    assert ups["fast"]["hedges"] == ups["slow"]["cancelled"], (ups["slow"], ups["fast"])
    assert ups["slow"]["successes"] == 0  # every request was answered by the fast one
    assert ups["fast"]["successes"] == n
    assert ups["slow"]["consecutive_failures"] == 0  # a cancelled loser is no failure
    assert ups["slow"]["window"]["failures"] == 0
    assert ups["slow"]["in_flight"] == 0
