#!/usr/bin/env bash
# A shell (or one command) inside the test namespace with every peer up, for running single tests by
# hand exactly as scripts/test.sh runs them: private network (loopback only) + mount namespace, a private
# /etc/hosts with 123456789012.dkr.ecr.us-east-1.amazonaws.com -> 127.0.0.2, scripts/peers.sh start,
# target/peers/env sourced, CARGO_NET_OFFLINE=true. Leaving the shell stops the peers; nothing started
# in the namespace outlives it.
#
# Usage: scripts/test-shell.sh                  an interactive bash (prompt "[regkeep-ns] ...")
#        scripts/test-shell.sh CMD [ARGS...]    runs CMD there instead, e.g.
#            scripts/test-shell.sh cargo nextest run --offline -E 'test(ecr)'
#
# Build on the host first (cargo nextest run --no-run): there is no network inside. Needs root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/ns-lib.sh
source scripts/ns-lib.sh

scripts/install-deps.sh >/dev/null
rc=0
REGKEEP_NS_MODE=shell run_in_namespace test-shell.sh fg \
    unshare --net --mount --fork --kill-child -- bash scripts/in-namespace.sh "$@" || rc=$?
exit "$rc"
