#!/usr/bin/env bash
# Throughput benchmark: wrk with 50 keepalive connections, small responses,
# through nginx (one worker), HAProxy (one thread) and lameduck proxy (one
# worker thread), each in front of the same upstream (an nginx returning 200).
# Prints requests/s, p50/p99 latency, and lameduck's ratios. Loopback only.
#
#   bench/proxy-throughput.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${1:-10}
CONNS=${2:-50}
OUT=bench/out/throughput
mkdir -p "$OUT"
need() { command -v "$1" >/dev/null || apt-get install -y -qq "$2" >/dev/null; }
need wrk wrk; need nginx nginx-light; need haproxy haproxy
cargo build --release -q -p lameduck
LAMEDUCK=target/release/lameduck
NGINX_BIN=$(command -v nginx)
PIDS=()
cleanup() {
  nginx_stop "$OUT/backend"; nginx_stop "$OUT/front"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT


nginx_conf "$OUT/backend" "keepalive_requests 1000000; server { listen 127.0.0.1:19101; location / { return 200 'hello\n'; } }"
$NGINX_BIN -p "$PWD/$OUT/backend" -c nginx.conf
nginx_conf "$OUT/front" "keepalive_requests 1000000; upstream app { server 127.0.0.1:19101; keepalive 64; }
  server { listen 127.0.0.1:19110; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
$NGINX_BIN -p "$PWD/$OUT/front" -c nginx.conf
cat > "$OUT/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend web
  bind 127.0.0.1:19120
  default_backend app
backend app
  server a 127.0.0.1:19101
CONF
haproxy -f "$OUT/haproxy.cfg" -db > "$OUT/haproxy.log" 2>&1 &
PIDS+=($!)
$LAMEDUCK proxy --threads 1 --listen 127.0.0.1:19130 --upstream 127.0.0.1:19101 2> "$OUT/lameduck.log" &
PIDS+=($!)
for p in 19101 19110 19120 19130; do wait_port $p; done

bench() { # $1 port $2 label
  wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$1/" > /dev/null 2>&1   # warm up
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$1/" > "$OUT/wrk-$2.txt" 2>&1
}
rps() { awk '/Requests\/sec/ { print $2 }' "$OUT/wrk-$1.txt"; }
pct() { awk -v p="$2%" '$1 == p { v=$2; if (v ~ /us$/) { sub("us","",v); v=v/1000 } else if (v ~ /ms$/) { sub("ms","",v) } else if (v ~ /s$/) { sub("s","",v); v=v*1000 } print v }' "$OUT/wrk-$1.txt"; }
errs() { awk '/Socket errors|Non-2xx/' "$OUT/wrk-$1.txt" | tr '\n' ' '; }

for t in nginx:19110 haproxy:19120 lameduck:19130; do bench "${t#*:}" "${t%%:*}"; done

printf "%-10s %12s %10s %10s  %s\n" proxy "req/s" "p50 ms" "p99 ms" errors
for p in nginx haproxy lameduck; do
  printf "%-10s %12s %10s %10s  %s\n" "$p" "$(rps $p)" "$(pct $p 50)" "$(pct $p 99)" "$(errs $p)"
done
echo
awk -v l="$(rps lameduck)" -v n="$(rps nginx)" -v h="$(rps haproxy)" -v lp="$(pct lameduck 99)" -v np="$(pct nginx 99)" 'BEGIN {
  printf "throughput lameduck/nginx   %.2fx (goal >= 1.00)\n", l / n
  printf "throughput lameduck/haproxy %.2fx\n", l / h
  printf "p99 lameduck/nginx          %.2fx (goal <= 1.00)\n", lp / np
}'
