#!/usr/bin/env bash
# Memory with many idle client keepalive connections: RSS of lameduck proxy (one
# worker thread) vs nginx (one worker), each holding N idle connections that
# have had one request answered. Loopback only; stops by itself.
#
#   [LAMEDUCK=path/to/lameduck] bench/proxy-idle-memory.sh [CONNECTIONS]   (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-10000}
OUT=bench/out/idle
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
apt_need nginx nginx
if [ -z "${LAMEDUCK:-}" ]; then
  cargo build --release -q -p lameduck
  LAMEDUCK=target/release/lameduck
fi
NGINX_BIN=$(command -v nginx)
PIDS=()
cleanup() {
  nginx_stop "$OUT/backend"; nginx_stop "$OUT/front"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
nginx_conf "$OUT/backend" "keepalive_timeout 300s; server { listen 127.0.0.1:19201; location / { return 200 'hello\n'; } }" 19000
$NGINX_BIN -p "$PWD/$OUT/backend" -c nginx.conf
nginx_conf "$OUT/front" "keepalive_timeout 300s; upstream app { server 127.0.0.1:19201; keepalive 64; }
  server { listen 127.0.0.1:19210; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }" 19000
$NGINX_BIN -p "$PWD/$OUT/front" -c nginx.conf
proxy_toml "$OUT/lameduck.toml" 127.0.0.1:19220 '"127.0.0.1:19201"' '[proxy]
keepalive_timeout = "300s"
max_connections = 19000'
"$LAMEDUCK" proxy --threads 1 -c "$OUT/lameduck.toml" 2> "$OUT/lameduck.log" &
LD=$!
PIDS+=("$LD")
for p in 19201 19210 19220; do wait_port $p; done

rss_kib() { awk '/VmRSS/ { s += $2 } END { print s }' $(for p in "$@"; do echo /proc/$p/status; done); }
measure() { # $1 port, $2.. pids; prints "before after"
  local port=$1; shift
  local before; before=$(rss_kib "$@")
  coproc CLIENTS { python3 bench/idle_clients.py "$port" "$N"; }
  read -r ready count <&"${CLIENTS[0]}"
  [ "$ready" = READY ] || { echo "clients failed" >&2; exit 1; }
  sleep 1
  local after; after=$(rss_kib "$@")
  kill "$CLIENTS_PID" 2>/dev/null || true; wait "$CLIENTS_PID" 2>/dev/null || true
  echo "$before $after $count"
}
NGINX_WORKER=$(pgrep -P "$(cat "$OUT/front/nginx.pid")")
read -r nb na nc < <(measure 19210 "$NGINX_WORKER")
read -r lb la lc < <(measure 19220 "$LD")
printf "%-22s %12s %12s %14s\n" "$N idle connections" "RSS before" "RSS after" "per connection"
printf "%-22s %9s KiB %9s KiB %10s B\n" "nginx worker" "$nb" "$na" "$(( (na - nb) * 1024 / nc ))"
printf "%-22s %9s KiB %9s KiB %10s B\n" "lameduck (1 thread)" "$lb" "$la" "$(( (la - lb) * 1024 / lc ))"
awk -v l="$la" -v n="$na" 'BEGIN { printf "RSS lameduck/nginx with connections: %.2fx (goal <= 2.00)\n", l / n }'
