-- Upload scenario: POST a constant 1 KB JSON body, with an Idempotency-Key
-- that is unique for every request of the run.
--
-- Environment (set by bench/run.py):
--   BENCH_UPLOAD_BODY  the JSON request body (required)
--   BENCH_RUN_ID       a token unique to this wrk run, so keys never repeat
--                      across runs against the same server (e.g. warm-up)
--   BENCH_KEYS         optional: API keys, comma-separated; each request uses
--                      the next one (uploads spread over several accounts)
--
-- Keys look like "bench-<run id>-t<thread>-<counter>": setup() numbers the
-- threads 1..N and each thread counts its own requests, so two threads can
-- never produce the same key.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local body = os.getenv("BENCH_UPLOAD_BODY")
if body == nil or body == "" then
   error("BENCH_UPLOAD_BODY is not set")
end
local run_id = os.getenv("BENCH_RUN_ID") or tostring(os.time())

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

-- setup() runs in the main Lua state, once per thread, before they start.
local threads_seen = 0
function setup(thread)
   threads_seen = threads_seen + 1
   thread:set("thread_id", threads_seen)
end

-- init() and request() run in each thread's own Lua state.
local headers = {}
local counter = 0
local key_prefix = ""
local keys = {}

function init(args)
   -- wrk.format() uses the table it is given instead of wrk.headers, so copy
   -- the command-line headers (Authorization) and the Content-Type once.
   for name, value in pairs(wrk.headers) do
      headers[name] = value
   end
   key_prefix = string.format("bench-%s-t%d-", run_id, thread_id)
   for key in string.gmatch(os.getenv("BENCH_KEYS") or "", "([^,]+)") do
      keys[#keys + 1] = "Bearer " .. key
   end
end

function request()
   counter = counter + 1
   headers["Idempotency-Key"] = key_prefix .. counter
   if #keys > 0 then
      -- Threads start at different keys so the accounts are loaded evenly.
      headers["Authorization"] = keys[(counter + thread_id) % #keys + 1]
   end
   return wrk.format(nil, nil, headers, nil)
end
