# shellcheck shell=bash
# Helpers shared by scripts/test.sh, scripts/test-shell.sh and scripts/in-namespace.sh (sourced, not run).

# The host name that only resolves inside the test namespace (its private /etc/hosts).
# shellcheck disable=SC2034  # used by the scripts that source this
NS_ECR_HOST=123456789012.dkr.ecr.us-east-1.amazonaws.com
# shellcheck disable=SC2034
NS_ECR_ADDR=127.0.0.2
# More registry host forms of the ECR host grammar (GovCloud, China, FIPS, dual-stack, ECR Public), all
# served by that same registry on $NS_ECR_ADDR (its certificate names them all).
# shellcheck disable=SC2034
NS_ECR_MORE_HOSTS=(123456789012.dkr.ecr.us-gov-west-1.amazonaws.com 123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn
    123456789012.dkr.ecr-fips.us-east-1.amazonaws.com 123456789012.dkr-ecr.us-east-1.on.aws public.ecr.aws)
# AWS's own API names, as an AWS SDK given no AWS_ENDPOINT_URL* picks them, and some it must not pick
# (so that a wrong pick is seen, not a failed lookup): the private /etc/hosts maps them all to
# $NS_AWS_FRONT_ADDR, where fixtures/aws_front.py (started by peers.sh) logs the name asked for and
# forwards to moto (ECR, STS) or the ECR-API fixture (ECR Public).
# shellcheck disable=SC2034
NS_AWS_FRONT_ADDR=127.0.0.4
# shellcheck disable=SC2034
NS_AWS_API_HOSTS=(sts.amazonaws.com sts.us-east-1.amazonaws.com sts.us-gov-west-1.amazonaws.com
    sts.cn-north-1.amazonaws.com.cn api.ecr.us-east-1.amazonaws.com ecr.us-east-1.amazonaws.com
    api.ecr-fips.us-east-1.amazonaws.com ecr-fips.us-east-1.amazonaws.com ecr.us-east-1.api.aws
    api.ecr.us-gov-west-1.amazonaws.com api.ecr.cn-north-1.amazonaws.com.cn api.ecr-public.us-east-1.amazonaws.com)
# in-namespace.sh writes its network namespace here (e.g. "net:[4026532301]") for the sweep after it.
NS_FILE_REL=target/peers/netns

# cargo from rustup, whatever the caller's PATH.
if [[ -d $HOME/.cargo/bin && :$PATH: != *":$HOME/.cargo/bin:"* ]]; then
    PATH=$HOME/.cargo/bin:$PATH
    export PATH
fi

# netns_pids NETNS [EXCLUDED_PID...]: the PIDs (space-separated) of every process in network
# namespace NETNS but the excluded ones and the caller's own $(...) subshell. Call it as
# $(netns_pids ...) with no pipeline: a pipeline's other members would be in the namespace too.
netns_pids() {
    local ns=$1 p pid found=()
    shift
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [[ " $* $BASHPID " == *" $pid "* ]] && continue
        [[ $(readlink "$p/ns/net" 2>/dev/null) == "$ns" ]] && found+=("$pid")
    done
    echo "${found[*]}"
}

# kill_netns NETNS WHO [EXCLUDED_PID...]: stops (TERM, then KILL after 5 s) whatever still runs in
# NETNS, saying what it was. Every process in that namespace was started by us: it is a private one.
# Returns 1 when something had to be killed.
kill_netns() {
    local ns=$1 who=$2 left
    shift 2
    left=$(netns_pids "$ns" "$@")
    [[ -z $left ]] && return 0
    printf '%s: warning: processes left in the test namespace %s, killing them:\n' "$who" "$ns" >&2
    # shellcheck disable=SC2086
    ps -o pid=,args= -p "${left// /,}" >&2 || true
    # shellcheck disable=SC2086
    kill -TERM $left 2>/dev/null || true
    for _ in $(seq 50); do
        [[ -z $(netns_pids "$ns" "$@") ]] && return 1
        sleep 0.1
    done
    # shellcheck disable=SC2046
    kill -KILL $(netns_pids "$ns" "$@") 2>/dev/null || true
    return 1
}

# run_in_namespace WHO fg|bg CMD...: runs CMD (an `unshare --net --mount --fork ... in-namespace.sh`,
# root only) and returns its status; afterwards anything left in that namespace is killed and the
# host's /etc/hosts is checked untouched.
#   fg: CMD in the foreground: a terminal's Ctrl-C reaches it (and in-namespace.sh's traps) directly.
#   bg: CMD must be `timeout ...`: it runs in the background and an INT or TERM sent to this script
#       goes on as TERM to timeout, which passes it once to its whole process group (unshare ignores
#       it; in-namespace.sh and the tests get it), so in-namespace.sh stops the peers, as it does when
#       timeout fires. (Signalling the group from here as well would deliver it twice.)
run_in_namespace() {
    local who=$1 mode=$2 ns_pid rc=0 hosts_before hosts_after ns session_lock
    shift 2
    [[ $(id -u) == 0 ]] || { printf '%s: error: the test namespace needs root (unshare)\n' "$who" >&2; return 1; }
    # One session at a time per checkout: the peers' ports are per namespace, but their PID files,
    # data and env file live in target/peers, and a second `peers.sh start` would stop the first
    # session's peers. A second session waits (bounded) for the first to end.
    mkdir -p target
    exec {session_lock}>target/peers.session.lock
    if ! flock -n "$session_lock"; then
        printf '%s: another test session of this checkout is running (test.sh, test-shell.sh or a bench); waiting for it to end (up to 60 min)\n' "$who" >&2
        flock -w 3600 "$session_lock" || { printf '%s: error: the other test session did not end within 60 min\n' "$who" >&2; return 1; }
    fi
    hosts_before=$(sha256sum /etc/hosts)
    rm -f "$NS_FILE_REL"
    if [[ $mode == fg ]]; then
        "$@" || rc=$?
    else
        "$@" &
        ns_pid=$!
        trap 'kill -TERM "$ns_pid" 2>/dev/null || true' INT TERM
        while :; do
            rc=0
            wait "$ns_pid" || rc=$?
            kill -0 "$ns_pid" 2>/dev/null || break
        done
        trap - INT TERM
    fi
    if [[ -f $NS_FILE_REL ]]; then
        ns=$(<"$NS_FILE_REL")
        if kill_netns "$ns" "$who"; then
            printf '%s: namespace %s gone: no process left in it\n' "$who" "$ns"
        fi
        rm -f "$NS_FILE_REL"
    fi
    hosts_after=$(sha256sum /etc/hosts)
    if [[ $hosts_after != "$hosts_before" ]] || mountpoint -q /etc/hosts; then
        printf '%s: error: the host'"'"'s /etc/hosts changed or is mounted over\n' "$who" >&2
        ((rc)) || rc=1
    fi
    return "$rc"
}
