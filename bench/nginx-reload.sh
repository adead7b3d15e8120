#!/usr/bin/env bash
# The reload test: nginx on loopback proxying to a backend, reloaded every
# 200 ms under keepalive load. wrk runs first and reports its error counters;
# then `lameduck load` runs the same reloads with --during and shows the same
# losses by outcome, on a timeline (bench/out/nginx-reload/report.html).
#
#   bench/nginx-reload.sh [-c CONNECTIONS] [-d SECONDS] [-i RELOAD_INTERVAL]
#
# Needs nginx, wrk, python3. Listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

connections=50
seconds=10
interval=0.2
while getopts "c:d:i:" opt; do
    case $opt in
        c) connections=$OPTARG ;;
        d) seconds=$OPTARG ;;
        i) interval=$OPTARG ;;
        *) echo "usage: $0 [-c CONNECTIONS] [-d SECONDS] [-i RELOAD_INTERVAL]" >&2; exit 2 ;;
    esac
done
for tool in nginx wrk python3; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done
cargo build --release -q -p lameduck
lameduck=$PWD/target/release/lameduck

out=$PWD/bench/out/nginx-reload
rm -rf "$out" && mkdir -p "$out/backend/logs" "$out/proxy/logs"
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
backend_port=$(free_port)
proxy_port=$(free_port)
url="http://127.0.0.1:$proxy_port/"

cat > "$out/backend/nginx.conf" <<CONF
worker_processes 1;
pid $out/backend/nginx.pid;
error_log $out/backend/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    server { listen 127.0.0.1:$backend_port; location / { return 200 "ok\n"; } }
}
CONF
cat > "$out/proxy/nginx.conf" <<CONF
worker_processes 2;
pid $out/proxy/nginx.pid;
error_log $out/proxy/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    upstream backend { server 127.0.0.1:$backend_port; keepalive 64; }
    server {
        listen 127.0.0.1:$proxy_port;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
backend=(nginx -p "$out/backend" -c "$out/backend/nginx.conf")
proxy=(nginx -p "$out/proxy" -c "$out/proxy/nginx.conf")
"${backend[@]}"
"${proxy[@]}"
trap '"${proxy[@]}" -s stop 2>/dev/null || true; "${backend[@]}" -s stop 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "$url" >/dev/null 2>&1 && break; sleep 0.1; done

# Reloads for $1 seconds, every $interval.
reload_for="end=\$(( \$(date +%s) + $((seconds - 2)) )); \
while [ \$(date +%s) -lt \$end ]; do ${proxy[*]} -s reload 2>>$out/reload.log; sleep $interval; done"
echo "$reload_for" > "$out/reload.sh"

echo "== wrk, $connections connections, ${seconds}s, reload every ${interval}s" >&2
(sleep 1; sh "$out/reload.sh") &
wrk -t2 -c"$connections" -d"${seconds}s" "$url" > "$out/wrk.txt"
wait
echo "== lameduck load, same" >&2
set +e
"$lameduck" load -c "$connections" -d "${seconds}s" --warmup 1s --cooldown 1s \
    --during "sh $out/reload.sh" --json "$out/report.json" --html "$out/report.html" "$url" \
    > "$out/lameduck.txt"
status=$?
set -e

echo "wrk:"
grep -E "requests in|Socket errors|Non-2xx" "$out/wrk.txt" | sed 's/^/  /'
grep -q "Socket errors" "$out/wrk.txt" || echo "  (no socket errors reported)"
echo "lameduck load (exit $status):"
sed 's/^/  /' "$out/lameduck.txt"
python3 - "$out/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
failed = [b for b in r["timeline"] if b["failures"]]
print(f"  failures fell in {len(failed)} of {len(r['timeline'])} one-second buckets;",
      "during_start/end at", [round(e["at_s"], 1) for e in r["events"]])
PY
echo "timeline chart: $out/report.html"
