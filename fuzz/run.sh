#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: fuzz/run.sh [SECONDS_PER_TARGET].
# New inputs go to a scratch corpus (the checked-in seeds under fuzz/corpus/
# are read, never written), kept across runs in $FUZZ_SCRATCH if set; a crash
# leaves its input in fuzz/artifacts/TARGET/ and the script fails, naming it.
# Needs the nightly toolchain and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
if [ -n "${FUZZ_SCRATCH:-}" ]; then
    scratch="$FUZZ_SCRATCH"
else
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
fi
failed=()
for target in $(cargo +nightly fuzz list); do
    mkdir -p "$scratch/$target"
    echo "-- $target (${secs}s)"
    if ! cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        2>"$scratch/$target.log"; then
        tail -n 40 "$scratch/$target.log" >&2
        failed+=("$target")
    fi
    grep -aE '^(stat::number_of_executed_units|Done [0-9]+ runs)' "$scratch/$target.log" || true
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets that failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
