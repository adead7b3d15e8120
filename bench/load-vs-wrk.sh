#!/usr/bin/env bash
# Benchmark: `lameduck load` against wrk and oha, same run, same nginx, same
# connection count. Prints each tool's throughput and p50/p99 (median over the
# rounds, tools interleaved so machine noise hits all alike) and the ratios the
# acceptance asks for: throughput >= 0.9x wrk and >= 1.0x oha, p50/p99 within 10%
# of wrk's.
#
#   bench/load-vs-wrk.sh [-c CONNECTIONS] [-d SECONDS] [-r ROUNDS]
#
# It also prints each tool's CPU time per request (user+system, from
# /usr/bin/time): on a machine shared with other work, throughput swings with
# the noise, CPU per request much less.
#
# Needs: nginx and wrk (Debian packages), python3; oha (`cargo install oha`) is
# used when on PATH. Builds `lameduck` in release mode. Everything listens on
# 127.0.0.1 only. Output and nginx's files go to bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."

connections=50
seconds=10
rounds=3
while getopts "c:d:r:" opt; do
    case $opt in
        c) connections=$OPTARG ;;
        d) seconds=$OPTARG ;;
        r) rounds=$OPTARG ;;
        *) echo "usage: $0 [-c CONNECTIONS] [-d SECONDS] [-r ROUNDS]" >&2; exit 2 ;;
    esac
done

for tool in nginx wrk python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done
has_oha=false
command -v oha >/dev/null && has_oha=true

cargo build --release -q -p lameduck
lameduck=target/release/lameduck

out=bench/out/load-vs-wrk
rm -rf "$out" && mkdir -p "$out/nginx/logs"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port/"

cat > "$out/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $PWD/$out/nginx/nginx.pid;
error_log $PWD/$out/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    server {
        listen 127.0.0.1:$port;
        location / { return 200 "ok\n"; }
    }
}
CONF
nginx -p "$PWD/$out/nginx" -c "$PWD/$out/nginx/nginx.conf"
trap 'nginx -p "$PWD/$out/nginx" -c "$PWD/$out/nginx/nginx.conf" -s stop 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "$url" >/dev/null 2>&1 && break; sleep 0.1; done

# Each runner prints one line: requests/s p50_us p99_us requests; its CPU
# time goes to $out/TOOL.ROUND.cpu.
timed() { /usr/bin/time -f "%U %S" -o "$out/$1.$2.cpu" "${@:3}"; }

run_wrk() {
    timed wrk "$1" wrk -t2 -c"$connections" -d"${seconds}s" --latency "$url" > "$out/wrk.$1.txt"
    python3 - "$out/wrk.$1.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def us(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = us(re.search(r"\s50%\s+(\S+)", text).group(1))
p99 = us(re.search(r"\s99%\s+(\S+)", text).group(1))
n = int(re.search(r"(\d+) requests in", text).group(1))
print(rps, p50, p99, n)
PY
}

run_oha() {
    timed oha "$1" oha -c "$connections" -z "${seconds}s" --no-tui --output-format json "$url" > "$out/oha.$1.json"
    python3 - "$out/oha.$1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["latencyPercentiles"]
n = sum(r["statusCodeDistribution"].values())
print(r["summary"]["requestsPerSec"], p["p50"] * 1e6, p["p99"] * 1e6, n)
PY
}

run_lameduck() {
    timed lameduck "$1" "$lameduck" load -c "$connections" -d "${seconds}s" --json "$out/lameduck.$1.json" "$url" \
        > "$out/lameduck.$1.txt"
    python3 - "$out/lameduck.$1.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
assert s["failures"] == 0, s["outcomes"]
print(s["throughput_rps"], s["latency"]["p50_us"], s["latency"]["p99_us"], s["requests"])
PY
}

tools=(wrk lameduck)
$has_oha && tools+=(oha)
for round in $(seq "$rounds"); do
    for tool in "${tools[@]}"; do
        echo "round $round: $tool" >&2
        line=$("run_$tool" "$round")
        read -r user sys < "$out/$tool.$round.cpu"
        echo "$line $user $sys" >> "$out/$tool.results"
    done
done

python3 - "$out" "$connections" "$seconds" "$rounds" "${tools[@]}" <<'PY'
import statistics, sys
out, conns, secs, rounds, tools = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
med = {}
for t in tools:
    rows = [list(map(float, l.split())) for l in open(f"{out}/{t}.results")]
    # columns: req/s, p50 µs, p99 µs, requests, user s, system s
    rows = [r[:3] + [(r[4] + r[5]) / r[3] * 1e6] for r in rows]
    med[t] = [statistics.median(col) for col in zip(*rows)]
print(f"nginx 'ok' on loopback, {conns} connections, {secs}s x {rounds} rounds (medians)")
print(f"{'tool':<10} {'req/s':>10} {'p50':>10} {'p99':>10} {'CPU/request':>12}")
for t in tools:
    rps, p50, p99, cpu = med[t]
    print(f"{t:<10} {rps:>10.0f} {p50/1e3:>8.2f}ms {p99/1e3:>8.2f}ms {cpu:>10.2f}µs")
l = med["lameduck"]
w = med["wrk"]
print(f"lameduck/wrk throughput {l[0]/w[0]:.2f}x (goal >= 0.90)")
print(f"lameduck/wrk p50 {l[1]/w[1]:.2f}x, p99 {l[2]/w[2]:.2f}x (goal within 0.90-1.10)")
print(f"lameduck/wrk CPU per request {l[3]/w[3]:.2f}x (lower is better)")
if "oha" in med:
    print(f"lameduck/oha throughput {l[0]/med['oha'][0]:.2f}x (goal >= 1.00)")
else:
    print("oha not installed (cargo install oha): no oha ratio")
PY
