"""The router in the proxy (issue 12): `demo-resilient` of the default configuration, and a
fault-injection suite on loopback: three deployments of mixed dialects (OpenAI, Anthropic,
Gemini), each its own emulator with seeded faults (30% 5xx, 10% resets and 3% timeouts; 429
bursts with Retry-After; none), and 6,000 requests through the proxy, half of them streamed.
Every client request succeeds while one deployment stays healthy, and the attempts stay
within the retry budget (attempts <= requests x (1 + budget)) both as the router counts them
(GET /admin/upstreams) and as the deployments received them (each emulator's GET
/emulator/stats). Then a retry budget that binds (20% with a floor of 2, 16 clients, a
deployment failing 80% of its calls): retries in flight never exceed it, a refused retry
hands the client the last attempt's error, and attempts <= requests x 1.2 on both counts.
One gateway per suite; bounded request counts; no sleeps."""
from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import EMULATOR, GATEWAY, Process, binary, http_json


def chat(port: int, model: str, stream: bool, i: int, timeout: float = 30.0) -> tuple[int, str]:
    """One chat completion over a fresh connection: (status, body as text)."""
    body = {"model": model, "stream": stream,
            "messages": [{"role": "user", "content": f"request {i}"}]}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def succeeded(status: int, body: str, stream: bool, i: int) -> bool:
    """A 200 whose answer is complete: the echo of the prompt, and for a stream its [DONE]
    without an error event."""
    if status != 200:
        return False
    if stream:
        return body.rstrip().endswith("data: [DONE]") and '"error"' not in body and \
            f"{i}" in body
    return json.loads(body)["choices"][0]["message"]["content"] is not None


def run(port: int, model: str, n: int, concurrency: int) -> list[tuple[int, int, str]]:
    """n requests, every other one streamed; the failures as (i, status, body)."""
    def one(i: int):
        stream = i % 2 == 1
        status, body = chat(port, model, stream, i)
        return None if succeeded(status, body, stream, i) else (i, status, body[:2000])
    with ThreadPoolExecutor(concurrency) as pool:
        return [f for f in pool.map(one, range(n)) if f is not None]


def attempts(port: int) -> dict[str, dict]:
    status, body = http_json("GET", f"http://127.0.0.1:{port}/admin/upstreams")
    assert status == 200, body
    return {d["id"]: d for r in body["routers"] for p in r["pools"] for d in p["deployments"]}


@pytest.fixture(scope="module")
def default_gateway():
    """The proxy on its embedded default configuration (what `make run` serves)."""
    gw = Process([str(binary(GATEWAY)), "--port", "0"], env={"OPENAI_API_KEY": ""})
    yield gw
    gw.stop()


def test_every_request_to_demo_resilient_succeeds(default_gateway):
    n = 200
    failures = run(default_gateway.port, "demo-resilient", n, concurrency=8)
    assert failures == [], failures[:5]
    ups = attempts(default_gateway.port)
    assert set(ups) == {"flaky", "ratelimited", "healthy"}
    total = sum(d["attempts"] for d in ups.values())
    successes = sum(d["successes"] for d in ups.values())
    assert successes == n
    # retry_budget.percent is 50 in the default configuration
    assert n <= total <= n * 1.5, ups
    # the faulty deployments did fail some attempts (the faults are real)
    assert ups["flaky"]["attempts"] > ups["flaky"]["successes"], ups
    assert ups["healthy"]["successes"] > 0


def test_admin_upstreams_is_guarded_like_the_other_admin_endpoints(default_gateway):
    # The proxy's admin guard runs first: loopback client and Host, no Origin (as for
    # /admin/config); the test is a loopback client, so only Origin and Host can be shown.
    url = f"{default_gateway.base_url}/admin/upstreams"
    status, body = http_json("GET", url)
    assert status == 200 and body["object"] == "upstreams"
    for path in ("/admin/upstreams", "/admin/config"):
        status, body = http_json("GET", f"{default_gateway.base_url}{path}",
                                 headers={"Origin": "http://evil.example"})
        assert status == 403 and "Origin" in body["error"]["message"], (path, body)
        status, body = http_json("GET", f"{default_gateway.base_url}{path}",
                                 headers={"Host": "evil.example"})
        assert status == 403 and "loopback Host" in body["error"]["message"], (path, body)
    status, _ = http_json("POST", url, b"{}", headers={"content-type": "application/json"})
    assert status == 404  # GET only


FLAKY = "5xx=0.3,reset=0.1,timeout=0.03,seed=21"
BURST = "429=5/20,retry_after=1,seed=22"


def emulator(*flags: str) -> Process:
    return Process([str(binary(EMULATOR)), "--port", "0", "--usage-counter", "words", *flags])


def received(emu: Process) -> dict:
    """The emulator's counters: `requests` it read (faulted ones included), `aborted`
    responses (resets, and stalls the client gave up on)."""
    status, stats = http_json("GET", f"{emu.base_url}/emulator/stats")
    assert status == 200, stats
    return stats


