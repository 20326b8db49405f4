#!/usr/bin/env bash
# Benchmark of cross-replica invalidation (issue 13): two `regkeep serve` replicas on one
# PostgreSQL (the peers', inside the test namespace), caches set to ten minutes so only a
# notification can explain a fresh answer. 100 trials: rename a registry through replica A, then
# ask replica B until it shows the new name; the time from A's answer to B's fresh one.
#
# Usage: bench/replicas.sh [TRIALS]   (default 100). Needs root (the namespace).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ${1:-} != --inner ]]; then
    cargo build -q --release --bin regkeep
    exec scripts/test-shell.sh bash bench/replicas.sh --inner "${1:-100}"
fi
trials=$2
work=$(mktemp -d)
pids=()
db=regkeep_bench_$RANDOM$RANDOM
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    psql -q "$REGKEEP_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
psql -q "$REGKEEP_TEST_POSTGRES_URL" -c "CREATE DATABASE $db" >/dev/null
url=${REGKEEP_TEST_POSTGRES_URL%/*}/$db
start() { # port data_dir
    REGKEEP_DATABASE_URL=$url REGKEEP_SECRET_KEY_FILE=$work/secret.key REGKEEP_DATA_DIR=$2 \
        REGKEEP_LISTEN=127.0.0.1:$1 REGKEEP_LOG_LEVEL=warn REGKEEP_DEFAULT_ADMIN_PASSWORD=bench-admin-pass \
        REGKEEP_AUTH_CACHE_SECONDS=600 REGKEEP_REGISTRY_CACHE_SECONDS=600 \
        target/release/regkeep serve 2>>"$work/log" &
    pids+=($!)
    until curl -sf "http://127.0.0.1:$1/health" >/dev/null; do sleep 0.01; done
}
start 18640 "$work/a"
start 18641 "$work/b"
a=http://127.0.0.1:18640; b=http://127.0.0.1:18641
body() { printf '{"registry":"reg.example.com","registry_user":"u","registry_pass":"p","registry_type":"docker_v2","registry_name":"%s"}' "$1"; }
curl -sf -u admin:bench-admin-pass -H 'content-type: application/json' -o /dev/null -d "$(body n0)" "$a/v1/registries?validate=false"
: > "$work/ms"
for i in $(seq "$trials"); do
    # B has the current record cached.
    curl -sf -u admin:bench-admin-pass "$b/v1/registries/reg.example.com" -o /dev/null
    curl -sf -u admin:bench-admin-pass -X PUT -H 'content-type: application/json' -o /dev/null \
        -d "$(body "n$i")" "$a/v1/registries/reg.example.com?validate=false"
    t0=$EPOCHREALTIME
    until curl -sf -u admin:bench-admin-pass "$b/v1/registries/reg.example.com" | grep -q "\"registry_name\":\"n$i\""; do
        if awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN {exit !(a - b > 10)}'; then echo "trial $i: B never saw the change" >&2; exit 1; fi
    done
    t1=$EPOCHREALTIME
    awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.3f\n", (a - b) * 1000}' >> "$work/ms"
done
sort -n "$work/ms" | awk -v n="$trials" '{v[NR] = $1} END {
    printf "== bench/replicas.sh: %d trials, registry renamed on A, seen on B (caches 600 s; includes one curl to B, ~1-2 ms)\n", n
    printf "median %.1f ms, p90 %.1f ms, max %.1f ms\n", v[int((NR + 1) / 2)], v[int(NR * 0.9)], v[NR] }'
