#!/usr/bin/env bash
# Benchmark of `regkeep image pull` (issue 4) against `skopeo copy`, inside the test namespace with
# the peers up: bench/big:v1 (~200 MB, 4 layers of incompressible data, pushed by
# bench/seed-images.sh) from the Bearer-token registry 127.0.0.1:15002 into an OCI image layout.
#
#   - regkeep: `regkeep serve` (release) with the registry's credentials registered through the API;
#     the CLI pulls through the server's pull-through (/v1/content) into a fresh empty directory;
#   - skopeo:  `skopeo copy --src-authfile auth.json docker://... oci:DIR:v1`, the same image, the same
#     filesystem, a fresh empty directory.
# RUNS runs of each (default 5), alternating, each into a new directory removed after it. Reported:
# wall time (median, min, max) and peak RSS of the CLI and of skopeo (GNU time's %M, else VmHWM
# polled every 20 ms from /proc), user+sys CPU; the server's RSS before the runs, its peak (VmHWM)
# after them and its CPU per pull; the ratio regkeep median / skopeo median (goal <= 1.0) and
# whether the CLI's peak RSS is under 100 MiB. Checked once (the script fails otherwise): the layout
# of a regkeep pull reads back with `skopeo inspect oci:DIR:v1`, its layers and manifest digest are
# the registry's. Then one pull of the same image from the no-auth registry 127.0.0.1:15004 (with no
# registry registered it is refused, as designed: anonymous means HTTPS with verification and 15004 is
# plain HTTP; the refusal is reported, then the pull with 15004 registered with registry_verify=false),
# with a skopeo pull beside it.
#
# Usage: bench/pull.sh [RUNS]   (as root: it builds the release binary on the host, then runs itself
# inside scripts/test-shell.sh, which starts the peers; the first thing in there is
# bench/seed-images.sh). REGKEEP_BENCH_POLL_RSS=1 forces the /proc polling even with GNU time.
# Registry and admin passwords travel in files (0600) and environment variables, never argv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ${1:-} != --in-namespace ]]; then
    runs=${1:-5}
    [[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/pull.sh [RUNS]" >&2; exit 2; }
    cargo build -q --release --bin regkeep
    exec scripts/test-shell.sh bash bench/pull.sh --in-namespace "$runs"
fi

# --- inside the test namespace (peers up, target/peers/env sourced) -------------------------------
runs=$2
bin=$PWD/target/release/regkeep
port=18500
url=http://127.0.0.1:$port
bearer=$REGKEEP_TEST_REGISTRY_BEARER
anon=$REGKEEP_TEST_REGISTRY_ANON
authfile=$REGKEEP_TEST_PEERS_DIR/auth.json
image=bench/big:v1

say() { printf 'bench/pull: %s\n' "$*"; }
die() { printf 'bench/pull: error: %s\n' "$*" >&2; exit 1; }
now() { echo "${EPOCHREALTIME/,/.}"; }

for tool in curl jq skopeo openssl sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -x $bin ]] || die "$bin missing (the host part builds it)"
[[ -r $authfile ]] || die "$authfile not readable"

bash bench/seed-images.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/regkeep-bench-pull.XXXXXXXX")
chmod 700 "$work"
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- measuring one command -------------------------------------------------------------------------
# measure NAME CMD...: runs CMD (stdout to $work/NAME.out, stderr to $work/NAME.err) and writes
# "WALL_S PEAK_KIB CPU_S" to $work/NAME.m (CPU_S is "-" without GNU time). Fails when CMD fails.
gnu_time=
if [[ ${REGKEEP_BENCH_POLL_RSS:-} != 1 ]] && command -v /usr/bin/time >/dev/null \
    && /usr/bin/time -f '%M' -o /dev/null true 2>/dev/null; then
    gnu_time=/usr/bin/time
