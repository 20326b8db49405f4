#!/usr/bin/env bash
# Benchmark of API-key authentication and the credential handout (issue 12): authenticated
# GET /v1/registries/{r} with an API key (Bearer) against the same with a password (Basic), each
# with the login cache on (default) and off (REGKEEP_AUTH_CACHE_SECONDS=0: a key is looked up and
# its keyed hash compared on every request; a password costs an Argon2id verification), and
# POST /v1/credentials/resolve (the handout) with a key.
#
# Usage: bench/apikey.sh [DURATION_SECONDS]   (default 10). Needs wrk and curl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration=${1:-10}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cargo build -q --release --bin regkeep
bin=target/release/regkeep
port=18410
base=http://127.0.0.1:$port
admin_pass=$(openssl rand -hex 16)

start() {
    REGKEEP_DATA_DIR=$work/data REGKEEP_LISTEN=127.0.0.1:$port REGKEEP_OUTBOUND__ALLOW_LOOPBACK=true \
        REGKEEP_LOG_LEVEL=warn REGKEEP_DEFAULT_ADMIN_PASSWORD=$admin_pass \
        REGKEEP_HANDOUT__STATIC_PASSWORDS=true "$@" "$bin" serve 2>>"$work/regkeep.log" &
    pids+=($!)
    regkeep_pid=$!
    until curl -sf "$base/health" >/dev/null; do sleep 0.01; done
}
stop() { kill "$regkeep_pid"; wait "$regkeep_pid" 2>/dev/null || true; }

start env
curl_cfg=$work/curl.cfg
printf 'user = "admin:%s"\n' "$admin_pass" > "$curl_cfg"
seq 1 100 | xargs -P 4 -I{} curl -sf -K "$curl_cfg" -o /dev/null -H 'content-type: application/json' \
    -d '{"registry":"reg-{}.example.com:5000","registry_user":"u","registry_pass":"bench-pass-{}"}' \
    "$base/v1/registries?validate=false"
key=$(curl -sf -K "$curl_cfg" -H 'content-type: application/json' \
    -d '{"scopes":["read","credentials:read"],"description":"bench"}' "$base/v1/apikeys" \
    | sed -n 's/.*"key":"\(rk_[^"]*\)".*/\1/p')
[[ $key == rk_* ]] || { echo "no API key made" >&2; exit 1; }

cat > "$work/get.lua" <<'LUA'
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
request = function()
  return wrk.format("GET", "/v1/registries/reg-" .. math.random(1, 100) .. ".example.com%3A5000")
end
LUA
cat > "$work/handout.lua" <<'LUA'
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format("POST", "/v1/credentials/resolve", nil,
    '{"image":"reg-' .. math.random(1, 100) .. '.example.com:5000/team/app:1"}')
end
LUA
bearer="Bearer $key"
basic="Basic $(printf 'admin:%s' "$admin_pass" | base64 -w0)"
run() { # name auth script
    BENCH_AUTH=$2 wrk -t1 -c4 -d2s -s "$work/$3" "$base/" >/dev/null
    BENCH_AUTH=$2 wrk -t2 -c32 -d"${duration}s" --latency -s "$work/$3" "$base/" > "$work/$1.wrk"
}
run key-cached "$bearer" get.lua
run password-cached "$basic" get.lua
run handout "$bearer" handout.lua
stop
start env REGKEEP_AUTH_CACHE_SECONDS=0
run key-uncached "$bearer" get.lua
run password-uncached "$basic" get.lua
stop

rps() { awk '/Requests\/sec/ {print $2}' "$work/$1.wrk"; }
p99() { awk '$1 == "99%" {print $2}' "$work/$1.wrk"; }
errors() { awk '/Non-2xx/ {n = $NF} END {print n + 0}' "$work/$1.wrk"; }
echo "== bench/apikey.sh (wrk -t2 -c32 -d${duration}s, $(nproc) cores, same box)"
total() { awk '/requests in/ {print $1}' "$work/$1.wrk"; }
for case in key-cached password-cached key-uncached password-uncached handout; do
    ok=$(awk -v t="$(total $case)" -v e="$(errors $case)" -v d="$duration" 'BEGIN {printf "%.0f", (t - e) / d}')
    printf '%-18s %10s req/s  answered 2xx %8s/s  p99 %-8s non-2xx %s\n' "$case" "$(rps $case)" "$ok" "$(p99 $case)" "$(errors $case)"
done
echo "(password-uncached: every request is an Argon2id verification; what the pool cannot take is answered 503 busy)"
echo "(GET /v1/registries/{random of 100}; handout: POST /v1/credentials/resolve by image, a stored password)"
