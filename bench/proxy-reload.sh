#!/usr/bin/env bash
# Reload benchmark: nginx (one worker) vs lameduck proxy, each reloaded every
# 200 ms with a changed upstream list, under the same load: `lameduck load`
# with 50 keepalive connections for 12 s (1 s alone, reloads for 10 s, 1 s
# alone). The reload loop is load's --during command, so its start and end are
# on load's timeline; lost = every request whose outcome was not `success`,
# named by kind. If wrk is installed, it runs the same reloads as a second
# opinion (socket errors + non-2xx). Loopback only; stops what it started.
#
#   bench/proxy-reload.sh [SECONDS] [CONNECTIONS]
#
# Exit status: 0 if lameduck lost no request, 1 if it lost any.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
DURATION=${1:-12}
CONNS=${2:-50}
INTERVAL_MS=200
RELOAD_SECONDS=$((DURATION - 2))   # after 1 s of warm-up; 1 s of cool-down follows
OUT=bench/out/reload

apt_need nginx nginx
apt_need wrk wrk || echo "wrk is not available: no second opinion" >&2
command -v python3 >/dev/null || { echo "python3 is needed to read the JSON reports" >&2; exit 2; }
cargo build --release -q -p lameduck
LAMEDUCK=${CARGO_TARGET_DIR:-target}/release/lameduck
NGINX_BIN=$(command -v nginx)

# run CMD...: runs CMD in the background and waits for it. wrk and lameduck
# load handle SIGINT themselves, and bash ignores a Ctrl-C that its foreground
# child handled; waiting this way, a signal runs the trap below at once.
PIDS=()
run() { "$@" & PIDS+=($!); wait $!; }

