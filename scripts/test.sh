#!/usr/bin/env bash
# regkeep's whole test command (what README and CI run): installs the test dependencies, checks format
# and lints and builds every test on the host (crates.io reachable), then runs the tests inside a
# private network + mount namespace with the real peers on its loopback. The peers are stopped on
# exit, whatever happened, and nothing started in the namespace outlives it.
#
# Usage: scripts/test.sh [NEXTEST_ARGS...]     e.g. scripts/test.sh -E 'test(bearer)'
#
# Environment:
#   REGKEEP_TEST_SKIP_CARGO=1   do everything but the cargo steps (install, namespace, start peers and
#                               check them, stop them): checks the harness itself, without building.
#   REGKEEP_TEST_TIMEOUT=SECS   bound on the namespace part (default 2400: 40 min)
#
# Steps:
#   1. scripts/install-deps.sh
#   2. on the host: cargo fmt --all --check; cargo clippy --workspace --all-targets -- -D warnings;
#      cargo nextest run --workspace --no-run (builds everything, so the namespace needs no network)
#   3. timeout 40m unshare --net --mount --fork -- bash scripts/in-namespace.sh NEXTEST_ARGS: lo up, a
#      private /etc/hosts (127.0.0.2 123456789012.dkr.ecr.us-east-1.amazonaws.com), scripts/peers.sh
#      start, `cargo nextest run --workspace --no-fail-fast --offline NEXTEST_ARGS`, peers.sh stop.
#      Its exit code (nextest's) is this script's.
#   4. anything still in that namespace is killed (there should be nothing), and the host's /etc/hosts
#      is checked untouched.
#
# Two ways to run single tests by hand (details at the top of scripts/peers.sh):
#   - in the namespace, with every peer including the ECR-name registry:
#       scripts/test-shell.sh                        (a shell there: env sourced, exit to stop the peers)
#       scripts/test-shell.sh cargo nextest run -E 'test(ecr)'
#   - on the host, without the ECR-name registry (REGKEEP_TEST_REGISTRY_ECR unset; ports 15000-15012 and
#     5432 must be free):
#       scripts/peers.sh start && source "$(scripts/peers.sh env)" && cargo nextest run ... ; scripts/peers.sh stop
#
# Works as root (unshare, PostgreSQL, port 443) with CI=true and no standard input.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/ns-lib.sh
source scripts/ns-lib.sh   # also puts ~/.cargo/bin on PATH

[[ $(id -u) == 0 ]] || { echo "test.sh: error: needs root (unshare, PostgreSQL, port 443)" >&2; exit 1; }

scripts/install-deps.sh

# The test runner: a machine with only rustup's toolchain has no cargo-nextest. Pinned, locked.
NEXTEST_VERSION=0.9.143
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "test.sh: cargo-nextest is missing: installing $NEXTEST_VERSION (cargo install --locked)"
    cargo install --locked cargo-nextest --version "$NEXTEST_VERSION"
fi

if [[ ${REGKEEP_TEST_SKIP_CARGO:-} == 1 ]]; then
    echo "test.sh: REGKEEP_TEST_SKIP_CARGO=1: cargo fmt, clippy, build and nextest skipped"
else
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo nextest run --workspace --no-run
fi

t0=$SECONDS
rc=0
run_in_namespace test.sh bg timeout --kill-after=60 "${REGKEEP_TEST_TIMEOUT:-2400}" \
    unshare --net --mount --fork --kill-child -- bash scripts/in-namespace.sh "$@" || rc=$?
((rc != 124)) || echo "test.sh: error: the namespace part ran past ${REGKEEP_TEST_TIMEOUT:-2400}s and was stopped" >&2
echo "test.sh: namespace part finished in $((SECONDS - t0))s with exit code $rc"
exit "$rc"
