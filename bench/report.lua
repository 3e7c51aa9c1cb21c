-- Shared by the bench scenarios: prints wrk's results as one JSON line.
--
-- Loaded with dofile() from the scenario scripts, in every Lua state wrk
-- creates (the setup/done state and one per thread); only the done state
-- ever calls done(). bench/run.py looks for the line starting with
-- "BENCH_RESULT " and parses the JSON after it.
--
-- Units: durations and latencies are microseconds (as wrk reports them).
-- errors_status counts HTTP responses with a status > 399; wrk counts these
-- itself, so no response() callback is needed (a response() callback makes
-- wrk parse every response body and lowers throughput).

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"mean_us":%.3f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
      '"errors_status":%d,"errors_connect":%d,"errors_read":%d,' ..
      '"errors_write":%d,"errors_timeout":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max,
      e.status, e.connect, e.read, e.write, e.timeout))
end
