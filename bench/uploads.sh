#!/usr/bin/env bash
# One `twine upload` of 100 files against wharf and against a baseline endpoint that only
# reads the multipart body, hashes the file and answers 200 (bench/upload-baseline: the
# client's own cost), alternately, ROUNDS times each; then where
# wharf's time per upload goes, from its `upload timing` lines (RUST_LOG=wharf::forklift=debug).
#
# Usage: bench/uploads.sh [ROUNDS]   (default 5)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${1:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wharf/target}
venv=${WHARF_VENV:-$HOME/.cache/wharf/venv}
scripts/venv "$venv"
# BENCH_NO_BUILD=1 measures the wharf release binary already built (the baseline is always
# built: a small crate of its own).
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --bin wharf
cargo build --release --manifest-path bench/upload-baseline/Cargo.toml
bin="$CARGO_TARGET_DIR/release/wharf"
baseline_bin="$CARGO_TARGET_DIR/release/upload-baseline"

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18630
url="http://127.0.0.1:$port"
baseline_url="http://127.0.0.1:18631"
echo 'bench password' | "$bin" --data-dir "$work/data" user create bench --email bench@example.org
token=$("$bin" --data-dir "$work/data" token create bench)
RUST_LOG=info,wharf::forklift=debug "$bin" --data-dir "$work/data" serve --bind "127.0.0.1:$port" \
  --base-url "$url" >"$work/server.log" 2>&1 &
"$baseline_bin" "127.0.0.1:18631" &
for _ in $(seq 1 100); do curl -sf "$url/_health" >/dev/null && break; sleep 0.1; done
for _ in $(seq 1 100); do curl -s -o /dev/null "$baseline_url/" && break; sleep 0.1; done

# Each round uploads 100 new files (new versions: wharf would answer a repeated file at once).
"$venv/bin/python" - "$work" "$rounds" <<'PY'
import sys; sys.path.insert(0, "e2e")
from pathlib import Path
from distributions import make_wheel
work, rounds = Path(sys.argv[1]), int(sys.argv[2])
for r in range(rounds):
    dist = work / f"dist-{r}"
    dist.mkdir()
    for i in range(100):
        make_wheel(dist, "bench-burst", f"{r + 1}.0.{i}")
PY

twine() { # URL DIR -> seconds
  local start
  start=$(date +%s.%N)
  "$venv/bin/twine" upload --non-interactive --disable-progress-bar --repository-url "$1/legacy/" \
    -u __token__ -p "$token" "$2"/*.whl >/dev/null || return 1
  echo "$(date +%s.%N) - $start" | bc
}
wharf_times=() baseline_times=()
for r in $(seq 0 $((rounds - 1))); do
  # A failed upload is no figure: stop.
  t=$(twine "$baseline_url" "$work/dist-$r") || { echo "twine failed against the baseline" >&2; exit 1; }
  baseline_times+=("$t")
  t=$(twine "$url" "$work/dist-$r") || { echo "twine failed against wharf" >&2; exit 1; }
  wharf_times+=("$t")
done
[ "$(curl -sf "$url/pypi/bench-burst/json" | "$venv/bin/python" -c 'import json,sys; print(sum(len(v) for v in json.load(sys.stdin)["releases"].values()))')" = $((rounds * 100)) ] \
  || { echo "wharf does not hold every uploaded file" >&2; exit 1; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
w=$(median "${wharf_times[@]}")
b=$(median "${baseline_times[@]}")
echo "# One \`twine upload\` of 100 files, median of $rounds rounds (alternating)"
echo
echo "| endpoint | seconds (each round) | median | ÷ baseline |"
echo "|---|---|---|---|"
echo "| baseline (read, hash, 200) | ${baseline_times[*]} | $b | 1.00x |"
echo "| wharf | ${wharf_times[*]} | $w | $(echo "scale=2; $w / $b" | bc)x |"
echo
echo "Server-side time per upload in wharf (mean over $((rounds * 100)) uploads, µs):"
echo
"$venv/bin/python" - "$work/server.log" <<'PY'
import re, sys
phases = ["auth", "read", "checks", "inspect", "store", "commit", "total"]
rows = [dict((k, int(v)) for k, v in re.findall(r"(\w+)_us=(\d+)", line))
        for line in open(sys.argv[1], errors="replace") if "upload timing" in line]
assert rows, "no upload timing lines"
means = {p: sum(r[p] for r in rows) / len(rows) for p in phases}
print("| " + " | ".join(phases) + " |")
print("|" + "---|" * len(phases))
print("| " + " | ".join(f"{means[p]:.0f}" for p in phases) + " |")
print("| " + " | ".join(f"{100 * means[p] / means['total']:.0f}%" for p in phases) + " |")
PY
