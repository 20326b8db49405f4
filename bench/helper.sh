#!/usr/bin/env bash
# Benchmark of the credential helper (issue 12): `docker-credential-regkeep get` against Amazon's
# `docker-credential-ecr-login get` for the same ECR host, on the same AWS stand-in (the ECR-API
# fixture, which counts GetAuthorizationToken calls), inside the test namespace: warm (regkeep
# holding a live token; ECH with its ~/.ecr cache filled) and cold (regkeep with no token yet: a
# fresh server; ECH with an empty cache). ECH ignores AWS_ENDPOINT_URL*, so the namespace's
# private /etc/hosts sends api.ecr.us-east-1.amazonaws.com to a TLS front (bench/tls_front.py,
# a certificate of the peers' CA) before the fixture; regkeep reaches the fixture directly.
#
# Usage: bench/helper.sh [WARM_RUNS] [COLD_RUNS]   (default 100, 10). Needs root (the namespace);
# installs Debian's amazon-ecr-credential-helper when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ${1:-} != --inner ]]; then
    command -v docker-credential-ecr-login >/dev/null || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends amazon-ecr-credential-helper >/dev/null
    }
    cargo build -q --release --bin regkeep && cargo build -q --release -p regkeep-credential-helper
    exec scripts/test-shell.sh bash bench/helper.sh --inner "${1:-100}" "${2:-10}"
fi
warm_runs=$2
cold_runs=$3
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
peers=target/peers
ecr=$REGKEEP_TEST_REGISTRY_ECR
fixture=$REGKEEP_TEST_ECR_FIXTURE_URL
api_host=api.ecr.us-east-1.amazonaws.com
calls() { curl -sf "$fixture/_calls" | sed 's/.*: *\([0-9]*\).*/\1/'; }
curl -sf -X POST "$fixture/_reset" >/dev/null

# --- the TLS front under AWS's endpoint name ---
openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$api_host" -keyout "$work/front-key.pem" \
    -out "$work/front.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s\n' "$api_host" > "$work/ext"
openssl x509 -req -in "$work/front.csr" -CA "$peers/ca.pem" -CAkey "$peers/ca-key.pem" -CAcreateserial \
    -days 1 -extfile "$work/ext" -out "$work/front.pem" 2>/dev/null
