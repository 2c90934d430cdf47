#!/usr/bin/env bash
# Two release binaries of wharf on the same read paths, in one run: throughput measured
# interleaved (A, B, B, A, … so that drift hits both alike), and instructions per request
# counted by callgrind (repeatable whatever else the machine does). Figures go to
# bench/compare-<date>.md.
#
# Usage: bench/compare.sh BIN_A BIN_B [N_PROJECTS]   (default 2000)
#   BENCH_ROUNDS (default 6) wrk runs per path and binary, BENCH_SECONDS (default 5) each,
#   BENCH_CALLS (default 2000) requests per path under callgrind.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -ge 2 ] || { echo "usage: bench/compare.sh BIN_A BIN_B [N_PROJECTS]" >&2; exit 2; }
bins=("$(realpath "$1")" "$(realpath "$2")")
projects=${3:-2000}
rounds=${BENCH_ROUNDS:-6}
duration=${BENCH_SECONDS:-5}
calls=${BENCH_CALLS:-2000}
venv=${WHARF_VENV:-$HOME/.cache/wharf/venv}
for tool in wrk valgrind; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk valgrind >/dev/null; }
done
scripts/venv "$venv"

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
page=bench-project-$(printf %05d $((projects > 42 ? 42 : projects - 1)))
json_accept='application/vnd.pypi.simple.v1+json'
# The server on core 0, the load generator on core 1: neither steals the other's core.
server_cpu=0; client_cpu=1

start() { # INDEX [WRAPPER...] -> starts binary INDEX on its port; sets $pid
  local i=$1; shift
  local port=$((18610 + i))
  taskset -c "$server_cpu" "$@" "${bins[$i]}" --data-dir "$work/data-$i" serve \
    --bind "127.0.0.1:$port" --base-url "http://127.0.0.1:$port" 2>>"$work/server-$i.log" &
  pid=$!
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/simple/" >/dev/null && return; sleep 0.1; done
  echo "binary $i did not start:" >&2; tail -5 "$work/server-$i.log" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

echo "==> loading $projects projects into each binary's data directory" >&2
for i in 0 1; do
  echo 'bench password' | "${bins[$i]}" --data-dir "$work/data-$i" user create bench --email bench@example.org >/dev/null
  token=$("${bins[$i]}" --data-dir "$work/data-$i" token create bench)
  start "$i"
  "$venv/bin/python" bench/load.py "http://127.0.0.1:$((18610 + i))" "$token" "$projects"
  stop
done
# The wheels' bytes (and so their addresses) differ between the two data directories.
declare -A file_path
for i in 0 1; do
  start "$i"
  file_path[$i]=$(curl -sf "http://127.0.0.1:$((18610 + i))/pypi/$page/json" \
    | "$venv/bin/python" -c 'import json,sys,urllib.parse; print(urllib.parse.urlparse(json.load(sys.stdin)["urls"][0]["url"]).path)')
  stop
done

labels=("/simple/" "/simple/$page/ (HTML)" "/simple/$page/ (JSON)" "/pypi/$page/json" "/files/… (a wheel)")
paths=("/simple/" "/simple/$page/" "/simple/$page/" "/pypi/$page/json" "FILE")
headers=("" "" "Accept: $json_accept" "" "")

wrk_rps() { # URL HEADER -> requests/s; every answer must be a 2xx
  local out
  out=$(taskset -c "$client_cpu" wrk -t1 -c32 -d"${duration}s" ${2:+-H "$2"} "$1")
  if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx answers from $1" >&2; exit 1; fi
  echo "$out" | awk '/Requests\/sec/ {print $2}'
}

echo "==> throughput, $rounds interleaved rounds of ${duration}s per path and binary" >&2
declare -A rps
for round in $(seq 1 "$rounds"); do
  # A B, then B A: a trend over the run favours neither.
  order=(0 1); [ $((round % 2)) = 0 ] && order=(1 0)
  for i in "${order[@]}"; do
    start "$i"
    for p in "${!paths[@]}"; do
      path=${paths[$p]}; [ "$path" = FILE ] && path=${file_path[$i]}
      url="http://127.0.0.1:$((18610 + i))$path"
      curl -sf ${headers[$p]:+-H "${headers[$p]}"} "$url" >/dev/null # warm the page cache
      rps[$i,$p]+="$(wrk_rps "$url" "${headers[$p]}") "
    done
    stop
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "==> instructions per request under callgrind ($calls requests per path)" >&2
declare -A instr
for i in 0 1; do
  start "$i" valgrind --tool=callgrind --callgrind-out-file="$work/cg-$i.%p" --dump-instr=no
  for p in "${!paths[@]}"; do
    path=${paths[$p]}; [ "$path" = FILE ] && path=${file_path[$i]}
    url="http://127.0.0.1:$((18610 + i))$path"
    "$venv/bin/python" bench/requests_loop.py "$url" "${headers[$p]}" 50 # warm up
    callgrind_control --zero "$pid" >/dev/null
    "$venv/bin/python" bench/requests_loop.py "$url" "${headers[$p]}" "$calls"
    callgrind_control --dump "$pid" >/dev/null
    dump="$work/cg-$i.$pid.$((p + 1))"
    for _ in $(seq 1 100); do [ -s "$dump" ] && break; sleep 0.1; done
    instr[$i,$p]=$(awk -v n="$calls" '/^(summary|totals):/ {print int($2 / n); exit}' "$dump")
  done
  stop
done

results="$root/bench/compare-$(date +%Y-%m-%d).md"
{
  echo "# A = \`${bins[0]}\` ($("${bins[0]}" --version 2>/dev/null || echo unknown)), B = \`${bins[1]}\` ($("${bins[1]}" --version 2>/dev/null || echo unknown))"
  echo
  echo "$projects projects; wrk -t1 -c32, server on core $server_cpu and wrk on core $client_cpu, $rounds interleaved rounds of ${duration}s (median); callgrind over $calls keep-alive requests per path."
  echo
  echo "| path | A req/s (median) | B req/s (median) | B ÷ A | A instructions/request | B instructions/request | B ÷ A |"
  echo "|---|---|---|---|---|---|---|"
  for p in "${!paths[@]}"; do
    a=$(echo "${rps[0,$p]}" | median); b=$(echo "${rps[1,$p]}" | median)
    echo "| ${labels[$p]} | $a | $b | $(echo "scale=3; $b / $a" | bc) | ${instr[0,$p]} | ${instr[1,$p]} | $(echo "scale=3; ${instr[1,$p]} / ${instr[0,$p]}" | bc) |"
  done
  echo
  echo "Every wrk run, req/s: A then B per path"
  for p in "${!paths[@]}"; do echo "- ${labels[$p]}: A ${rps[0,$p]}/ B ${rps[1,$p]}"; done
} > "$results"
cat "$results"