def start_gateway(tmp_path_factory, config: dict) -> Process:
    path = tmp_path_factory.mktemp("router") / "gateway.json"
    path.write_text(json.dumps(config))
    return Process([str(binary(GATEWAY)), "--config", str(path), "--port", "0"])


@pytest.fixture(scope="module")
def fault_suite(tmp_path_factory):
    """One emulator per deployment, so each one's /emulator/stats counts what that
    deployment received."""
    emus = {"flaky": emulator("--fault", FLAKY), "burst": emulator("--fault", BURST),
            "healthy": emulator()}
    # The flaky deployment's timeouts cost 400 ms each; the others get room for a loaded
    # CI machine.
    fast = {"connect_ms": 1000, "first_byte_ms": 400, "idle_ms": 2000, "total_ms": 10000}
    roomy = {"connect_ms": 2000, "first_byte_ms": 5000, "idle_ms": 5000, "total_ms": 20000}
    config = {
        "providers": {
            "flaky-openai": {"type": "openai", "base_url": f"{emus['flaky'].base_url}/v1",
                             "timeouts": fast},
            "burst-anthropic": {"type": "anthropic", "base_url": emus["burst"].base_url,
                                "timeouts": roomy},
            "healthy-gemini": {"type": "gemini",
                               "base_url": f"{emus['healthy'].base_url}/v1beta",
                               "api_key": "k", "timeouts": roomy}},
        "models": {"flaky": {"provider": "flaky-openai", "upstream_model": "gpt-4o-mini"},
                   "burst": {"provider": "burst-anthropic", "upstream_model": "claude-x"},
                   "healthy": {"provider": "healthy-gemini",
                               "upstream_model": "gemini-2.5-flash"}},
        # Short ejections (200 ms, at most 1 s) keep the flaky deployment in rotation for
        # the whole run, so its faults keep coming; the burst deployment's 429s cool it
        # down for their Retry-After (1 s) each.
        "routes": [{"match": {"model": "resilient"}, "policy": "router",
                    "retry_budget": {"percent": 50, "min_concurrency": 16},
                    "pools": [{"name": "resilient", "lb": {"policy": "peak_ewma"},
                               "outlier": {"consecutive_failures": 5,
                                           "base_ejection_ms": 200, "max_ejection_ms": 1000,
                                           "ejection_jitter_ms": 100},
                               "retry": {"max_attempts": 3},
                               "deployments": [{"id": "flaky", "model": "flaky"},
                                               {"id": "burst", "model": "burst"},
                                               {"id": "healthy", "model": "healthy"}]}]}]}
    gw = start_gateway(tmp_path_factory, config)
    yield gw, emus
    gw.stop()
    for emu in emus.values():
        emu.stop()


def test_fault_injection_no_failed_client_request_and_no_retry_storm(fault_suite):
    gw, emus = fault_suite
    n = 6000  # 3,000 streamed, 3,000 whole
    failures = run(gw.port, "resilient", n, concurrency=16)
    assert failures == [], (len(failures), failures[:5])
    ups = attempts(gw.port)
    got = {name: received(emu) for name, emu in emus.items()}
    total = sum(d["attempts"] for d in ups.values())
    assert sum(d["successes"] for d in ups.values()) == n
    assert n <= total <= n * 1.5, ups  # attempts <= requests x (1 + budget 50%)
    # The faults are real: the faulty deployments failed attempts, the healthy one served.
    assert ups["flaky"]["attempts"] > ups["flaky"]["successes"], ups
    assert ups["burst"]["attempts"] > ups["burst"]["successes"], ups
    assert ups["healthy"]["successes"] > 0
    # What the deployments received. Only the flaky one resets connections, and only it
    # may receive more than the router counted: libcurl sends a request again, once, on a
    # fresh connection when a reused one is reset before any byte came back, below the
    # router's accounting (so every extra request is one of its aborted responses).
    for name in ("burst", "healthy"):
        assert got[name]["requests"] == ups[name]["attempts"], (name, got[name], ups[name])
    resent = got["flaky"]["requests"] - ups["flaky"]["attempts"]
    assert 0 <= resent <= got["flaky"]["aborted"], (got["flaky"], ups["flaky"])
    # ... and the bound holds on the wire too.
    assert sum(g["requests"] for g in got.values()) <= n * 1.5, (got, ups)


# The retry budget binding: percent 20 with min_concurrency 2, 16 clients at once, so at
# most max(2, 16 x 20%) = 3 retries may be in flight. Tier 0 fails 80% of its calls (500s,
# no resets: see the next test) and is never ejected, so every request's first attempt
# goes there; tier 1 answers every call, 50 ms late, and sees only retries.
BUDGET = {"percent": 20, "min_concurrency": 2}
BUDGET_CLIENTS = 16


