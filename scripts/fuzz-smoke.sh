#!/usr/bin/env bash
# Build every cargo-fuzz target and run each for SECONDS (default 10).
# A crash fails the script; libFuzzer leaves the input in fuzz/artifacts/.
set -euo pipefail
secs=${1:-10}
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes nightly-only flags; this machine has only a stable
# toolchain, and RUSTC_BOOTSTRAP=1 lets stable accept them. No sanitizer:
# the code under test is safe Rust, and we look for panics and hangs.
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none -O
for t in $(cargo fuzz list); do
    mkdir -p "corpus/$t"
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    echo "fuzz $t for ${secs}s"
    cargo fuzz run -s none -O "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 -print_final_stats=0 2>&1 |
        grep -E 'Done|ERROR|panicked|SUMMARY' || true
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "fuzz target $t failed"; exit 1; }
done
echo "fuzz smoke: all targets ran ${secs}s without a crash"
