#!/usr/bin/env bash
# Read-path throughput of wharf next to the same bytes served as static files by nginx (the
# machine's limit), plus upload time and memory. Figures go to bench/results-<date>.md.
#
# Usage: bench/run.sh [N_PROJECTS]   (default 2000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
projects=${1:-2000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wharf/target}
venv=${WHARF_VENV:-$HOME/.cache/wharf/venv}
duration=${BENCH_SECONDS:-10}

for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null; }
done
scripts/venv "$venv"
# BENCH_NO_BUILD=1 measures the release binary already built.
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --bin wharf
bin="$CARGO_TARGET_DIR/release/wharf"

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT
port=18600
url="http://127.0.0.1:$port"
echo 'bench password' | "$bin" --data-dir "$work/data" user create bench --email bench@example.org
token=$("$bin" --data-dir "$work/data" token create bench)
"$bin" --data-dir "$work/data" serve --bind "127.0.0.1:$port" --base-url "$url" 2>"$work/server.log" &
server=$!
for _ in $(seq 1 100); do curl -sf "$url/_health" >/dev/null && break; sleep 0.1; done

echo "==> loading $projects projects" >&2
start=$(date +%s.%N)
"$venv/bin/python" bench/load.py "$url" "$token" "$projects"
load_secs=$(echo "$(date +%s.%N) - $start" | bc)
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$server/status"; }
rss_loaded=$(rss)

# The same bytes as static files for nginx.
page=bench-project-00042
json_accept='application/vnd.pypi.simple.v1+json'
static="$work/static"
# nginx's workers run as an unprivileged user: they must be able to read the files (a
# mktemp directory is private, and nginx would answer 403 pages).
chmod 755 "$work"
mkdir -p "$static/simple/$page" "$static/json/simple/$page" "$static/pypi/$page/json"
curl -sf "$url/simple/" -o "$static/simple/index.html"
curl -sf "$url/simple/$page/" -o "$static/simple/$page/index.html"
curl -sf -H "Accept: $json_accept" "$url/simple/$page/" -o "$static/json/simple/$page/index.json"
curl -sf "$url/pypi/$page/json" -o "$static/pypi/$page/json/index.json"
cat > "$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  types { text/html html; application/vnd.pypi.simple.v1+json json; }
  server {
    listen 127.0.0.1:18601;
    root $static;
    location /pypi/ { default_type application/json; types { } index index.json; }
    location /json/ { index index.json; }
    location / { index index.html; }
  }
}
CONF
nginx -c "$work/nginx.conf"
static_url="http://127.0.0.1:18601"

measure() { # URL [HEADER] -> "requests/s p99"
  local out
  if [ -n "${2:-}" ]; then
    out=$(wrk -t2 -c64 -d"${duration}s" --latency -H "$2" "$1")
  else
    out=$(wrk -t2 -c64 -d"${duration}s" --latency "$1")
  fi
  echo "$out" >> "$work/wrk.log"
  # Every answer must be a 2xx: a benchmark of error pages measures nothing.
  if echo "$out" | grep -q "Non-2xx"; then
    echo "wrk saw non-2xx answers from $1:" >&2; echo "$out" >&2; exit 1
  fi
  local rps p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  echo "$rps $p99"
}

results="$root/bench/results-$(date +%Y-%m-%d).md"
{
  echo "# Read paths: wharf vs nginx serving the same bytes ($projects projects, wrk -t2 -c64 -d${duration}s)"
  echo
  echo "| path | wharf req/s | wharf p99 | nginx req/s | nginx p99 | ratio |"
  echo "|---|---|---|---|---|---|"
} > "$results"
row() { # label wharf-url static-url [header]
  # Both servers must send the very same body.
  local h=(); [ -n "${4:-}" ] && h=(-H "$4")
  if ! cmp -s <(curl -sf "${h[@]}" "$2") <(curl -sf "${h[@]}" "$3"); then
    echo "wharf and nginx send different bodies for $1:" >&2
    diff <(curl -s "${h[@]}" "$2") <(curl -s "${h[@]}" "$3") | head -5 >&2; exit 1
  fi
  read -r w_rps w_p99 < <(measure "$2" "${4:-}")
  read -r s_rps s_p99 < <(measure "$3" "${4:-}")
  ratio=$(echo "scale=2; $w_rps / $s_rps" | bc)
  echo "| $1 | $w_rps | $w_p99 | $s_rps | $s_p99 | ${ratio}x |" >> "$results"
}
echo "==> measuring" >&2
curl -sf "$url/simple/$page/" >/dev/null # warm the cache as nginx's page cache is warm
row "/simple/ (HTML)" "$url/simple/" "$static_url/simple/"
row "/simple/$page/ (HTML)" "$url/simple/$page/" "$static_url/simple/$page/"
row "/simple/$page/ (JSON)" "$url/simple/$page/" "$static_url/json/simple/$page/" "Accept: $json_accept"
row "/pypi/$page/json" "$url/pypi/$page/json" "$static_url/pypi/$page/json/"
nginx -c "$work/nginx.conf" -s stop

# A private index (read_access = "users"): the same page read with a read-only token as HTTP
# Basic, against the public figure of this run (the target is at least 0.8x).
echo "==> the project page on a private index, read with a token" >&2
read_token=$("$bin" --data-dir "$work/data" token create bench --read-only --description bench-read)
basic="Authorization: Basic $(printf '__token__:%s' "$read_token" | base64 -w0)"
read -r public_rps public_p99 < <(measure "$url/simple/$page/")
kill "$server"; wait "$server" 2>/dev/null || true
WHARF_READ_ACCESS=users "$bin" --data-dir "$work/data" serve --bind "127.0.0.1:$port" --base-url "$url" 2>>"$work/server.log" &
server=$!
for _ in $(seq 1 100); do curl -sf "$url/_health" >/dev/null && break; sleep 0.1; done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/simple/$page/")" = 401 ] || { echo "the private index answered without a token" >&2; exit 1; }
curl -sf -H "$basic" "$url/simple/$page/" >/dev/null
read -r private_rps private_p99 < <(measure "$url/simple/$page/" "$basic")
{
  echo
  echo "| /simple/$page/ (HTML) | req/s | p99 | ÷ public |"
  echo "|---|---|---|---|"
  echo "| public, anonymous | $public_rps | $public_p99 | 1.00x |"
  echo "| read_access = users, read-only token (Basic) | $private_rps | $private_p99 | $(echo "scale=2; $private_rps / $public_rps" | bc)x |"
} >> "$results"
cat "$work/wrk.log" >&2

echo "==> one twine upload of 100 small files" >&2
dist="$work/dist"; mkdir -p "$dist"
"$venv/bin/python" - "$dist" <<'PY'
import sys; sys.path.insert(0, "e2e")
from distributions import make_wheel
for i in range(100):
    make_wheel(sys.argv[1], "bench-burst", f"1.0.{i}")
PY
start=$(date +%s.%N)
"$venv/bin/twine" upload --non-interactive --disable-progress-bar --repository-url "$url/legacy/" \
  -u __token__ -p "$token" "$dist"/*.whl >/dev/null
upload_secs=$(echo "$(date +%s.%N) - $start" | bc)
rss_burst=$(rss)
{
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| loading $projects projects (8 parallel uploaders) | ${load_secs}s |"
  echo "| \`twine upload\` of 100 small files (one command) | ${upload_secs}s |"
  echo "| RSS with the projects loaded | ${rss_loaded} MiB |"
  echo "| RSS right after the 100-file burst | ${rss_burst} MiB |"
} >> "$results"
cat "$results"
