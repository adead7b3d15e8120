#!/usr/bin/env bash
# Throughput benchmark: wrk with 50 keepalive connections, small responses,
# through nginx (one worker), HAProxy (one thread) and lameduck proxy (one
# worker thread), each in front of the same upstream (an nginx returning 200).
# The three are measured in turn, ROUNDS times: short interleaved runs, the
# order turning each round, so that the slow and fast spells of a shared
# machine (seen: one proxy's rate moving by a third between runs a minute
# apart) fall on all of them alike, and the ratios are taken round by round.
# Prints each run's requests/s, p50/p99 latency and CPU time per request
# (user+system of the proxy process, from /proc), then lameduck's ratios: per
# round and the median. Loopback only.
#
# A second lameduck instance (`lameduck-b`, same binary and config) is measured
# in the same rotation: its ratios to the first are what the machine alone
# makes of two identical proxies, the noise floor that the ratios against
# nginx must be read against.
#
# RATE=R adds an open-loop phase: `lameduck load --rate R` sends on a fixed
# schedule from 50 connections and counts latency from each request's
# intended time. Below saturation the latency is the path's own plus the
# machine's hiccups, not the queueing of a saturated closed loop, where wrk's
# next request waits for the last response. Off by default: on a small VM the
# wake-ups of idle vCPUs make its p99 (docs/bench.md).
#
# PIN=1 pins the proxies to the last core and wrk and the upstream to the
# others (`taskset`), as a one-worker proxy is often deployed (nginx's
# worker_cpu_affinity, HAProxy's cpu-map); by default all share all cores.
#
#   [PIN=1] [RATE=R] [LAMEDUCK=path/to/lameduck] bench/proxy-throughput.sh [SECONDS] [CONNECTIONS] [ROUNDS]   (default 5 50 10)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${1:-5}
CONNS=${2:-50}
ROUNDS=${3:-10}
RATE=${RATE:-0}
OUT=bench/out/throughput
mkdir -p "$OUT"
apt_need wrk wrk; apt_need nginx nginx; apt_need haproxy haproxy
if [ -z "${LAMEDUCK:-}" ]; then
  cargo build --release -q -p lameduck
  LAMEDUCK=target/release/lameduck
fi
NGINX_BIN=$(command -v nginx)
# Command prefixes that pin when PIN=1 (taskset execs the command, so `$!`
# is the proxy's own PID).
LAST=$(( $(nproc) - 1 ))
PROXY_CORE=(); LOAD_CORES=()
if [ "${PIN:-0}" = 1 ]; then
  PROXY_CORE=(taskset -c "$LAST"); LOAD_CORES=(taskset -c "0-$(( LAST > 0 ? LAST - 1 : 0 ))")
