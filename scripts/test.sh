#!/usr/bin/env bash
# The one command that checks dbjobs: installs what is missing (as root on Debian), builds
# the host, the SDK, every plugin and the test fixtures, then runs every test: unit tests
# beside the code and the end-to-end tests in tests/ against throwaway MariaDB servers.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH" # where setup.sh puts Rust when it had to install it

# The end-to-end tests load the plugin .so files and run the dbjobs binary from target/debug,
# so everything is built first.
cargo build --workspace --all-targets --locked

# The fuzz targets (tests/fuzz/, one per parser): replay each one's seed corpus (tests/bad-inputs/,
# tests/fuzz/seeds/), then fuzz it for a few seconds. A panic, a crash, a hang (60 s on one input)
# or an allocation over 512 MiB fails the suite; libFuzzer leaves the input in tests/fuzz/artifacts/.
# cargo-fuzz passes nightly-only sanitizer flags: RUSTC_BOOTSTRAP=1 for its commands only (in
# the environment it would change the workspace's build and make the tests below rebuild it).
RUSTC_BOOTSTRAP=1 cargo fuzz build --fuzz-dir tests/fuzz
fuzz_corpus=$(mktemp -d)
trap 'rm -rf "$fuzz_corpus"' EXIT
for target in xbstream_forward:xbstream dump_plan:gzip gzip_decode:gzip option_file:option_file job_row:-; do
    name=${target%%:*} seeds=${target##*:}
    dirs=()
    for d in "tests/bad-inputs/$seeds" "tests/fuzz/seeds/$name"; do
        [ -d "$d" ] && dirs+=("$d")
    done
    mkdir -p "$fuzz_corpus/$name"
    if ! RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz "$name" "$fuzz_corpus/$name" "${dirs[@]}" -- \
        -max_total_time="${FUZZ_SECONDS:-5}" -timeout=60 -report_slow_units=120 \
        -rss_limit_mb=2048 -malloc_limit_mb=512 >"$fuzz_corpus/$name.log" 2>&1; then
        tail -60 "$fuzz_corpus/$name.log"
        echo "fuzz target $name failed (its input is in tests/fuzz/artifacts/$name/)" >&2
        exit 1
    fi
    echo "fuzz $name: $(grep -E '^Done [0-9]+ runs' "$fuzz_corpus/$name.log") over ${dirs[*]}"
done

# Servers the tests start log their errors when a test fails; keep test output readable.
export RUST_BACKTRACE=${RUST_BACKTRACE:-0}
cargo test --workspace --locked --no-fail-fast "$@"