fi
measure() {
    local name=$1 t0 t1 rc=0 pid hwm=0 key value rest peak user sys cpu
    shift
    t0=$(now)
    if [[ -n $gnu_time ]]; then
        "$gnu_time" -f '%M %U %S' -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
        t1=$(now)
        # On failure GNU time writes "Command exited with non-zero status N" first: the figures are last.
        read -r peak user sys < <(tail -n 1 "$work/$name.time")
        cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    else
        # A simple command in the background: $! is CMD itself (bash execs it in the forked child).
        "$@" >"$work/$name.out" 2>"$work/$name.err" &
        pid=$!
        while kill -0 "$pid" 2>/dev/null; do
            while read -r key value rest; do
                [[ $key == VmHWM: ]] && ((value > hwm)) && hwm=$value
            done 2>/dev/null <"/proc/$pid/status" || true
            sleep 0.02
        done
        wait "$pid" || rc=$?
        t1=$(now)
        peak=$hwm cpu=-
    fi
    if ((rc != 0)); then
        printf 'bench/pull: %s failed (exit %s): %s\n' "$name" "$rc" "$*" >&2
        cat "$work/$name.out" "$work/$name.err" >&2
        exit 1
    fi
    printf '%s %s %s\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$peak" "$cpu" >"$work/$name.m"
}
# field NAME N: field N of NAME's measurement.
field() { awk -v n="$2" '{ print $n }' "$work/$1.m"; }

# stats FILE: "median min max" of the numbers in FILE, one per line.
stats() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }'
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# proc_kib PID KEY: VmRSS or VmHWM of PID, in KiB.
proc_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# cpu_ticks PID: user + system clock ticks PID has used (fields 14 and 15 of /proc/PID/stat; the
# command name in parentheses is cut first, it may hold spaces).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
hz=$(getconf CLK_TCK)

# --- the server, the Bearer registry registered ----------------------------------------------------
admin_pass=$(openssl rand -hex 16)
(umask 077; printf 'user = "admin:%s"\n' "$admin_pass" >"$work/curl.cfg")
REGKEEP_DATA_DIR=$work/data REGKEEP_LISTEN=127.0.0.1:$port REGKEEP_OUTBOUND__ALLOW_LOOPBACK=true REGKEEP_LOG_LEVEL=warn \
    REGKEEP_DEFAULT_ADMIN_PASSWORD=$admin_pass "$bin" serve 2>"$work/server.log" &
server_pid=$!
t0=$SECONDS
until curl -sf "$url/health" >/dev/null; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "regkeep serve exited"; }
    ((SECONDS - t0 < 30)) || { cat "$work/server.log" >&2; die "regkeep serve not ready after 30 s"; }
    sleep 0.01
done
# The body from jq's environment (the variables come from target/peers/env), into a 0600 file.
(umask 077; jq -n --arg r "$bearer" '{registry: $r, registry_user: env.REGKEEP_TEST_REGISTRY_USER,
    registry_pass: env.REGKEEP_TEST_REGISTRY_PASS, registry_verify: false}' >"$work/registry.json")
code=$(curl -s -K "$work/curl.cfg" -o "$work/registry.answer" -w '%{http_code}' \
    -H 'content-type: application/json' --data-binary "@$work/registry.json" "$url/v1/registries")
[[ $code == 200 ]] || die "registering $bearer answered $code: $(cat "$work/registry.answer")"
rm -f "$work/registry.json"
sleep 1
server_rss_before=$(proc_kib "$server_pid" VmRSS)
server_hwm_before=$(proc_kib "$server_pid" VmHWM)

# What the registry holds, for the correctness check.
skopeo inspect --raw --authfile "$authfile" --tls-verify=false "docker://$bearer/$image" >"$work/registry-manifest.json" \
    || die "skopeo inspect --raw docker://$bearer/$image failed"
registry_digest=sha256:$(sha256sum <"$work/registry-manifest.json" | cut -d' ' -f1)
jq -r '.layers[].digest' "$work/registry-manifest.json" >"$work/registry-layers"
image_bytes=$(jq '.config.size + ([.layers[].size] | add)' "$work/registry-manifest.json")
image_layers=$(wc -l <"$work/registry-layers")

export REGKEEP_URL=$url REGKEEP_USER=admin REGKEEP_PASS=$admin_pass
# regkeep_pull NAME REF DIR: one measured pull; the JSON report must say it downloaded every byte.
regkeep_pull() {
    local name=$1 ref=$2 dir=$3 report
    measure "$name" "$bin" image pull "$ref" --output "$dir" --json
    report=$work/$1.out
    jq -e --argjson b "$image_bytes" --argjson l "$image_layers" \
        '.bytes == $b and .downloaded == $b and .layers == $l' "$report" >/dev/null \
        || die "$name: unexpected report: $(cat "$report")"
}

