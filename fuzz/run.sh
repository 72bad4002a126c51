#!/usr/bin/env bash
# Fuzzes one target for a while: fuzz/run.sh decode|bare_metal [seconds] [libFuzzer args...]
# New interesting inputs go to fuzz/scratch/<target> (ignored by git); the committed seed
# corpus in fuzz/corpus/<target> is read but never written. Crashes land in
# fuzz/artifacts/<target>. Needs a nightly toolchain and cargo-fuzz (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: fuzz/run.sh decode|bare_metal [seconds] [libFuzzer args...]}"
seconds="${2:-600}"
shift $(( $# >= 2 ? 2 : 1 ))
mkdir -p "fuzz/scratch/$target"
exec cargo +nightly fuzz run "$target" "fuzz/scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=30 "$@"
