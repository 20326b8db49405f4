#!/usr/bin/env bash
# The part of regkeep's test run that happens inside a private network + mount namespace. Run by
# scripts/test.sh and scripts/test-shell.sh as `unshare --net --mount --fork -- bash scripts/in-namespace.sh`;
# it refuses to run anywhere else (its bind mount would hide the host's /etc/hosts).
#
# In the namespace only loopback exists (nothing inside can reach anything else, and nothing outside,
# e.g. a CI run's peers on the same ports, can collide), and /etc/hosts is a private file mapping
# 123456789012.dkr.ecr.us-east-1.amazonaws.com (and the other ECR host forms of NS_ECR_MORE_HOSTS) to
# 127.0.0.2, so the ECR-name registry works, and AWS's API names (NS_AWS_API_HOSTS, scripts/ns-lib.sh) to
# 127.0.0.4, the TLS front that stands in for AWS (fixtures/aws_front.py, started by peers.sh).
# For the adversarial test lab (scripts/peers.sh starts its servers; see its header) lo also gets
# 169.254.169.254 (metadata stand-in), 10.77.0.1 (private-network stand-in) and 198.51.100.7 (the
# malicious registry; 127.0.0.9, the loopback stand-in, is on lo anyway), the private hosts file maps
# every *.evil.test name of LAB_EVIL_NAMES to 198.51.100.7, and a private /etc/resolv.conf names the
# lab's DNS server, 127.0.0.53 (one attempt, 1 s timeout), so other names go to it (rebinding).
# (With those IPv4 addresses on lo and no IPv6 one but ::1, glibc's AI_ADDRCONFIG means IPv4 only
# here: getaddrinfo with that flag asks A alone, and AF_INET6 with it finds nothing.)
#
#   1. lo up, the lab's addresses on it; the private hosts file bind-mounted over /etc/hosts and the
#      private resolv.conf over /etc/resolv.conf (this mount namespace only)
#   2. scripts/peers.sh start (all peers, checked), source target/peers/env
#   3. REGKEEP_NS_MODE=test (default): cargo nextest run --workspace --no-fail-fast --offline "$@"
#      (skipped with REGKEEP_TEST_SKIP_CARGO=1); its exit code is this script's
#      REGKEEP_NS_MODE=shell: "$@", or an interactive bash when no arguments (scripts/test-shell.sh)
#   4. on any exit: scripts/peers.sh stop, then a check that no process is left in the namespace
#      (anything found is reported and killed); both bind mounts undone
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

# The adversarial lab: its addresses on lo, the malicious registry's names, its DNS server.
LAB_ADDRS=(169.254.169.254/32 10.77.0.1/32 198.51.100.7/32)
LAB_EVIL_ADDR=198.51.100.7
LAB_EVIL_NAMES=(evil.test realm-meta.evil.test realm-loop.evil.test realm-private.evil.test
    realm-decimal.evil.test realm-mapped.evil.test realm-https.evil.test realm-http.evil.test
    redirect-meta.evil.test redirect-loop.evil.test redirect-private.evil.test redirect-mapped.evil.test
    redirect-mapped-hex.evil.test redirect-decimal.evil.test redirect-octal.evil.test redirect-hex.evil.test
    redirect-rebind.evil.test escapes.evil.test big.evil.test plain.evil.test
    bigexp.evil.test onebyte.evil.test trickle.evil.test escidx.evil.test escdigest.evil.test
    escconfig.evil.test hdr.evil.test)
# A name with a private and a public address (the registry's name is the attacker's to resolve).
LAB_MIXED_NAME=mixed.evil.test
LAB_DNS_ADDR=127.0.0.53

ip link set lo up
for addr in "${LAB_ADDRS[@]}"; do ip addr add "$addr" dev lo; done
# unshare makes the mounts private already; again, so the bind mounts below can never reach the host.
mount --make-rprivate /
mkdir -p "$PEERS"
{
    printf '127.0.0.1 localhost %s\n::1 localhost\n%s %s\n' "$(hostname)" "$NS_ECR_ADDR" "$NS_ECR_HOST"
    # One name a line: no line-length or alias-count limit to think about.
    for name in "${LAB_EVIL_NAMES[@]}"; do printf '%s %s\n' "$LAB_EVIL_ADDR" "$name"; done
    printf '10.77.0.1 %s\n%s %s\n' "$LAB_MIXED_NAME" "$LAB_EVIL_ADDR" "$LAB_MIXED_NAME"
    # The other ECR registry host forms (same registry), and AWS's API names (the TLS front).
    for name in "${NS_ECR_MORE_HOSTS[@]}"; do printf '%s %s\n' "$NS_ECR_ADDR" "$name"; done
    for name in "${NS_AWS_API_HOSTS[@]}"; do printf '%s %s\n' "$NS_AWS_FRONT_ADDR" "$name"; done
} >"$PEERS/ns-hosts"
printf 'nameserver %s\noptions attempts:1 timeout:1\n' "$LAB_DNS_ADDR" >"$PEERS/ns-resolv.conf"
# A missing (or dangling symlink) /etc/resolv.conf cannot be mounted over; without ours, the lab's
# rebinding names would not resolve.
[[ -f /etc/resolv.conf ]] || die "/etc/resolv.conf is missing (or a dangling symlink): the test namespace mounts its own over it"
mount --bind "$PEERS/ns-hosts" /etc/hosts
echo "$NETNS" >"$REPO/$NS_FILE_REL"
mount --bind "$PEERS/ns-resolv.conf" /etc/resolv.conf || { umount /etc/hosts; die "could not mount a private /etc/resolv.conf"; }
say "namespace $NETNS: only lo ($(ip -brief addr show lo | awk '{$1 = $2 = ""; print substr($0, 3)}')), /etc/hosts private ($NS_ECR_HOST and ${#NS_ECR_MORE_HOSTS[@]} more ECR hosts -> $NS_ECR_ADDR, ${#NS_AWS_API_HOSTS[@]} AWS API names -> $NS_AWS_FRONT_ADDR, ${#LAB_EVIL_NAMES[@]} lab names -> $LAB_EVIL_ADDR), /etc/resolv.conf private (nameserver $LAB_DNS_ADDR)"

cleanup() {
    local rc=$?
    # No second signal may cut the clean-up short (what it runs inherits this, peers.sh stop included).
    trap - EXIT
    trap '' INT TERM
    scripts/peers.sh stop || { say "peers.sh stop failed"; ((rc)) || rc=1; }
    # Double check: after stop, only this script and unshare (its parent) may be left in here.
    if kill_netns "$NETNS" in-namespace $$ "$PPID"; then say "no process left in the namespace after peers.sh stop"; fi
    umount /etc/resolv.conf 2>/dev/null || true
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
export REGKEEP_TEST_REQUIRE_PEERS=1   # here a peer test without its peers fails, never skips

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
