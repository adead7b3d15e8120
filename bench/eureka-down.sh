#!/usr/bin/env bash
# Time from `PUT …/status?value=DOWN` to the last request `lameduck proxy` sends
# to that instance, under load: with lameduck registry's change feed, and with
# plain delta polling every second. Loopback only; bounded (~1 min).
#
#   bench/eureka-down.sh [FEED_ROUNDS] [POLL_ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p lameduck-proxy --example down_latency
bin=target/release/examples/down_latency
"$bin" feed "${1:-50}"
"$bin" poll "${2:-12}" 1000
