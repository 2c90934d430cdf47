#!/usr/bin/env bash
# The PyPI proxy (issue 16) against a hosted copy of the same projects, in one run:
# `uv pip install` of N projects through the proxy (cold: first ever; warm: from its cache) and
# from a wharf that hosts the very same wheels, and a proxied project page served from the
# proxy's cache next to the same project's hosted page under wrk.
#
# Three wharf processes: an upstream seeded with N small pure-python wheels (built once), a
# proxy pointed at it (WHARF_UPSTREAM_URL), and a "hosted copy" with the same N wheels
# uploaded. Servers on core 0, clients (uv, wrk) on core 1 when there are two cores.
#
# Usage: bench/proxy.sh BIN [N_PROJECTS]   (default 50)
#   BENCH_ROUNDS (default 5) warm install rounds per index, interleaved;
#   BENCH_WRK_ROUNDS (default 3) and BENCH_SECONDS (default 5) for the page throughput.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -ge 1 ] || { echo "usage: bench/proxy.sh BIN [N_PROJECTS]" >&2; exit 2; }
bin=$(realpath "$1")
projects=${2:-50}
rounds=${BENCH_ROUNDS:-5}
wrk_rounds=${BENCH_WRK_ROUNDS:-3}
duration=${BENCH_SECONDS:-5}
venv=${WHARF_VENV:-$HOME/.cache/wharf/venv}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
scripts/venv "$venv"
uv="$venv/bin/uv"
python="$venv/bin/python"

if [ "$(nproc)" -ge 2 ]; then server_cpu=0; client_cpu=1; else server_cpu=0; client_cpu=0; fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# Nothing but the index given on the command line: no config file, no find-links.
export UV_NO_CONFIG=1 UV_KEYRING_PROVIDER=disabled PIP_FIND_LINKS=
unset UV_INDEX_URL UV_EXTRA_INDEX_URL UV_DEFAULT_INDEX UV_INDEX

upstream_port=18620; proxy_port=18621; hosted_port=18622
upstream="http://127.0.0.1:$upstream_port"; proxy="http://127.0.0.1:$proxy_port"; hosted="http://127.0.0.1:$hosted_port"

start() { # NAME PORT [ENV=VALUE...] -> starts wharf on data-NAME, its log in NAME.log
  local name=$1 port=$2; shift 2
  env "$@" taskset -c "$server_cpu" "$bin" --data-dir "$work/data-$name" serve \
    --bind "127.0.0.1:$port" --base-url "http://127.0.0.1:$port" >>"$work/$name.log" 2>&1 &
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/_health" >/dev/null && return; sleep 0.1; done
  echo "$name did not start:" >&2; tail -5 "$work/$name.log" >&2; exit 1
}
account() { # NAME -> prints an upload token
  echo 'bench password' | "$bin" --data-dir "$work/data-$1" user create bench --email bench@example.org >/dev/null
  "$bin" --data-dir "$work/data-$1" token create bench
}
access_lines() { sleep 0.5; grep -c 'wharf::access' "$work/$1.log" || true; }

echo "==> building $projects wheels" >&2
dist="$work/dist"; mkdir -p "$dist"
"$python" - "$dist" "$projects" <<'PY'
import sys; sys.path.insert(0, "e2e")
from distributions import make_wheel
for i in range(int(sys.argv[2])):
    make_wheel(sys.argv[1], f"bench-proxied-{i:03d}", "1.0")
PY
for i in $(seq 0 $((projects - 1))); do printf 'bench-proxied-%03d\n' "$i"; done > "$work/requirements.txt"
page=bench-proxied-007

echo "==> the upstream and the hosted copy, each with the same $projects wheels" >&2
for name in upstream hosted; do
  token=$(account "$name")
  port=$upstream_port; [ "$name" = hosted ] && port=$hosted_port
  start "$name" "$port"
  "$venv/bin/twine" upload --non-interactive --disable-progress-bar --repository-url "http://127.0.0.1:$port/legacy/" \
    -u __token__ -p "$token" "$dist"/*.whl >/dev/null
done
echo "==> the proxy" >&2
start proxy "$proxy_port" WHARF_UPSTREAM_URL="$upstream/simple/" WHARF_UPSTREAM_TTL=10m
# The proxy hosts nothing: every name is proxied.
[ "$(curl -s -o /dev/null -w '%{http_code}' "$proxy/simple/$page/")" = 200 ] || { echo "the proxy does not serve $page" >&2; exit 1; }
# (That one page request is the only thing the proxy has fetched before the cold round.)

install() { # INDEX_URL -> seconds of one `uv pip install` of every project into a fresh venv
  rm -rf "$work/venv"
  "$uv" venv -q --no-cache --python "$python" "$work/venv" >/dev/null 2>&1
  local start end
  start=$(date +%s.%N)
  taskset -c "$client_cpu" "$uv" pip install -q --no-cache --reinstall --python "$work/venv/bin/python" \
    --index-url "$1" -r "$work/requirements.txt" >"$work/uv.log" 2>&1 \
    || { echo "uv pip install from $1 failed:" >&2; tail -20 "$work/uv.log" >&2; exit 1; }
  end=$(date +%s.%N)
  local got
  got=$(ls -d "$work"/venv/lib/python*/site-packages/bench_proxied_*.dist-info | wc -l)
  [ "$got" = "$projects" ] || { echo "$got of $projects projects installed from $1" >&2; exit 1; }
  printf '%.3f' "$(echo "$end - $start" | bc)"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "==> uv pip install of $projects projects: the hosted copy once to warm its page cache, the proxy cold" >&2
