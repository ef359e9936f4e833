-- wrk script for bench/run.sh's paced runs: after each response a connection waits before its
-- next request, so the load stays far below every proxy's capacity and latency shows the work
-- a request adds, not a queue. Arguments: the mean wait in milliseconds, then the kind of wait:
--   independent  (default) a random wait drawn from an exponential distribution with that
--                mean, the think time of users who do not know about each other;
--   in-step      exactly that wait every time, so connections answered together come back
--                together (see bench/README.md: what in-step pacing measures).
dofile("bench/report.lua")
local mean, fixed = 0, false
init = function(args)
  mean = tonumber(args[1]) or 0
  fixed = args[2] == "in-step"
  math.randomseed(os.time())
end
delay = function()
  if fixed then return mean end
  return -math.log(1 - math.random()) * mean
end
