#!/usr/bin/env bash
# A soak of one `wharf serve` (release build, embedded shape): SECONDS (default 600) of mixed
# load — reads at full speed, an upload a second, password and TOTP sign-ins, token uses —
# with RSS every 10 s, p99 per path, the error count and the audit events against the
# operations done (bench/soak.py).
#
# Usage: bench/soak.sh [SECONDS]   (BENCH_NO_BUILD=1: the release binary already built)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wharf/target}
venv=${WHARF_VENV:-$HOME/.cache/wharf/venv}
scripts/venv "$venv"
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --bin wharf
exec "$venv/bin/python" bench/soak.py "${WHARF_BIN:-$CARGO_TARGET_DIR/release/wharf}" "${1:-600}"
