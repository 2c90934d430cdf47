-- wrk: each thread walks the paths listed in the file $BENCH_PATHS in turn, from a random
-- start (bench/growth.sh, bench/scaleout.py).
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local i = math.random(#paths)
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
