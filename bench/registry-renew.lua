-- wrk script: Eureka renewals (PUT /eureka/apps/BENCH/bench-N) spread over
-- the registered instances, on keepalive connections.
local n = 0
local count = tonumber(os.getenv("BENCH_INSTANCES") or "10000")

request = function()
  n = n + 1
  local path = string.format("/eureka/apps/BENCH/bench-%d?status=UP&lastDirtyTimestamp=1700000000000", n % count)
  return wrk.format("PUT", path)
end
