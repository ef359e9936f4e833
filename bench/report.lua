-- wrk script for bench/run.sh: after the run, one line the script reads:
-- RESULT requests/s p50 p99 p99.9 (microseconds) errors requests
done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format("RESULT %.0f %d %d %d %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    errors, summary.requests))
end