install "$hosted/simple/" >/dev/null
before=$(access_lines upstream)
cold=$(install "$proxy/simple/")
cold_upstream=$(( $(access_lines upstream) - before ))

echo "==> $rounds warm rounds each, interleaved" >&2
hosted_times=""; warm_times=""
before=$(access_lines upstream)
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then
    hosted_times+="$(install "$hosted/simple/") "; warm_times+="$(install "$proxy/simple/") "
  else
    warm_times+="$(install "$proxy/simple/") "; hosted_times+="$(install "$hosted/simple/") "
  fi
done
warm_upstream=$(( $(access_lines upstream) - before ))
hosted_median=$(echo "$hosted_times" | median); warm_median=$(echo "$warm_times" | median)

echo "==> /simple/$page/ under wrk: the proxy's cached page and the hosted copy's page, $wrk_rounds interleaved rounds of ${duration}s" >&2
json_accept='application/vnd.pypi.simple.v1+json'
wrk_rps() { # URL [HEADER] -> requests/s; every answer must be a 2xx
  local out
  out=$(taskset -c "$client_cpu" wrk -t1 -c32 -d"${duration}s" ${2:+-H "$2"} "$1")
  if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx answers from $1:" >&2; echo "$out" >&2; exit 1; fi
  echo "$out" | awk '/Requests\/sec/ {print $2}'
}
declare -A rps
formats=(HTML JSON); accepts=("" "Accept: $json_accept")
before=$(access_lines upstream)
for round in $(seq 1 "$wrk_rounds"); do
  order=(hosted proxy); [ $((round % 2)) = 0 ] && order=(proxy hosted)
  for f in 0 1; do
    for which in "${order[@]}"; do
      base=$hosted; [ "$which" = proxy ] && base=$proxy
      curl -sf ${accepts[$f]:+-H "${accepts[$f]}"} "$base/simple/$page/" >/dev/null
      rps[$which,$f]+="$(wrk_rps "$base/simple/$page/" "${accepts[$f]}") "
    done
  done
done
wrk_upstream=$(( $(access_lines upstream) - before ))

ratio() { echo "scale=3; $1 / $2" | bc | sed 's/^\./0./'; }
echo
echo "# The proxy against a hosted copy: $projects projects, \`$bin\` ($("$bin" --version 2>/dev/null || echo unknown)), $(date +%Y-%m-%d)"
echo
echo "| measure | hosted copy | proxy | proxy ÷ hosted | target |"
echo "|---|---|---|---|---|"
echo "| \`uv pip install\` of $projects projects, warm (median of $rounds) | ${hosted_median} s | ${warm_median} s | $(ratio "$warm_median" "$hosted_median") | ≤ 1.2 |"
echo "| \`uv pip install\`, proxy cold (first ever) | ${hosted_median} s | ${cold} s | $(ratio "$cold" "$hosted_median") | reported |"
for f in 0 1; do
  h=$(echo "${rps[hosted,$f]}" | median); p=$(echo "${rps[proxy,$f]}" | median)
  echo "| \`/simple/$page/\` ${formats[$f]}, req/s (median of $wrk_rounds) | $h | $p | $(ratio "$p" "$h") | ≥ 0.8 |"
done
echo
echo "Upstream requests: $cold_upstream during the cold install, $warm_upstream during the $rounds warm rounds, $wrk_upstream during wrk."
echo "Install times, s: hosted ${hosted_times}/ proxy warm ${warm_times}"
for f in 0 1; do echo "wrk ${formats[$f]} req/s: hosted ${rps[hosted,$f]}/ proxy ${rps[proxy,$f]}"; done
