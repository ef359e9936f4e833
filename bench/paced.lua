-- wrk script for bench/run.sh's fixed-rate runs: each connection waits the given number of
-- milliseconds (the script's argument) after a response before its next request, so the load
-- stays below every proxy's capacity and latency shows the work added, not a queue.
dofile("bench/report.lua")
local pause = 0
init = function(args) pause = tonumber(args[1]) or 0 end
delay = function() return pause end
