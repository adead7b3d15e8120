#!/usr/bin/env bash
# Reload benchmark: nginx (one worker) vs lameduck proxy, each reloaded every
# 200 ms with a changed upstream list, under 50 keepalive connections for 12 s
# (wrk). Prints the requests each one lost. Loopback only; stops by itself.
#
#   bench/proxy-reload.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${1:-12}
CONNS=${2:-50}
OUT=bench/out/reload
mkdir -p "$OUT"

need() { command -v "$1" >/dev/null || { apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need nginx nginx-light
cargo build --release -q -p lameduck
LAMEDUCK=target/release/lameduck
NGINX_BIN=$(command -v nginx)

cleanup() {
  nginx_stop "$OUT/backend"; nginx_stop "$OUT/front"
  [ -n "${LD_PID:-}" ] && kill "$LD_PID" 2>/dev/null || true
}
trap cleanup EXIT


# Three backends, served by one nginx on 19001-19003.
nginx_conf "$OUT/backend" "keepalive_requests 100000;
  server { listen 127.0.0.1:19001; location / { return 200 'ok\n'; } }
  server { listen 127.0.0.1:19002; location / { return 200 'ok\n'; } }
  server { listen 127.0.0.1:19003; location / { return 200 'ok\n'; } }"
$NGINX_BIN -p "$PWD/$OUT/backend" -c nginx.conf

front_conf() { # $1 = first backend port, $2 = second
  nginx_conf "$OUT/front" "keepalive_requests 100000;
  upstream app { server 127.0.0.1:$1; server 127.0.0.1:$2; keepalive 64; }
  server { listen 127.0.0.1:19080;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
}
lameduck_conf() {
  cat > "$OUT/lameduck.toml" <<CONF
[admin]
listen = "127.0.0.1:19091"
[[listener]]
name = "web"
listen = "127.0.0.1:19090"
[[route]]
upstream = "app"
[[upstream]]
name = "app"
endpoints = ["127.0.0.1:$1", "127.0.0.1:$2"]
CONF
}


# Reloads every 200 ms until wrk is done, alternating the upstream list.
reloader() { # $1 = command to reload, $2 = conf writer
  local i=0
  while kill -0 "$WRK_PID" 2>/dev/null; do
    if (( i % 2 )); then $2 19001 19002; else $2 19002 19003; fi
    $1
    i=$((i + 1))
    sleep 0.2
  done
  echo "$i" > "$OUT/reloads"
}

run_wrk() { # $1 = port, $2 = label
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$1/" > "$OUT/wrk-$2.txt" 2>&1 &
  WRK_PID=$!
}

lost() { # wrk's errors: socket errors (connect+read+write+timeout) + non-2xx
  local f=$1 sock non2xx
  sock=$(awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$f")
  non2xx=$(awk '/Non-2xx/ { print $5 }' "$f")
  echo $(( ${sock:-0} + ${non2xx:-0} ))
}
total() { awk '/requests in/ { print $1 }' "$1"; }

echo "== nginx $($NGINX_BIN -v 2>&1 | sed 's/.*\///'), one worker, reloaded every 200 ms"
front_conf 19001 19002
$NGINX_BIN -p "$PWD/$OUT/front" -c nginx.conf
wait_port 19080
run_wrk 19080 nginx
reloader "$NGINX_BIN -p $PWD/$OUT/front -c nginx.conf -s reload" front_conf
wait "$WRK_PID" || true
NGINX_RELOADS=$(cat "$OUT/reloads")
$NGINX_BIN -p "$PWD/$OUT/front" -c nginx.conf -s quit || true

echo "== lameduck proxy, reloaded every 200 ms (SIGHUP)"
lameduck_conf 19001 19002
$LAMEDUCK proxy -c "$OUT/lameduck.toml" 2> "$OUT/lameduck.log" &
LD_PID=$!
wait_port 19090
run_wrk 19090 lameduck
reloader "kill -HUP $LD_PID" lameduck_conf
wait "$WRK_PID" || true
LD_RELOADS=$(cat "$OUT/reloads")
kill -TERM "$LD_PID"; wait "$LD_PID" || true; LD_PID=

NL=$(lost "$OUT/wrk-nginx.txt"); NT=$(total "$OUT/wrk-nginx.txt")
LL=$(lost "$OUT/wrk-lameduck.txt"); LT=$(total "$OUT/wrk-lameduck.txt")
LR=$(grep -c "config reloaded" "$OUT/lameduck.log" || true)
echo
printf "%-10s %10s %10s %10s\n" "proxy" "reloads" "requests" "lost"
printf "%-10s %10s %10s %10s\n" "nginx" "$NGINX_RELOADS" "$NT" "$NL"
printf "%-10s %10s %10s %10s\n" "lameduck" "$LD_RELOADS ($LR applied)" "$LT" "$LL"
echo
grep -A3 "Socket errors\|Non-2xx" "$OUT/wrk-nginx.txt" | sed 's/^/nginx wrk: /' || true
grep -A3 "Socket errors\|Non-2xx" "$OUT/wrk-lameduck.txt" | sed 's/^/lameduck wrk: /' || true
[ "$LL" -eq 0 ] && echo "GOAL MET: lameduck lost 0 requests" || echo "GOAL MISSED: lameduck lost $LL requests"