def budget_route(failing_url: str, healthy_url: str) -> dict:
    timeouts = {"connect_ms": 2000, "first_byte_ms": 5000, "idle_ms": 5000, "total_ms": 20000}
    return {
        "providers": {
            "failing-openai": {"type": "openai", "base_url": f"{failing_url}/v1",
                               "timeouts": timeouts},
            "healthy-anthropic": {"type": "anthropic", "base_url": healthy_url,
                                  "timeouts": timeouts}},
        "models": {"failing": {"provider": "failing-openai", "upstream_model": "gpt-4o-mini"},
                   "healthy": {"provider": "healthy-anthropic", "upstream_model": "claude-x"}},
        "routes": [{"match": {"model": "budgeted"}, "policy": "router",
                    "retry_budget": BUDGET,
                    "pools": [{"name": "budgeted",
                               "outlier": {"consecutive_failures": 0, "failure_percentage": 0},
                               "retry": {"max_attempts": 2},
                               "deployments": [{"id": "failing", "model": "failing", "tier": 0},
                                               {"id": "healthy", "model": "healthy",
                                                "tier": 1}]}]}]}


def run_with_retries_watched(gw: Process, n: int) -> tuple[list, list[int]]:
    """run() at BUDGET_CLIENTS, while another client reads the healthy deployment's
    in-flight attempts from /admin/upstreams, back to back: (failures, the readings)."""
    readings: list[int] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            readings.append(attempts(gw.port)["healthy"]["in_flight"])
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        failures = run(gw.port, "budgeted", n, concurrency=BUDGET_CLIENTS)
    finally:
        done.set()
        watcher.join()
    return failures, readings


@pytest.fixture(scope="module")
def budget_suite(tmp_path_factory):
    emus = {"failing": emulator("--fault", "5xx=0.8,seed=31"),
            "healthy": emulator("--latency-ms", "50")}
    gw = start_gateway(tmp_path_factory,
                       budget_route(emus["failing"].base_url, emus["healthy"].base_url))
    yield gw, emus
    gw.stop()
    for emu in emus.values():
        emu.stop()


def test_retry_budget_binds_and_a_refused_retry_gets_the_last_error(budget_suite):
    gw, emus = budget_suite
    n = 800  # every other one streamed
    failures, readings = run_with_retries_watched(gw, n)
    ups = attempts(gw.port)
    got = {name: received(emu) for name, emu in emus.items()}
    failing, healthy = ups["failing"], ups["healthy"]
    assert failing["attempts"] == n and failing["ejections"] == 0, failing
    retries = healthy["attempts"]
    assert healthy["successes"] == retries, healthy
    # A request whose first attempt failed ends without a retry only when the budget
    # refused one (the healthy tier is always there): the client then gets the last
    # attempt's error, the upstream's 500 in OpenAI's shape, streamed or not (no byte had
    # gone out).
    refused = failing["attempts"] - failing["successes"] - retries
    assert refused == len(failures) > 0, (len(failures), ups)
    for i, status, body in failures:
        assert status == 500, (i, status, body)
        assert json.loads(body)["error"]["type"] == "server_error", (i, body)
    # The budget: retries in flight never above max(min, percent of active requests) ...
    # (a request stays active until its plan ends, a moment after its client had the
    # answer; 16 clients keep that below 20 requests, where 20% would allow a 4th retry)
    allowed = max(BUDGET["min_concurrency"], BUDGET_CLIENTS * BUDGET["percent"] // 100)
    assert readings and max(readings) <= allowed, Counter(readings)
    # ... and attempts <= requests x (1 + 20%), counted by the router and received upstream
    # (500s keep the connection: nothing is sent twice). The budget bounds retries in
    # flight, not a share of requests; here a retry holds its share for 50 ms or more while
    # first attempts fail at once, so without the budget every failed request (~80%) would
    # retry and with it few do.
    assert failing["attempts"] + retries <= n * 1.2, ups
    assert (got["failing"]["requests"], got["healthy"]["requests"]) == (n, retries), got


@pytest.fixture(scope="module")
def budget_resets_suite(tmp_path_factory):
    emus = {"failing": emulator("--fault", "5xx=0.5,reset=0.3,seed=31"),
            "healthy": emulator("--latency-ms", "50")}
    gw = start_gateway(tmp_path_factory,
                       budget_route(emus["failing"].base_url, emus["healthy"].base_url))
    yield gw, emus
    gw.stop()
    for emu in emus.values():
        emu.stop()


@pytest.mark.xfail(strict=True, reason=(
    "gateway bug: libcurl sends a request again, on a fresh connection, when a reused one is "
    "reset before any response byte (Curl_retry_request), and lib/gateway/curl_upstream.cc "
    "lets it (PrereqCallback returns CURL_PREREQFUNC_OK on the second call too): the router "
    "neither counts nor budgets that attempt, so a resetting upstream receives ~26% more "
    "requests than planned, above a 20% budget on their own"))
def test_retry_budget_bounds_what_a_resetting_upstream_receives(budget_resets_suite):
    gw, emus = budget_resets_suite
    n = 800
    run_with_retries_watched(gw, n)
    ups = attempts(gw.port)
    got = {name: received(emu) for name, emu in emus.items()}
    # The router's side holds, as with 500s alone ...
    assert ups["failing"]["attempts"] + ups["healthy"]["attempts"] <= n * 1.2, ups
    # ... but every request the upstream received should be an attempt the router planned.
    assert got["failing"]["requests"] == ups["failing"]["attempts"], (got["failing"], ups)
    assert sum(g["requests"] for g in got.values()) <= n * 1.2, (got, ups)
