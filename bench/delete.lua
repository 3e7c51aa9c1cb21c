-- Delete scenario: DELETE /v1/outputs/{id}, each request a different output while they last.
--
-- Environment (set by bench/run.py):
--   BENCH_IDS_FILE  lines "<key number> <output id>": the outputs to delete and the key that owns each
--   BENCH_KEYS      the API keys, comma-separated, numbered from 1 in that order
--
-- Thread t of n takes lines t, t+n, t+2n, ... so no two threads delete the same output. When a
-- thread has used its share it starts over: those requests repeat a delete (200, nothing written),
-- and bench/run.py reports how many requests found no fresh output.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

wrk.method = "DELETE"

local threads_seen = 0
function setup(thread)
   threads_seen = threads_seen + 1
   thread:set("thread_id", threads_seen)
end

local targets = {}
local position = 0
local headers = {}
local prefix = ""

local function split(text, separator)
   local parts = {}
   for part in string.gmatch(text, "([^" .. separator .. "]+)") do
      parts[#parts + 1] = part
   end
   return parts
end

function init(args)
   local keys = split(os.getenv("BENCH_KEYS") or "", ",")
   local path = os.getenv("BENCH_IDS_FILE")
   local count = tonumber(os.getenv("BENCH_THREADS") or "1")
   prefix = os.getenv("BENCH_PATH_PREFIX") or "/v1/outputs/"
   for name, value in pairs(wrk.headers) do
      headers[name] = value
   end
   local line_number = 0
   for line in io.lines(path) do
      line_number = line_number + 1
      if (line_number - 1) % count == thread_id - 1 then
         local key_number, output_id = line:match("^(%d+) (%S+)$")
         targets[#targets + 1] = { "Bearer " .. keys[tonumber(key_number)], prefix .. output_id }
      end
   end
   if #targets == 0 then
      error("no outputs to delete for thread " .. thread_id)
   end
end

function request()
   position = position % #targets + 1
   local target = targets[position]
   headers["Authorization"] = target[1]
   return wrk.format(nil, target[2], headers, nil)
end
