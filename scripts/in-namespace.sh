#!/usr/bin/env bash
# The part of regkeep's test run that happens inside a private network + mount namespace. Run by
# scripts/test.sh and scripts/test-shell.sh as `unshare --net --mount --fork -- bash scripts/in-namespace.sh`;
# it refuses to run anywhere else (its bind mount would hide the host's /etc/hosts).
#
# In the namespace only loopback exists (nothing inside can reach anything else, and nothing outside,
# e.g. a CI run's peers on the same ports, can collide), and /etc/hosts is a private file mapping
# 123456789012.dkr.ecr.us-east-1.amazonaws.com to 127.0.0.2, so the ECR-name registry works.
#
#   1. lo up; the private hosts file bind-mounted over /etc/hosts (this mount namespace only)
#   2. scripts/peers.sh start (all peers, checked), source target/peers/env
#   3. REGKEEP_NS_MODE=test (default): cargo nextest run --workspace --no-fail-fast --offline "$@"
#      (skipped with REGKEEP_TEST_SKIP_CARGO=1); its exit code is this script's
#      REGKEEP_NS_MODE=shell: "$@", or an interactive bash when no arguments (scripts/test-shell.sh)
#   4. on any exit: scripts/peers.sh stop, then a check that no process is left in the namespace
#      (anything found is reported and killed)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# shellcheck source=scripts/ns-lib.sh
source scripts/ns-lib.sh
PEERS=$REPO/target/peers

say() { printf 'in-namespace: %s\n' "$*"; }
die() { printf 'in-namespace: error: %s\n' "$*" >&2; exit 1; }

NETNS=$(readlink /proc/self/ns/net)
[[ $NETNS != "$(readlink /proc/1/ns/net)" && $(readlink /proc/self/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]] \
    || die "not inside a private network + mount namespace: run scripts/test.sh or scripts/test-shell.sh"

ip link set lo up
# unshare makes the mounts private already; again, so the bind mount below can never reach the host.
mount --make-rprivate /
mkdir -p "$PEERS"
printf '127.0.0.1 localhost %s\n::1 localhost\n%s %s\n' "$(hostname)" "$NS_ECR_ADDR" "$NS_ECR_HOST" >"$PEERS/ns-hosts"
mount --bind "$PEERS/ns-hosts" /etc/hosts
echo "$NETNS" >"$REPO/$NS_FILE_REL"
say "namespace $NETNS: only lo ($(ip -brief addr show lo | awk '{print $3}')), /etc/hosts private ($NS_ECR_HOST -> $NS_ECR_ADDR)"

cleanup() {
    local rc=$?
    # No second signal may cut the clean-up short (what it runs inherits this, peers.sh stop included).
    trap - EXIT
    trap '' INT TERM
    scripts/peers.sh stop || { say "peers.sh stop failed"; ((rc)) || rc=1; }
    # Double check: after stop, only this script and unshare (its parent) may be left in here.
    if kill_netns "$NETNS" in-namespace $$ "$PPID"; then say "no process left in the namespace after peers.sh stop"; fi
    umount /etc/hosts 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$SECONDS
scripts/peers.sh start
say "peers started and checked in $((SECONDS - t0))s"
# shellcheck source=/dev/null
source target/peers/env
export CARGO_NET_OFFLINE=true   # no network in here: cargo must not try

case ${REGKEEP_NS_MODE:-test} in
test)
    if [[ ${REGKEEP_TEST_SKIP_CARGO:-} == 1 ]]; then
        say "REGKEEP_TEST_SKIP_CARGO=1: nextest skipped"
        exit 0
    fi
    cargo nextest run --workspace --no-fail-fast --offline "$@"
    ;;
shell)
    if (($#)); then
        "$@"
    else
        # shellcheck disable=SC2016  # $PS1 is for the inner shell
        printf '[ -f ~/.bashrc ] && . ~/.bashrc\n. %q\nPS1="[regkeep-ns] $PS1"\n' "$PEERS/env" >"$PEERS/ns-bashrc"
        say "a shell in the test namespace, peers up, env sourced; exit it to stop them"
        bash --rcfile "$PEERS/ns-bashrc" -i
    fi
    ;;
*) die "REGKEEP_NS_MODE must be test or shell, not ${REGKEEP_NS_MODE}" ;;
esac
