-- The original prototype's "create 2,000 things": PUT new things, each at a path never used
-- before (BENCH_PREFIX is fresh for every run), until BENCH_STOP_AFTER have answered. wrk has no
-- request count, so the thread times itself (LuaJIT's ffi, a monotonic clock), stops, and says
-- so on stdout; run.py then interrupts wrk, whose done() reports that time.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *now);
]]
local function now_us()
  local t = ffi.new("bench_timespec")
  ffi.C.clock_gettime(1, t) -- CLOCK_MONOTONIC
  return tonumber(t.tv_sec) * 1e6 + tonumber(t.tv_nsec) / 1e3
end

local body = os.getenv("BENCH_BODY")
local stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "2000")
local answered = 0
local sent = 0
local started = nil
elapsed_us = 0
created = 0

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function request()
  started = started or now_us()
  sent = sent + 1
  return wrk.format("PUT", prefix .. sent, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  answered = answered + 1
  if answered > stop_after then
    return -- answers still in flight when the thread was stopped
  end
  if status == 201 then
    created = created + 1
  end
  if answered == stop_after then
    elapsed_us = now_us() - started
    io.write("CREATED\n")
    io.flush()
    wrk.thread:stop()
  end
end

-- Report the time to the stop_after-th answer, not wrk's whole -d.
local report = done
function done(summary, latency, requests)
  local thread = threads[1]
  summary.duration = thread:get("elapsed_us")
  summary.requests = stop_after
  summary.errors.status = stop_after - thread:get("created")
  report(summary, latency, requests)
end