echo "127.0.0.1 $api_host" >> /etc/hosts
fixture_port=${fixture##*:}
python3 bench/tls_front.py 127.0.0.1 443 "$work/front.pem" "$work/front-key.pem" 127.0.0.1 "${fixture_port%%/*}" &
pids+=($!)
until curl -sf --cacert "$peers/ca.pem" "https://$api_host/_calls" >/dev/null; do sleep 0.05; done

# --- regkeep, and a key with credentials:read ---
port=18620
start_regkeep() {
    rm -rf "$work/data"
    AWS_ENDPOINT_URL_ECR=$fixture AWS_EC2_METADATA_DISABLED=true REGKEEP_DATA_DIR=$work/data \
        REGKEEP_LISTEN=127.0.0.1:$port REGKEEP_LOG_LEVEL=warn REGKEEP_DEFAULT_ADMIN_PASSWORD=bench-admin-pass \
        target/release/regkeep serve 2>>"$work/regkeep.log" &
    regkeep_pid=$!
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.01; done
    curl -sf -u admin:bench-admin-pass -H 'content-type: application/json' -o /dev/null \
        -d "{\"registry\":\"$ecr\",\"registry_user\":\"AKIABENCHHELPER\",\"registry_pass\":\"bench-secret\",\"registry_type\":\"awsecr\"}" \
        "http://127.0.0.1:$port/v1/registries?validate=false"
    curl -sf -u admin:bench-admin-pass -H 'content-type: application/json' \
        -d '{"scopes":["credentials:read"]}' "http://127.0.0.1:$port/v1/apikeys" \
        | sed -n 's/.*"key":"\(rk_[^"]*\)".*/\1/p' > "$work/key"
}
stop_regkeep() { kill "$regkeep_pid"; wait "$regkeep_pid" 2>/dev/null || true; }

# One timed call: nanoseconds on stdout, the answer checked. Timed with bash's EPOCHREALTIME (no
# process of its own inside the timed span, unlike `date`).
elapsed_ns() { awk -v a="$2" -v b="$1" 'BEGIN {printf "%d\n", (a - b) * 1e9}'; }
regkeep_get() {
    local t0 t1 out
    t0=$EPOCHREALTIME
    out=$(echo "$ecr" | REGKEEP_URL=http://127.0.0.1:$port REGKEEP_API_KEY_FILE=$work/key \
        target/release/docker-credential-regkeep get)
    t1=$EPOCHREALTIME
    [[ $out == *'"Username":"AWS"'* ]] || { echo "regkeep get failed: $out" >&2; exit 1; }
    elapsed_ns "$t0" "$t1"
}
ech_get() {
    local t0 t1 out
    t0=$EPOCHREALTIME
    out=$(echo "$ecr" | HOME=$work/ech AWS_ACCESS_KEY_ID=AKIABENCHHELPER AWS_SECRET_ACCESS_KEY=bench-secret \
        AWS_REGION=us-east-1 AWS_CA_BUNDLE=$peers/ca.pem AWS_EC2_METADATA_DISABLED=true \
        docker-credential-ecr-login get)
    t1=$EPOCHREALTIME
    [[ $out == *'"Username":"AWS"'* ]] || { echo "ECH get failed: $out" >&2; exit 1; }
    elapsed_ns "$t0" "$t1"
}
median_ms() { sort -n | awk '{a[NR] = $1} END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f", m / 1e6}'; }

# --- cold: regkeep with no token yet (a fresh server each time); ECH with an empty cache ---
: > "$work/regkeep-cold"; : > "$work/ech-cold"
before=$(calls)
for _ in $(seq "$cold_runs"); do
    start_regkeep
    regkeep_get >> "$work/regkeep-cold"
    stop_regkeep
done
regkeep_cold_calls=$(( $(calls) - before ))
before=$(calls)
for _ in $(seq "$cold_runs"); do
    rm -rf "$work/ech"; mkdir -p "$work/ech"
    ech_get >> "$work/ech-cold"
done
ech_cold_calls=$(( $(calls) - before ))

# --- warm: 100 gets each, after one that fills regkeep's token / ECH's cache ---
start_regkeep
regkeep_get >/dev/null
before=$(calls)
for _ in $(seq "$warm_runs"); do regkeep_get; done > "$work/regkeep-warm"
regkeep_warm_calls=$(( $(calls) - before ))
rm -rf "$work/ech"; mkdir -p "$work/ech"
ech_get >/dev/null
before=$(calls)
for _ in $(seq "$warm_runs"); do ech_get; done > "$work/ech-warm"
ech_warm_calls=$(( $(calls) - before ))
stop_regkeep

# What the timing itself costs (the subshell, the pipe, starting a process that does nothing).
for _ in $(seq "$warm_runs"); do
    t0=$EPOCHREALTIME; out=$(echo "$ecr" | /bin/true); t1=$EPOCHREALTIME; elapsed_ns "$t0" "$t1"
done > "$work/baseline"
rw=$(median_ms < "$work/regkeep-warm"); ew=$(median_ms < "$work/ech-warm")
rc=$(median_ms < "$work/regkeep-cold"); ec=$(median_ms < "$work/ech-cold")
echo "== bench/helper.sh ($(nproc) cores; ECH $(docker-credential-ecr-login version 2>/dev/null | head -1))"
echo "warm get, median of $warm_runs: regkeep ${rw} ms, ECH ${ew} ms, ratio $(awk -v a="$rw" -v b="$ew" 'BEGIN {printf "%.2f", a / b}'); AWS calls: regkeep $regkeep_warm_calls, ECH $ech_warm_calls"
echo "cold get, median of $cold_runs: regkeep ${rc} ms, ECH ${ec} ms, ratio $(awk -v a="$rc" -v b="$ec" 'BEGIN {printf "%.2f", a / b}'); AWS calls: regkeep $regkeep_cold_calls, ECH $ech_cold_calls"
echo "the same spawn of /bin/true (timing overhead, included above): $(median_ms < "$work/baseline") ms"
echo "binary sizes: docker-credential-regkeep $(( $(stat -c %s target/release/docker-credential-regkeep) / 1024 / 1024 )) MiB, docker-credential-ecr-login $(( $(stat -c %s "$(command -v docker-credential-ecr-login)") / 1024 / 1024 )) MiB"
