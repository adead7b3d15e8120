#!/usr/bin/env bash
# Instructions per request of `lameduck proxy --threads 1`, counted by
# valgrind's callgrind: wrk with 10 keepalive connections through the proxy
# to one nginx upstream returning 6 bytes. Unlike requests/s, the count does
# not depend on what else the machine is doing, so it compares two builds
# (before and after a change) on a shared machine. Counters are zeroed after
# a warm-up, so start-up is not counted. Loopback only; stops by itself.
#
#   [LAMEDUCK=path/to/lameduck] bench/proxy-instructions.sh [SECONDS] [RUNS]   (default 10 3)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${1:-10}
RUNS=${2:-3}
OUT=bench/out/instructions
mkdir -p "$OUT"
apt_need wrk wrk; apt_need nginx nginx; apt_need valgrind valgrind
if [ -z "${LAMEDUCK:-}" ]; then
  cargo build --release -q -p lameduck
  LAMEDUCK=target/release/lameduck
fi
NGINX_BIN=$(command -v nginx)
PID=
cleanup() {
  nginx_stop "$OUT/backend"
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
}
trap cleanup EXIT
nginx_conf "$OUT/backend" "keepalive_requests 1000000; server { listen 127.0.0.1:19301; location / { return 200 'hello\n'; } }"
$NGINX_BIN -p "$PWD/$OUT/backend" -c nginx.conf
proxy_toml "$OUT/lameduck.toml" 127.0.0.1:19320 '"127.0.0.1:19301"' "[proxy]
keepalive_requests = 1000000"
wait_port 19301

# requests_of WRK_OUTPUT: the request count wrk printed.
requests_of() { awk '/requests in/ { print $1 }' <<<"$1"; }

for run in $(seq "$RUNS"); do
  rm -f "$OUT"/cg.*
  valgrind --tool=callgrind --callgrind-out-file="$PWD/$OUT/cg.%p" \
    "$LAMEDUCK" proxy --threads 1 -c "$OUT/lameduck.toml" 2> "$OUT/valgrind.log" &
  PID=$!
  for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/19320) 2>/dev/null && break; sleep 0.1; done
  wrk -t1 -c10 -d2s http://127.0.0.1:19320/ > /dev/null
  callgrind_control -z "$PID" > /dev/null 2>&1
  out=$(wrk -t1 -c10 -d"${DURATION}s" http://127.0.0.1:19320/)
  callgrind_control -d "$PID" > /dev/null 2>&1
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  # The dump after zeroing is the one with a part number (cg.PID.1).
  ir=$(awk '/^summary:/ { print $2 }' "$OUT"/cg.*.1)
  n=$(requests_of "$out")
  awk -v ir="$ir" -v n="$n" -v run="$run" \
    'BEGIN { printf "run %d: %d requests, %.0f instructions per request\n", run, n, ir / n }'
done
