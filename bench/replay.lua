-- wrk script: replay pre-built raw HTTP requests, so every request can be distinct (a
-- fresh PIN and message id per webhook). bench/load.py writes one file per wrk thread,
-- requests separated by NUL bytes, and passes: <file prefix> <once|cycle> <ms between
-- sends per thread, 0 = as fast as the connections go>.
--
-- once:  each request is sent at most once; a thread that runs out stops (the run's
--        duration then ends early, so requests/s stay right).
-- cycle: start over at the end (lookups, PIN generation, redemptions).
-- A positive interval paces the thread (LuaJIT's ffi gives a monotonic clock): each send
-- takes the next free slot, so a thread never bursts to catch up.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1] .. "." .. id, "rb"))
  local data = f:read("*a")
  f:close()
  reqs = {}
  for r in data:gmatch("([^%z]+)%z") do
    reqs[#reqs + 1] = r
  end
  n = #reqs
  once = args[2] == "once"
  interval = tonumber(args[3]) or 0
  i = 0
  exhausted = 0
  next_at = nil
  bad = 0
  first_bad = ""
end

function request()
  i = i + 1
  if i > n then
    if once then
      exhausted = 1
      i = n
      wrk.thread:stop()
    else
      i = 1
    end
  end
  return reqs[i]
end

-- Answers >= 400: counted by wrk as errors; the first one's status and body are kept.
function response(status, headers, body)
  if status >= 400 then
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

function delay()
  if interval <= 0 then
    return 0
  end
  local t = now_ms()
  if next_at == nil or next_at < t then
    next_at = t
  end
  local wait = next_at - t
  next_at = next_at + interval
  return math.floor(wait)
end

function done(summary, latency, requests)
  local sent, exhausted_threads = 0, 0
  for _, t in ipairs(threads) do
    sent = sent + t:get("i")
    exhausted_threads = exhausted_threads + t:get("exhausted")
    if t:get("first_bad") ~= "" then
      io.write("BENCH_ERROR " .. t:get("bad") .. " answers like: " .. t:get("first_bad") .. "\n")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "status_errors": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"sent": %d, "exhausted_threads": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, sent, exhausted_threads))
end
