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

# Servers the tests start log their errors when a test fails; keep test output readable.
export RUST_BACKTRACE=${RUST_BACKTRACE:-0}
cargo test --workspace --locked --no-fail-fast "$@"