fi
PIDS=()
cleanup() {
  nginx_stop "$OUT/backend"; nginx_stop "$OUT/front"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT


nginx_conf "$OUT/backend" "keepalive_requests 1000000; server { listen 127.0.0.1:19101; location / { return 200 'hello\n'; } }"
"${LOAD_CORES[@]}" $NGINX_BIN -p "$PWD/$OUT/backend" -c nginx.conf
nginx_conf "$OUT/front" "keepalive_requests 1000000; upstream app { server 127.0.0.1:19101; keepalive 64; }
  server { listen 127.0.0.1:19110; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
"${PROXY_CORE[@]}" $NGINX_BIN -p "$PWD/$OUT/front" -c nginx.conf
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
"${PROXY_CORE[@]}" haproxy -f "$OUT/haproxy.cfg" -db > "$OUT/haproxy.log" 2>&1 &
PIDS+=($!); HAPROXY_PID=$!
# The same per-connection request limit as the nginx front (HAProxy has none):
# at lameduck's default of 1000, each of wrk's connections would be closed
# and reopened every second or so, all 50 nearly together.
proxy_toml "$OUT/lameduck.toml" 127.0.0.1:19130 '"127.0.0.1:19101"' "[proxy]
keepalive_requests = 1000000"
"${PROXY_CORE[@]}" $LAMEDUCK proxy --threads 1 -c "$OUT/lameduck.toml" 2> "$OUT/lameduck.log" &
PIDS+=($!); LAMEDUCK_PID=$!
proxy_toml "$OUT/lameduck-b.toml" 127.0.0.1:19140 '"127.0.0.1:19101"' "[proxy]
keepalive_requests = 1000000"
"${PROXY_CORE[@]}" $LAMEDUCK proxy --threads 1 -c "$OUT/lameduck-b.toml" 2> "$OUT/lameduck-b.log" &
PIDS+=($!); LAMEDUCK_B_PID=$!
for p in 19101 19110 19120 19130 19140; do wait_port $p; done
NGINX_PID=$(pgrep -P "$(cat "$OUT/front/nginx.pid")" | head -1)   # the one worker
declare -A PID=([nginx]=$NGINX_PID [haproxy]=$HAPROXY_PID [lameduck]=$LAMEDUCK_PID [lameduck-b]=$LAMEDUCK_B_PID)
declare -A PORT=([nginx]=19110 [haproxy]=19120 [lameduck]=19130 [lameduck-b]=19140)

# cpu_ticks PID: user+system clock ticks the process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

bench() { # $1 proxy $2 round: one wrk run, its CPU time measured around it
  local port=${PORT[$1]} f="$OUT/wrk-$1-$2.txt" before after
  "${LOAD_CORES[@]}" wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$port/" > /dev/null 2>&1   # warm up
  before=$(cpu_ticks "${PID[$1]}")
  "${LOAD_CORES[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/" > "$f" 2>&1
  after=$(cpu_ticks "${PID[$1]}")
  echo $(( (after - before) * TICK_US )) > "$OUT/cpu-$1-$2.txt"
}
rps() { awk '/Requests\/sec/ { print $2 }' "$OUT/wrk-$1-$2.txt"; }
reqs() { awk '/requests in/ { print $1 }' "$OUT/wrk-$1-$2.txt"; }
pct() { awk -v p="$3%" '$1 == p { v=$2; if (v ~ /us$/) { sub("us","",v); v=v/1000 } else if (v ~ /ms$/) { sub("ms","",v) } else if (v ~ /s$/) { sub("s","",v); v=v*1000 } print v }' "$OUT/wrk-$1-$2.txt"; }
cpu_per_req() { awk -v c="$(cat "$OUT/cpu-$1-$2.txt")" -v n="$(reqs "$1" "$2")" 'BEGIN { printf "%.1f", c / n }'; }
errs() { awk '/Socket errors|Non-2xx/' "$OUT/wrk-$1-$2.txt" | tr '\n' ' '; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "$(date -u +%FT%TZ) $(nproc) cores$([ "${PIN:-0}" = 1 ] && echo ", proxies pinned to core $LAST"), load average $(cut -d' ' -f1-3 /proc/loadavg); ${DURATION}s x $ROUNDS rounds, $CONNS connections"
ORDER=(nginx haproxy lameduck lameduck-b)
# rotate FN: FN PROXY ROUND for every round, the order turning each round.
rotate() {
  for r in $(seq "$ROUNDS"); do
    for i in "${!ORDER[@]}"; do "$1" "${ORDER[(r + i) % ${#ORDER[@]}]}" "$r"; done
  done
}
# rows FN: FN PROXY ROUND for every round and proxy, in table order.
rows() {
  for r in $(seq "$ROUNDS"); do for p in "${ORDER[@]}"; do "$1" "$p" "$r"; done; done
}
rotate bench

wrk_row() { printf "%-6s %-10s %10s %8s %8s %12s  %s\n" "$2" "$1" "$(rps $1 $2)" "$(pct $1 $2 50)" "$(pct $1 $2 99)" "$(cpu_per_req $1 $2)" "$(errs $1 $2)"; }
printf "\n%-6s %-10s %10s %8s %8s %12s  %s\n" round proxy "req/s" "p50 ms" "p99 ms" "CPU us/req" errors
rows wrk_row

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
declare -a T_N T_H P_N C_N T_B P_B C_B
for r in $(seq "$ROUNDS"); do
  T_B+=("$(ratio "$(rps lameduck-b $r)" "$(rps lameduck $r)")")
  P_B+=("$(ratio "$(pct lameduck-b $r 99)" "$(pct lameduck $r 99)")")
  C_B+=("$(ratio "$(cpu_per_req lameduck-b $r)" "$(cpu_per_req lameduck $r)")")
  T_N+=("$(ratio "$(rps lameduck $r)" "$(rps nginx $r)")")
  T_H+=("$(ratio "$(rps lameduck $r)" "$(rps haproxy $r)")")
  P_N+=("$(ratio "$(pct lameduck $r 99)" "$(pct nginx $r 99)")")
  C_N+=("$(ratio "$(cpu_per_req lameduck $r)" "$(cpu_per_req nginx $r)")")
done
echo
printf "%-30s %-24s %s\n" "lameduck ratio" "per round" "median"
show() { printf "%-30s %-24s %.2fx %s\n" "$1" "$(echo "$2" | tr ' ' '/')" "$(printf '%s\n' $2 | median)" "$3"; }
show "throughput vs nginx" "${T_N[*]}" "(goal >= 1.00)"
show "throughput vs haproxy" "${T_H[*]}" ""
show "p99 latency vs nginx" "${P_N[*]}" "(goal <= 1.00)"
show "CPU per request vs nginx" "${C_N[*]}" "(lower is cheaper)"
echo
printf "%-30s %-24s %s\n" "noise floor: lameduck-b ratio" "per round" "median"
show "throughput vs lameduck" "${T_B[*]}" "(same binary: 1.00 but for noise)"
show "p99 latency vs lameduck" "${P_B[*]}" ""
show "CPU per request vs lameduck" "${C_B[*]}" ""

[ "$RATE" = 0 ] && exit 0
# Open loop: lameduck load at RATE, the same rotation; p50/p99 from its JSON.
open_loop() { # $1 proxy $2 round
  "${LOAD_CORES[@]}" $LAMEDUCK load --rate "$RATE" -c "$CONNS" -d "${DURATION}s" \
    --json "$OUT/open-$1-$2.json" "http://127.0.0.1:${PORT[$1]}/" > "$OUT/open-$1-$2.txt" 2>&1 || true
}
# json_num FILE KEY: the first `"KEY": N` in FILE (the summary comes first).
json_num() { grep -o "\"$2\": *[0-9]*" "$1" | head -1 | awk -F: '{ print $2 + 0 }'; }
lat() { json_num "$OUT/open-$1-$2.json" "$3_us" | awk '{ printf "%.2f", $1 / 1000 }'; }
late() { json_num "$OUT/open-$1-$2.json" sent_late; }
failed() { json_num "$OUT/open-$1-$2.json" failures; }
echo
echo "open loop: $RATE requests/s, ${DURATION}s x $ROUNDS rounds, $CONNS connections (lameduck load --rate)"
rotate open_loop
open_row() { printf "%-6s %-10s %8s %8s %8s %10s %8s\n" "$2" "$1" "$(lat $1 $2 p50)" "$(lat $1 $2 p99)" "$(lat $1 $2 p999)" "$(late $1 $2)" "$(failed $1 $2)"; }
printf "\n%-6s %-10s %8s %8s %8s %10s %8s\n" round proxy "p50 ms" "p99 ms" "p99.9 ms" "sent late" failed
rows open_row
declare -a O_N O_H O_B
for r in $(seq "$ROUNDS"); do
  O_N+=("$(ratio "$(lat lameduck $r p99)" "$(lat nginx $r p99)")")
  O_H+=("$(ratio "$(lat lameduck $r p99)" "$(lat haproxy $r p99)")")
  O_B+=("$(ratio "$(lat lameduck-b $r p99)" "$(lat lameduck $r p99)")")
done
echo
printf "%-30s %-24s %s\n" "open-loop p99 ratio" "per round" "median"
show "lameduck vs nginx" "${O_N[*]}" ""
show "lameduck vs haproxy" "${O_H[*]}" ""
show "lameduck-b vs lameduck" "${O_B[*]}" "(noise floor)"
