-- Shared by every scenario (run.py puts it in front of the scenario's own script).
-- Requests are built once, in init(), and cycled through, so the load generator spends its
-- single core sending requests rather than formatting them. Settings come from the environment:
-- BENCH_PREFIX (path prefix, with its slashes), BENCH_KEYS (how many paths to spread over).
-- BENCH_AUTH, when set, is sent as `Authorization: Bearer <it>` (an API key or an ID token).
local prefix = os.getenv("BENCH_PREFIX") or "/bench/"
local auth = os.getenv("BENCH_AUTH")
local keys = tonumber(os.getenv("BENCH_KEYS") or "1000")
local prepared = {}
local next_one = 0

function prepare(method, headers, body_for)
  if auth and auth ~= "" then
    headers = headers or {}
    headers["Authorization"] = "Bearer " .. auth
  end
  for i = 0, keys - 1 do
    local body = body_for and body_for(i) or nil
    prepared[i + 1] = wrk.format(method, prefix .. i, headers, body)
  end
end

function request()
  next_one = next_one % #prepared + 1
  return prepared[next_one]
end

-- One machine-readable line for run.py; wrk's own --latency report is printed above it.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"bad_status":%d,' ..
    '"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
