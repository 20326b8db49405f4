#!/usr/bin/env bash
# Benchmark of the registries API (issue 2): authenticated GET /v1/registries/{r} with 1,000
# registries stored, measured with wrk on loopback, beside an axum hello-world measured the same
# way in the same run; idle RSS after start; time from start to ready.
#
# Usage: bench/api.sh [DURATION_SECONDS]   (default 10). Needs wrk and curl (scripts/install-deps.sh).
# Both servers and wrk share this machine's cores, as they would on one box.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration=${1:-10}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cargo build -q --release --bin regkeep
cargo build -q --release -p regkeep-server --example hello
bin=target/release/regkeep
hello=target/release/examples/hello

regkeep_port=18400
hello_port=18401
admin_pass=$(openssl rand -hex 16)
auth=$(printf 'admin:%s' "$admin_pass" | base64 -w0)

# --- start to ready ---
start_ns=$(date +%s%N)
REGKEEP_DATA_DIR=$work/data REGKEEP_LISTEN=127.0.0.1:$regkeep_port REGKEEP_OUTBOUND__ALLOW_LOOPBACK=true REGKEEP_LOG_LEVEL=warn \
    REGKEEP_DEFAULT_ADMIN_PASSWORD=$admin_pass "$bin" serve 2>"$work/regkeep.log" &
pids+=($!)
regkeep_pid=$!
until curl -sf "http://127.0.0.1:$regkeep_port/health" >/dev/null; do
    if (( $(date +%s%N) - start_ns > 30000000000 )); then echo "regkeep did not start" >&2; cat "$work/regkeep.log" >&2; exit 1; fi
    sleep 0.005
done
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
# Second start on the same (now existing) data directory: no key or admin to create.
kill "$regkeep_pid"; wait "$regkeep_pid" 2>/dev/null || true
start_ns=$(date +%s%N)
REGKEEP_DATA_DIR=$work/data REGKEEP_LISTEN=127.0.0.1:$regkeep_port REGKEEP_OUTBOUND__ALLOW_LOOPBACK=true REGKEEP_LOG_LEVEL=warn \
    "$bin" serve 2>>"$work/regkeep.log" &
pids+=($!)
regkeep_pid=$!
until curl -sf "http://127.0.0.1:$regkeep_port/health" >/dev/null; do sleep 0.005; done
ready_again_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
sleep 1
idle_rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$regkeep_pid/status")

# --- 1,000 registries (validate=false: nothing to contact) ---
curl_cfg=$work/curl.cfg
printf 'user = "admin:%s"\n' "$admin_pass" > "$curl_cfg"
seq 1 1000 | xargs -P 4 -I{} curl -sf -K "$curl_cfg" -o /dev/null -H 'content-type: application/json' \
    -d '{"registry":"reg-{}.example.com:5000","registry_user":"u","registry_pass":"bench-pass-{}"}' \
    "http://127.0.0.1:$regkeep_port/v1/registries?validate=false"
count=$(curl -sf -K "$curl_cfg" "http://127.0.0.1:$regkeep_port/v1/registries" | grep -o '"registry":' | wc -l)
[[ $count == 1000 ]] || { echo "expected 1000 registries, got $count" >&2; exit 1; }

# Each request names one of the 1,000 registries at random. The Authorization header reaches wrk
# through its Lua script, not its arguments.
cat > "$work/auth.lua" <<'LUA'
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_AUTH")
request = function()
  return wrk.format("GET", "/v1/registries/reg-" .. math.random(1, 1000) .. ".example.com%3A5000")
end
LUA

"$hello" "127.0.0.1:$hello_port" &
pids+=($!)
until curl -sf "http://127.0.0.1:$hello_port/" >/dev/null; do sleep 0.01; done

run_wrk() { wrk -t2 -c32 -d"${duration}s" --latency "$@"; }
# Warm-up (fills the verified-credentials cache and the connection pools).
BENCH_AUTH=$auth wrk -t1 -c4 -d2s -s "$work/auth.lua" "http://127.0.0.1:$regkeep_port/" >/dev/null
BENCH_AUTH=$auth run_wrk -s "$work/auth.lua" "http://127.0.0.1:$regkeep_port/" > "$work/regkeep.wrk"
run_wrk "http://127.0.0.1:$hello_port/" > "$work/hello.wrk"
loaded_rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$regkeep_pid/status")

# The same load with the registry read cache off: every request reads the database.
kill "$regkeep_pid"; wait "$regkeep_pid" 2>/dev/null || true
REGKEEP_DATA_DIR=$work/data REGKEEP_LISTEN=127.0.0.1:$regkeep_port REGKEEP_OUTBOUND__ALLOW_LOOPBACK=true REGKEEP_LOG_LEVEL=warn \
    REGKEEP_REGISTRY_CACHE_SECONDS=0 "$bin" serve 2>>"$work/regkeep.log" &
pids+=($!)
regkeep_pid=$!
until curl -sf "http://127.0.0.1:$regkeep_port/health" >/dev/null; do sleep 0.01; done
BENCH_AUTH=$auth wrk -t1 -c4 -d2s -s "$work/auth.lua" "http://127.0.0.1:$regkeep_port/" >/dev/null
BENCH_AUTH=$auth run_wrk -s "$work/auth.lua" "http://127.0.0.1:$regkeep_port/" > "$work/regkeep-nocache.wrk"

rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
errors() { awk '/Non-2xx/ {n = $NF} END {print n + 0}' "$1"; }
r_rps=$(rps "$work/regkeep.wrk"); h_rps=$(rps "$work/hello.wrk")
echo "== bench/api.sh (wrk -t2 -c32 -d${duration}s, $(nproc) cores, same box)"
echo "regkeep GET /v1/registries/{random of 1000}:  ${r_rps} req/s, p99 $(p99 "$work/regkeep.wrk"), non-2xx responses: $(errors "$work/regkeep.wrk")"
echo "  same, registry cache off (every request reads SQLite): $(rps "$work/regkeep-nocache.wrk") req/s, p99 $(p99 "$work/regkeep-nocache.wrk")"
echo "axum hello-world:                            ${h_rps} req/s, p99 $(p99 "$work/hello.wrk")"
echo "ratio regkeep / hello-world: $(awk -v a="$r_rps" -v b="$h_rps" 'BEGIN {printf "%.2f", a / b}')"
echo "start to ready: first start ${ready_ms} ms (creates key, database, admin), restart ${ready_again_ms} ms"
echo "idle RSS after start: $((idle_rss_kib / 1024)) MiB ($idle_rss_kib KiB); after the load: $((loaded_rss_kib / 1024)) MiB"
