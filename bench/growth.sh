#!/usr/bin/env bash
# Growth: the same measurements at 2,000 and at 100,000 projects (≈ 4,800 and ≈ 240,000
# files, generated, loaded through `wharf import` while `serve` runs), in one run:
# `/simple/<project>/` and `/pypi/<project>/json` req/s and p99 over 1,000 projects spread
# over the index, the `/simple/` root against nginx serving the same bytes, one upload's
# latency, RSS and the database's size. Figures go to bench/results-growth-<date>.md.
#
# Usage: bench/growth.sh [SMALL] [LARGE]   (default 2000 100000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
small=${1:-2000}
large=${2:-100000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wharf/target}
venv=${WHARF_VENV:-$HOME/.cache/wharf/venv}
python="$venv/bin/python"
duration=${BENCH_SECONDS:-10}

for tool in wrk nginx bc; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk nginx-light bc >/dev/null; }
done
scripts/venv "$venv"
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --bin wharf
bin="$CARGO_TARGET_DIR/release/wharf"

work=${BENCH_WORK:-$(mktemp -d)}
mkdir -p "$work"
chmod 755 "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"' EXIT
port=18610
url="http://127.0.0.1:$port"
data="$work/data"
echo 'bench password' | "$bin" --data-dir "$data" user create bench --email bench@example.org
token=$("$bin" --data-dir "$data" token create bench)
"$bin" --data-dir "$data" serve --bind "127.0.0.1:$port" --base-url "$url" 2>"$work/server.log" &
server=$!
for _ in $(seq 1 100); do curl -sf "$url/_health" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$server/status"; }
db_size() { du -cm "$data"/wharf.db* | awk 'END {print $1}'; }

load() { # FROM TO: generate and import projects FROM..TO
  echo "==> generating projects $1..$2" >&2
  local dir="$work/dists-$1"
  "$python" bench/generate.py "$dir" "$1" "$2" >/dev/null
  echo "==> importing them" >&2
  local start out
  start=$(date +%s.%N)
  out=$("$bin" --data-dir "$data" import "$dir" --owner bench --jobs 4 2>>"$work/import.log") \
    || { echo "import failed: $out" >&2; exit 1; }
  echo "$out" >> "$work/import.log"
  echo "$out" | grep -q ", 0 refused" || { echo "import refused files: $out" >&2; exit 1; }
  import_secs=$(echo "$(date +%s.%N) - $start" | bc)
  rm -rf "$dir"
}


measure() { # URL [HEADER] -> "requests/s p99" (wrk, every answer a 2xx)
  local out h=()
  [ -n "${2:-}" ] && h=(-H "$2")
  out=$(wrk -t2 -c64 -d"${duration}s" --latency "${h[@]}" "${@:3}" "$1")
  echo "$out" >> "$work/wrk.log"
  if echo "$out" | grep -q "Non-2xx"; then
    echo "wrk saw non-2xx answers from $1:" >&2; echo "$out" >&2; exit 1
  fi
  echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '$1 == "99%" {print $2}')"
}

spread() { # N PREFIX SUFFIX: 1,000 paths of projects spread over 0..N
  for k in $(seq 0 999); do
    printf '%s/bench-project-%06d/%s\n' "$2" $((k * $1 / 1000)) "$3"
  done
}

declare -A fig
settled() { # until the sealer has sealed every event of the import (its work is not the reads')
  for _ in $(seq 1 600); do
    [ "$(curl -sf "$url/metrics" | awk '$1 == "wharf_events_unsealed" {print $2}')" = 0 ] && return
    sleep 0.5
  done
  echo "the sealer did not catch up within 5 minutes" >&2; exit 1
}