LD_PID=
cleanup() {
  local pid pidfile
  for pid in "${PIDS[@]}" $LD_PID; do kill "$pid" 2>/dev/null || true; done
  # The reload loops (lameduck load leaves a --during command it stopped early).
  for pidfile in "$OUT"/reloader-*.pid; do
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  nginx_stop "$OUT/front"; nginx_stop "$OUT/backend"
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM
cleanup                     # whatever an interrupted earlier run left
rm -rf "$OUT" && mkdir -p "$OUT"


# Three backends, served by one nginx on 19001-19003.
nginx_conf "$OUT/backend" "keepalive_requests 100000;
  server { listen 127.0.0.1:19001; location / { return 200 'ok\n'; } }
  server { listen 127.0.0.1:19002; location / { return 200 'ok\n'; } }
  server { listen 127.0.0.1:19003; location / { return 200 'ok\n'; } }"
$NGINX_BIN -p "$PWD/$OUT/backend" -c nginx.conf
wait_port 19001

front_conf() { # $1 = first backend port, $2 = second
  nginx_conf "$OUT/front" "keepalive_requests 100000;
  upstream app { server 127.0.0.1:$1; server 127.0.0.1:$2; keepalive 64; }
  server { listen 127.0.0.1:19080;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
}
lameduck_conf() { # $1 = first backend port, $2 = second
  # keepalive_requests as the nginx front's, so both see the same load.
  proxy_toml "$OUT/lameduck.toml" 127.0.0.1:19090 "\"127.0.0.1:$1\", \"127.0.0.1:$2\"" '[proxy]
keepalive_requests = 100000
[admin]
listen = "127.0.0.1:19091"'
}

# variants CONF WRITER: keeps the two upstream lists the reloads alternate
# between as CONF.a (19001+19002, the starting one) and CONF.b (19002+19003).
variants() {
  $2 19002 19003; cp "$1" "$1.b"
  $2 19001 19002; cp "$1" "$1.a"
}

# reloader NAME CONF RELOAD_CMD: writes $OUT/reload-NAME.sh COUNT_FILE [DELAY],
# a bash script that sleeps DELAY s, then for $RELOAD_SECONDS s, every
# $INTERVAL_MS ms (on a fixed schedule), installs the other upstream list
# (CONF.a <-> CONF.b) and runs RELOAD_CMD; at the end it writes the number of
# reloads done to COUNT_FILE, and exits 1 if any reload failed.
reloader() {
  { echo "name=$1 conf=$2 out=$OUT seconds=$RELOAD_SECONDS interval_ms=$INTERVAL_MS"
    echo "reload() { $3; }"
    cat <<'SH'
echo $$ > "$out/reloader-$name.pid"
sleep "${2:-0}"
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
next=$(now_ms); end=$((next + seconds * 1000)); done=0; failed=0
while [ "$next" -lt "$end" ]; do
  if cmp -s "$conf" "$conf.a"; then cp "$conf.b" "$conf.tmp"; else cp "$conf.a" "$conf.tmp"; fi
  mv "$conf.tmp" "$conf"   # by rename: no reader ever sees half a file
  if reload 2>> "$out/reload-$name.log"; then done=$((done + 1)); else failed=$((failed + 1)); fi
  next=$((next + interval_ms)); wait_ms=$((next - $(now_ms)))
  if [ "$wait_ms" -gt 0 ]; then sleep "$((wait_ms / 1000)).$(printf %03d $((wait_ms % 1000)))"; fi
done
echo "$done" > "$1"
rm -f "$out/reloader-$name.pid"
[ "$failed" = 0 ] || { echo "$failed reloads failed" >&2; exit 1; }
SH
  } > "$OUT/reload-$1.sh"
}

# load_run NAME PORT: `lameduck load` through the reloads (its --during).
load_run() {
  local name=$1 port=$2 status=0
  run "$LAMEDUCK" load -c "$CONNS" --duration "${DURATION}s" --warmup 1s --cooldown 1s \
      --during "bash $OUT/reload-$name.sh $OUT/reloads-$name" \
      --json "$OUT/load-$name.json" --html "$OUT/load-$name.html" \
      "http://127.0.0.1:$port/" > "$OUT/load-$name.txt" 2> "$OUT/load-$name.err" || status=$?
  # 1 = requests were lost (or the reloads failed): the report says which.
  if [ "$status" -gt 1 ]; then
    echo "lameduck load failed (exit $status):" >&2; cat "$OUT/load-$name.err" >&2; exit 2
  fi
}

# wrk_run NAME PORT: wrk, if installed, through the same reloads (from 1 s on).
wrk_run() {
  command -v wrk >/dev/null || return 0
  local reloads
  bash "$OUT/reload-$1.sh" "$OUT/wrk-reloads-$1" 1 &
  reloads=$!; PIDS+=("$reloads")
  run wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$2/" > "$OUT/wrk-$1.txt" 2>&1 || true
  wait "$reloads" || true
}

echo "== nginx $($NGINX_BIN -v 2>&1 | sed 's/.*\///'), one worker, reloaded every ${INTERVAL_MS} ms ($CONNS connections, ${DURATION}s)" >&2
variants "$OUT/front/nginx.conf" front_conf
$NGINX_BIN -p "$PWD/$OUT/front" -c nginx.conf
wait_port 19080
reloader nginx "$OUT/front/nginx.conf" "$NGINX_BIN -p $PWD/$OUT/front -c nginx.conf -s reload"
load_run nginx 19080
wrk_run nginx 19080
nginx_stop "$OUT/front"

echo "== lameduck proxy, reloaded every ${INTERVAL_MS} ms by SIGHUP (same load)" >&2
variants "$OUT/lameduck.toml" lameduck_conf
"$LAMEDUCK" proxy -c "$OUT/lameduck.toml" 2> "$OUT/lameduck.log" &
LD_PID=$!
wait_port 19090
reloader lameduck "$OUT/lameduck.toml" "kill -HUP $LD_PID"
load_run lameduck 19090
LD_APPLIED=$(grep -c "config reloaded" "$OUT/lameduck.log" || true)
wrk_run lameduck 19090
kill -TERM "$LD_PID"; wait "$LD_PID" || true; LD_PID=


# load_report NAME: requests, failures, failure kinds, failures per second, the
# during window and load's own verdict, tab-separated, from load-NAME.json.
load_report() {
  python3 - "$OUT/load-$1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
kinds = sorted(((v, k) for k, v in s["outcomes"].items() if k != "success"), reverse=True)
ev = {e["kind"]: e["at_s"] for e in r["events"]}
print(s["requests"], s["failures"],
      ", ".join(f"{k} {v}" for v, k in kinds) or "none",
      " ".join(str(b["failures"]) for b in r["timeline"]),
      f'{ev.get("during_start", float("nan")):.1f}-{ev.get("during_end", float("nan")):.1f}s',
      "; ".join(r["verdict"]["reasons"]) or "pass", sep="\t")
PY
}
# wrk_report NAME: requests, socket errors (connect/read/write/timeout), non-2xx.
wrk_report() {
  local f=$OUT/wrk-$1.txt
  awk '/requests in/ { req = $1 }
       /Socket errors/ { gsub(",", ""); sock = $4 "/" $6 "/" $8 "/" $10; lost += $4 + $6 + $8 + $10 }
       /Non-2xx/ { non2xx = $5; lost += $5 }
       END { printf "%s requests, lost %d (socket errors connect/read/write/timeout %s, non-2xx %d)\n",
             req, lost, sock ? sock : "0/0/0/0", non2xx }' "$f"
}

declare -A LOST REQ RELOADS
echo
printf "%-9s %8s %9s %6s  %s\n" proxy reloads requests lost "failure kinds (lameduck load)"
for name in nginx lameduck; do
  IFS=$'\t' read -r "REQ[$name]" "LOST[$name]" kinds _ _ _ < <(load_report "$name")
  RELOADS[$name]=$(cat "$OUT/reloads-$name" 2>/dev/null || echo 0)
  printf "%-9s %8s %9s %6s  %s\n" "$name" "${RELOADS[$name]}" "${REQ[$name]}" "${LOST[$name]}" "$kinds"
done
echo
for name in nginx lameduck; do
  IFS=$'\t' read -r _ _ _ per_second window verdict < <(load_report "$name")
  echo "$name: reloads during $window; failures per second: $per_second; load's verdict: $verdict"
done
echo "lameduck: $LD_APPLIED \"config reloaded\" log lines during the load run (SIGHUPs and its file watcher);" \
  "$(grep -ci "error\|rejected" "$OUT/lameduck.log" || true) error lines in its log"
if command -v wrk >/dev/null; then
  for name in nginx lameduck; do
    echo "wrk, $name ($(cat "$OUT/wrk-reloads-$name" 2>/dev/null || echo 0) reloads): $(wrk_report "$name")"
  done
fi
echo "reports: $OUT/load-{nginx,lameduck}.{txt,json,html}"
echo
# A run without requests or without reloads proves nothing: that fails too.
if [ "${LOST[lameduck]}" -eq 0 ] && [ "${REQ[lameduck]}" -gt 0 ] && [ "${RELOADS[lameduck]}" -gt 0 ]; then
  verdict=PASS
else
  verdict=FAIL
fi
echo "lameduck lost ${LOST[lameduck]} of ${REQ[lameduck]} (goal 0): $verdict; nginx lost ${LOST[nginx]} of ${REQ[nginx]}"
[ "$verdict" = PASS ]
