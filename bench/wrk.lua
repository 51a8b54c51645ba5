-- wrk script of the benchmark harness (bench/run.py).
--
-- Arguments (after `--`): RATE THREADS
--   RATE 0       closed loop: every connection sends its next request as soon as
--                the previous response is complete (wrk's normal mode).
--   RATE > 0     paced: each wrk thread hands out send slots at RATE/THREADS per
--                second; a connection whose response is complete waits for the
--                next free slot (delay() below). wrk's timers have 1 ms
--                resolution, so requests leave in small bursts, but the average
--                rate is exact as long as enough connections are idle. A thread
--                that falls behind catches up on at most CATCH_UP_MS of missed
--                slots (sent at once); older missed slots are skipped, so a stall
--                of the machine does not turn into an unbounded burst.
-- At the end, one line "BENCH_JSON {...}" with the totals and latency percentiles (us).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local CATCH_UP_MS = 20
local interval_ms = nil
local next_slot = nil

function init(args)
  local rate = tonumber(args[1] or "0") or 0
  local threads = tonumber(args[2] or "1") or 1
  if rate > 0 then
    interval_ms = 1000 * threads / rate
    next_slot = now_ms()
  end
end

-- Defining delay() switches wrk to calling it before every request; keep it
-- trivial in closed-loop mode.
function delay()
  if interval_ms == nil then
    return 0
  end
  local t = now_ms()
  if next_slot < t - CATCH_UP_MS then
    next_slot = t - CATCH_UP_MS
  end
  next_slot = next_slot + interval_ms
  local d = next_slot - t
  if d < 0.5 then
    return 0
  end
  return math.floor(d + 0.5)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
