#!/usr/bin/env bash
# Benchmark of `lameduck pcap` against tshark in one run, on the same files:
# a synthetic rotated capture series (tcp.pcap, tcp.pcap1, …, 100 MB each,
# keepalive HTTP/1.1 traffic, written by the gen-capture example), read once
# by `lameduck pcap` and once by `tshark -r FILE -q -z conv,tcp` per file.
# Prints MB/s of each and the ratio. Goal: lameduck at least 10x tshark.
#
# A benchmark, not a test: `cargo test` never runs it. It writes TOTAL_MB of
# captures under a temporary directory and removes them at the end.
#
#   bench/pcap-vs-tshark.sh           # 1000 MB
#   bench/pcap-vs-tshark.sh 300       # a smaller series, same file size
set -euo pipefail

cd "$(dirname "$0")/.."
total_mb=${1:-1000}
file_mb=100

# shellcheck source=lib.sh
source bench/lib.sh
apt_need tshark tshark || { echo "tshark is needed (apt-get install tshark)" >&2; exit 1; }

cargo build --release -p lameduck
cargo build --release -p lameduck-pcap --example gen-capture
lameduck=target/release/lameduck

dir=$(mktemp -d /tmp/lameduck-pcap-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
target/release/examples/gen-capture "$dir" "$total_mb" "$file_mb"
files=$(find "$dir" -name 'tcp.pcap*' | sort -V)
bytes=$(cat $files | wc -c)
# Both readers start from the page cache: read every file once first.
cat $files > /dev/null

echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:  $(nproc) CPUs, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "lameduck: $($lameduck --version)"
echo "tshark:   $(tshark --version 2>/dev/null | head -1)"
echo "series:   $(echo "$files" | wc -l) files, $((bytes / 1000000)) MB"
echo

now() { date +%s.%N; }

t0=$(now)
# shellcheck disable=SC2086
$lameduck pcap $files > "$dir/lameduck.out"
t1=$(now)
for f in $files; do
    tshark -r "$f" -q -z conv,tcp > /dev/null 2>&1
done
t2=$(now)

head -5 "$dir/lameduck.out"
echo
awk -v b="$bytes" -v a="$t0" -v m="$t1" -v z="$t2" 'BEGIN {
    ld = m - a; ts = z - m
    printf "lameduck pcap:      %7.2f s  %8.1f MB/s\n", ld, b / 1e6 / ld
    printf "tshark -z conv,tcp: %7.2f s  %8.1f MB/s\n", ts, b / 1e6 / ts
    printf "ratio:              %7.1fx (goal: at least 10x)\n", ts / ld
}'
