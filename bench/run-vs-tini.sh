#!/usr/bin/env bash
# Benchmark of `lameduck run` against tini in one run: idle memory of each
# supervising `sleep 60`, and the latency of a signal forwarded through each.
# Goals: lameduck's idle VmRSS at most 3 MiB, its forwarding p99 under 1 ms.
#
# A benchmark, not a test: `cargo test` never runs it. It only starts local
# processes, stops every one of them, and is bounded (ld-sigbench gives up on any
# step after --timeout seconds).
#
#   bench/run-vs-tini.sh                     # 2000 signals each
#   bench/run-vs-tini.sh --iterations 500    # any ld-sigbench option
set -euo pipefail

cd "$(dirname "$0")/.."

cargo build --release -p lameduck -p lameduck-testkit

if ! command -v tini >/dev/null; then
    echo "tini not found: installing Debian's tini package" >&2
    apt-get install -y tini
fi
tini=$(command -v tini)
lameduck=target/release/lameduck

echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) CPUs, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "lameduck: $($lameduck --version), binary $(stat -c %s $lameduck) bytes"
echo "tini:     $($tini --version), binary $(stat -c %s "$tini") bytes"
echo

# No control socket: the socket is not what is measured, and a fixed path could
# meet another lameduck on this machine.
timeout 300 target/release/ld-sigbench "$@" \
    "lameduck=$lameduck run --no-control --" \
    "tini=$tini --"