at() { # N: the figures at N projects
  local n=$1
  settled
  echo "==> measuring at $n projects" >&2
  fig[$n,rss_loaded]=$(rss)
  fig[$n,db]=$(db_size)
  spread "$n" /simple "" > "$work/simple.paths"
  spread "$n" /pypi json > "$work/json.paths"
  # Every page once before measuring, as a warm index has them.
  "$python" - "$url" "$work/simple.paths" "$work/json.paths" <<'PY'
import sys, requests
session = requests.Session()
for listing in sys.argv[2:]:
    for path in open(listing).read().split():
        response = session.get(sys.argv[1] + path)
        assert response.status_code == 200, (path, response.status_code)
PY
  read -r fig[$n,simple_rps] fig[$n,simple_p99] < <(BENCH_PATHS="$work/simple.paths" measure "$url" "" -s bench/paths.lua)
  read -r fig[$n,json_rps] fig[$n,json_p99] < <(BENCH_PATHS="$work/json.paths" measure "$url" "" -s bench/paths.lua)
  # The root listing against nginx serving the very same bytes.
  local static="$work/static-$n"
  mkdir -p "$static/simple"
  curl -sf "$url/simple/" -o "$static/simple/index.html"
  fig[$n,root_bytes]=$(stat -c %s "$static/simple/index.html")
  cat > "$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  types { text/html html; }
  server { listen 127.0.0.1:18611; root $static; location / { index index.html; } }
}
CONF
  nginx -c "$work/nginx.conf"
  cmp -s <(curl -sf "$url/simple/") <(curl -sf "http://127.0.0.1:18611/simple/") \
    || { echo "wharf and nginx send different /simple/ bodies" >&2; exit 1; }
  read -r fig[$n,root_rps] fig[$n,root_p99] < <(measure "$url/simple/" "" -c16)
  read -r fig[$n,nginx_rps] fig[$n,nginx_p99] < <(measure "http://127.0.0.1:18611/simple/" "" -c16)
  nginx -c "$work/nginx.conf" -s stop
  sleep 0.5
  # One upload at a time, each a new release of its own project.
  read -r fig[$n,upload_median] fig[$n,upload_p90] < <("$python" - "$url" "$token" "$n" <<'PY'
import hashlib, statistics, sys, time, requests
sys.path.insert(0, "bench")
from load import wheel
url, token, n = sys.argv[1], sys.argv[2], sys.argv[3]
session = requests.Session()
times = []
for i in range(60):
    name = f"latency-probe-{n}"
    filename, data = wheel(name.replace("-", "_"), f"1.{i}")
    fields = {":action": "file_upload", "protocol_version": "1", "metadata_version": "2.1",
              "name": name, "version": f"1.{i}", "filetype": "bdist_wheel", "pyversion": "py3",
              "requires_python": ">=3.8",
              "sha256_digest": hashlib.sha256(data).hexdigest()}
    started = time.perf_counter()
    response = session.post(f"{url}/legacy/", data=fields, auth=("__token__", token),
                            files={"content": (filename, data, "application/octet-stream")})
    times.append((time.perf_counter() - started) * 1000)
    assert response.status_code == 200, response.text
times = times[10:]  # the first ones warm the connection and the caches
print(f"{statistics.median(times):.2f} {statistics.quantiles(times, n=10)[-1]:.2f}")
PY
)
  fig[$n,rss_read]=$(rss)
}

load 0 "$small"
fig[$small,import]=$import_secs
at "$small"
load "$small" "$large"
fig[$large,import]=$import_secs
at "$large"

ratio() { echo "scale=2; $1 / $2" | bc; }
mbs() { echo "scale=1; $1 * $2 / 1048576" | bc; }
results="$root/bench/results-growth-$(date +%Y-%m-%d).md"
s=$small l=$large
{
  echo "# Growth: $s and $l projects in one run (wrk -t2 -c64 -d${duration}s; the root -c16)"
  echo
  echo "| measure | $s projects | $l projects | $l ÷ $s |"
  echo "|---|---|---|---|"
  echo "| \`/simple/<p>/\` req/s (1,000 projects spread) | ${fig[$s,simple_rps]} | ${fig[$l,simple_rps]} | $(ratio "${fig[$l,simple_rps]}" "${fig[$s,simple_rps]}")x |"
  echo "| \`/simple/<p>/\` p99 | ${fig[$s,simple_p99]} | ${fig[$l,simple_p99]} | |"
  echo "| \`/pypi/<p>/json\` req/s | ${fig[$s,json_rps]} | ${fig[$l,json_rps]} | $(ratio "${fig[$l,json_rps]}" "${fig[$s,json_rps]}")x |"
  echo "| \`/pypi/<p>/json\` p99 | ${fig[$s,json_p99]} | ${fig[$l,json_p99]} | |"
  echo "| \`/simple/\` bytes | ${fig[$s,root_bytes]} | ${fig[$l,root_bytes]} | $(ratio "${fig[$l,root_bytes]}" "${fig[$s,root_bytes]}")x |"
  echo "| \`/simple/\` req/s (wharf) | ${fig[$s,root_rps]} | ${fig[$l,root_rps]} | $(ratio "${fig[$l,root_rps]}" "${fig[$s,root_rps]}")x |"
  echo "| \`/simple/\` MiB/s wharf | $(mbs "${fig[$s,root_rps]}" "${fig[$s,root_bytes]}") | $(mbs "${fig[$l,root_rps]}" "${fig[$l,root_bytes]}") | |"
  echo "| \`/simple/\` MiB/s nginx, same bytes | $(mbs "${fig[$s,nginx_rps]}" "${fig[$s,root_bytes]}") | $(mbs "${fig[$l,nginx_rps]}" "${fig[$l,root_bytes]}") | |"
  echo "| \`/simple/\` wharf ÷ nginx | $(ratio "${fig[$s,root_rps]}" "${fig[$s,nginx_rps]}")x | $(ratio "${fig[$l,root_rps]}" "${fig[$l,nginx_rps]}")x | |"
  echo "| one upload, median (ms) | ${fig[$s,upload_median]} | ${fig[$l,upload_median]} | $(ratio "${fig[$l,upload_median]}" "${fig[$s,upload_median]}")x |"
  echo "| one upload, p90 (ms) | ${fig[$s,upload_p90]} | ${fig[$l,upload_p90]} | |"
  echo "| RSS after the load (MiB) | ${fig[$s,rss_loaded]} | ${fig[$l,rss_loaded]} | |"
  echo "| RSS after the reads (MiB) | ${fig[$s,rss_read]} | ${fig[$l,rss_read]} | |"
  echo "| database on disk (MiB) | ${fig[$s,db]} | ${fig[$l,db]} | |"
  echo "| \`wharf import\` of the projects (s) | ${fig[$s,import]} | ${fig[$l,import]} (the other $((l - s))) | |"
} > "$results"
cat "$results"
