#!/usr/bin/env bash
# regkeep's whole test command (what README and CI run): installs the test dependencies, starts the
# real peers on loopback (scripts/peers.sh), then format check, clippy and every test with nextest.
# The peers are stopped on exit, whatever happened.
#
# Usage: scripts/test.sh [NEXTEST_ARGS...]     e.g. scripts/test.sh -E 'test(bearer)'
#
# Environment:
#   REGKEEP_TEST_SKIP_CARGO=1   do everything but the cargo steps (install, start peers, stop them):
#                               checks the harness itself, without building anything.
#
# Works as root with CI=true and no standard input. Tests read the peers from REGKEEP_TEST_* variables
# (listed at the top of scripts/peers.sh); to run single tests by hand with the peers up:
#   scripts/peers.sh start && source "$(scripts/peers.sh env)" && cargo nextest run ... ; scripts/peers.sh stop
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# rustup's cargo, should the caller's PATH lack it.
if ! command -v cargo >/dev/null && [[ -x $HOME/.cargo/bin/cargo ]]; then
    PATH=$HOME/.cargo/bin:$PATH
fi

scripts/install-deps.sh

# Stop the peers on any exit; a signal becomes an exit, so the EXIT trap runs for it too.
trap 'scripts/peers.sh stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
scripts/peers.sh start
# shellcheck source=/dev/null
source target/peers/env

if [[ ${REGKEEP_TEST_SKIP_CARGO:-} == 1 ]]; then
    echo "test.sh: REGKEEP_TEST_SKIP_CARGO=1: cargo fmt, clippy and nextest skipped"
    exit 0
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --no-fail-fast "$@"
