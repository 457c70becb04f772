-- bench/proxy/chat.lua: the wrk request of run_proxy_bench.sh.
--   BENCH_BODY=bench/proxy/chat.json wrk -t1 -c32 -d7s -s bench/proxy/chat.lua http://127.0.0.1:PORT
-- POSTs the JSON file named by BENCH_BODY to /v1/chat/completions: chat.json (a small
-- non-streaming chat completion whose 20-word user message the emulator echoes) or
-- chat_stream.json (the same with "stream": true; the emulator, started with --chunks 20,
-- streams 20 content deltas, unpaced). Every target gets the same bytes; curl sends the same
-- files in the script's sanity check.
-- At the end prints one line for the script to parse: "RESULT key=value ...", latencies in us.
local path = os.getenv("BENCH_BODY") or "chat.json"
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
-- LiteLLM's master key (see run_proxy_bench.sh); the other targets ignore it.
wrk.headers["Authorization"] = "Bearer sk-modeenvoy-bench-4f9c2a7e81d34b6c9e05a1f7d2c8b3e6"
wrk.body = f:read("*a")
f:close()

-- No response() callback: defining one makes wrk hand every body to Lua and slows it down.
-- Non-2xx answers still show up in errors_status.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "errors_connect=%d errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout))
end