# check_layout DIR REPORT: skopeo reads the layout; its manifest and layers are the registry's.
check_layout() {
    local dir=$1 report=$2 layout_digest
    skopeo inspect "oci:$dir:v1" >"$work/layout-inspect.json" 2>"$work/layout-inspect.err" \
        || die "skopeo inspect oci:$dir:v1 failed: $(cat "$work/layout-inspect.err")"
    jq -r '.Layers[]' "$work/layout-inspect.json" | diff -u "$work/registry-layers" - >&2 \
        || die "the layers of the pulled layout differ from the registry's"
    layout_digest=sha256:$(skopeo inspect --raw "oci:$dir:v1" | sha256sum | cut -d' ' -f1)
    [[ $layout_digest == "$registry_digest" && $(jq -r .manifest_digest "$report") == "$registry_digest" ]] \
        || die "manifest digest: registry $registry_digest, layout $layout_digest, report $(jq -r .manifest_digest "$report")"
}

# --- the runs, alternating -------------------------------------------------------------------------
tool_line=$([[ -n $gnu_time ]] && echo "GNU time %M" || echo "VmHWM polled every 20 ms")
say "$runs runs each, alternating; $image from $bearer: $image_layers layers, $image_bytes bytes; peak RSS by $tool_line"
: >"$work/r.wall"; : >"$work/s.wall"; : >"$work/r.rss"; : >"$work/s.rss"; : >"$work/r.cpu"; : >"$work/s.cpu"; : >"$work/srv.cpu"
correct=
for ((i = 1; i <= runs; i++)); do
    dir=$work/layout-regkeep-$i
    rm -rf "$dir"
    ticks0=$(cpu_ticks "$server_pid")
    regkeep_pull "regkeep-$i" "$bearer/$image" "$dir"
    ticks1=$(cpu_ticks "$server_pid")
    if [[ -z $correct ]]; then
        check_layout "$dir" "$work/regkeep-$i.out"
        correct="OK (skopeo inspect oci:DIR:v1 reads it; $image_layers layer digests and manifest digest $registry_digest equal the registry's)"
    fi
    rm -rf "$dir"
    field "regkeep-$i" 1 >>"$work/r.wall"; field "regkeep-$i" 2 >>"$work/r.rss"; field "regkeep-$i" 3 >>"$work/r.cpu"
    srv_cpu=$(awk -v a="$ticks0" -v b="$ticks1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
    echo "$srv_cpu" >>"$work/srv.cpu"
    say "run $i regkeep: $(field "regkeep-$i" 1) s, CLI peak RSS $(mib "$(field "regkeep-$i" 2)") MiB, CLI CPU $(field "regkeep-$i" 3) s, server CPU $srv_cpu s"

    dir=$work/layout-skopeo-$i
    rm -rf "$dir"
    measure "skopeo-$i" skopeo --insecure-policy copy -q --src-authfile "$authfile" --src-tls-verify=false \
        "docker://$bearer/$image" "oci:$dir:v1"
    rm -rf "$dir"
    field "skopeo-$i" 1 >>"$work/s.wall"; field "skopeo-$i" 2 >>"$work/s.rss"; field "skopeo-$i" 3 >>"$work/s.cpu"
    say "run $i skopeo:  $(field "skopeo-$i" 1) s, peak RSS $(mib "$(field "skopeo-$i" 2)") MiB, CPU $(field "skopeo-$i" 3) s"
done
server_hwm=$(proc_kib "$server_pid" VmHWM)
server_rss_after=$(proc_kib "$server_pid" VmRSS)

# --- once from the anonymous registry ----------------------------------------------------------------
# Unregistered, regkeep goes anonymous with TLS verification on (docs/design.md §3.5); 15004 speaks plain
# HTTP, so that is refused: recorded, not fatal. Registered with registry_verify=false and
# placeholder credentials (as tests/peers/pull.rs does; this registry never asks for any), it pulls.
dir=$work/layout-anon-unregistered
if "$bin" image pull "$anon/$image" --output "$dir" --json >"$work/anon-unregistered.out" 2>&1; then
    anon_unregistered="pulled (unexpected: a plain-HTTP registry reached without registration)"
else
    anon_unregistered="refused as designed, reason \"$(sed -n 's/.*"reason":"\([^"]*\)".*/\1/p' "$work/anon-unregistered.out" | head -n 1)\""
    anon_unregistered+=" (anonymous = HTTPS with verification; $anon is plain HTTP)"
fi
rm -rf "$dir"
(umask 077; jq -n --arg r "$anon" '{registry: $r, registry_user: "nobody", registry_pass: "unused", registry_verify: false}' \
    >"$work/registry.json")
code=$(curl -s -K "$work/curl.cfg" -o "$work/registry.answer" -w '%{http_code}' \
    -H 'content-type: application/json' --data-binary "@$work/registry.json" "$url/v1/registries")
[[ $code == 200 ]] || die "registering $anon answered $code: $(cat "$work/registry.answer")"
dir=$work/layout-anon-regkeep
regkeep_pull anon-regkeep "$anon/$image" "$dir"
check_layout "$dir" "$work/anon-regkeep.out"
rm -rf "$dir"
dir=$work/layout-anon-skopeo
measure anon-skopeo skopeo --insecure-policy copy -q --src-no-creds --src-tls-verify=false \
    "docker://$anon/$image" "oci:$dir:v1"
rm -rf "$dir"
kill -0 "$server_pid" 2>/dev/null || die "regkeep serve died"
[[ ! -s $work/server.log ]] || { say "server log (warn and above):"; sed 's/^/  /' "$work/server.log"; }

# --- summary ---------------------------------------------------------------------------------------
read -r r_med r_min r_max < <(stats "$work/r.wall")
read -r s_med s_min s_max < <(stats "$work/s.wall")
r_rss_max=$(sort -n "$work/r.rss" | tail -n 1)
s_rss_max=$(sort -n "$work/s.rss" | tail -n 1)
ratio=$(awk -v a="$r_med" -v b="$s_med" 'BEGIN { printf "%.2f", a / b }')
ratio_ok=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.0) ? "yes" : "NO" }')
rss_ok=$(awk -v k="$r_rss_max" 'BEGIN { print (k < 100 * 1024) ? "yes" : "NO" }')
mb_s() { awk -v b="$image_bytes" -v t="$1" 'BEGIN { printf "%.0f", b / 1e6 / t }'; }
cpu_med() { if grep -q -- - "$1"; then echo n/a; else stats "$1" | awk '{ print $1 " s" }'; fi; }
echo
echo "== bench/pull.sh: $image ($image_layers layers, $image_bytes bytes) from the Bearer registry $bearer into an OCI layout"
echo "   $runs runs each, alternating, fresh empty directory each; $(nproc) cores, same box; peak RSS by $tool_line"
printf '%-34s median %7.3f s  min %7.3f s  max %7.3f s  (%s MB/s at the median)\n' \
    "regkeep image pull (CLI+server):" "$r_med" "$r_min" "$r_max" "$(mb_s "$r_med")"
printf '%-34s median %7.3f s  min %7.3f s  max %7.3f s  (%s MB/s at the median)\n' \
    "skopeo copy docker:// oci:" "$s_med" "$s_min" "$s_max" "$(mb_s "$s_med")"
echo "ratio regkeep / skopeo (medians): $ratio   goal <= 1.0: $ratio_ok"
echo "CLI peak RSS (max of runs): $(mib "$r_rss_max") MiB   goal < 100 MiB: $rss_ok   (skopeo: $(mib "$s_rss_max") MiB)"
echo "CPU per pull (median user+sys): CLI $(cpu_med "$work/r.cpu") + server $(stats "$work/srv.cpu" | awk '{ print $1 }') s; skopeo $(cpu_med "$work/s.cpu")"
echo "server RSS: $(mib "$server_rss_before") MiB before the runs (VmHWM $(mib "$server_hwm_before") MiB), peak (VmHWM) after them $(mib "$server_hwm") MiB, RSS after $(mib "$server_rss_after") MiB"
echo "correctness: $correct"
echo "anonymous registry $anon (no auth), once:"
echo "  not registered: $anon_unregistered"
echo "  registered with registry_verify=false (placeholder credentials, never asked for): regkeep $(field anon-regkeep 1) s" \
    "(CLI peak RSS $(mib "$(field anon-regkeep 2)") MiB, layout checked OK); skopeo --src-no-creds $(field anon-skopeo 1) s"
