#!/usr/bin/env bash
# Inside the test namespace (bench/ecr.sh runs it): warm credential resolution through the API,
# `POST /v1/registries/{ecr}/check?login=false` (resolve the ECR token, no registry contact),
# with wrk on loopback, beside the in-process figures of examples/ecr_lifecycle.rs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
admin_pass=$(openssl rand -hex 16)
AWS_ENDPOINT_URL_ECR=$REGKEEP_TEST_ECR_FIXTURE_URL AWS_EC2_METADATA_DISABLED=true \
    REGKEEP_DATA_DIR=$work/data REGKEEP_LISTEN=127.0.0.1:18600 REGKEEP_OUTBOUND__ALLOW_LOOPBACK=true REGKEEP_LOG_LEVEL=warn \
    REGKEEP_DEFAULT_ADMIN_PASSWORD=$admin_pass target/release/regkeep serve 2>"$work/log" &
pid=$!
until curl -sf http://127.0.0.1:18600/health >/dev/null; do sleep 0.01; done
printf 'user = "admin:%s"\n' "$admin_pass" > "$work/curl.cfg"
ecr=$REGKEEP_TEST_REGISTRY_ECR
curl -sf -K "$work/curl.cfg" -H 'content-type: application/json' -o /dev/null \
    -d "{\"registry\":\"$ecr\",\"registry_user\":\"AKIABENCH\",\"registry_pass\":\"bench-secret\"}" \
    "http://127.0.0.1:18600/v1/registries?validate=false"
path="/v1/registries/$ecr/check?login=false"
curl -sf -K "$work/curl.cfg" -X POST "http://127.0.0.1:18600$path" >/dev/null
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_AUTH")
LUA
BENCH_AUTH=$(printf 'admin:%s' "$admin_pass" | base64 -w0) wrk -t2 -c32 -d10s --latency -s "$work/post.lua" \
    "http://127.0.0.1:18600$path" > "$work/wrk"
calls=$(curl -sf "$REGKEEP_TEST_ECR_FIXTURE_URL/_calls")
echo "== warm ECR credential resolution through the API (wrk -t2 -c32 -d10s, POST .../check?login=false)"
echo "$(awk '/Requests\/sec/ {print $2}' "$work/wrk") req/s; latency p50 $(awk '$1 == "50%" {print $2}' "$work/wrk"), p99 $(awk '$1 == "99%" {print $2}' "$work/wrk"); non-2xx: $(awk '/Non-2xx/ {n = $NF} END {print n + 0}' "$work/wrk")"
echo "fixture GetAuthorizationToken calls during the whole run: $calls"
