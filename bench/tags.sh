#!/usr/bin/env bash
# Benchmark (issue 4): resolve 500 tags with a stored credential, regkeep vs `skopeo inspect --raw`,
# same registry (the Bearer-token CNCF registry of the test peers: no bcrypt on the hot path, tokens
# from fixtures/token_server.py), same run, inside the test namespace:
#   1. bench/seed-images.sh pushes bench/tags:t000..t499 (distinct images);
#   2. examples/resolve_tags.rs: regkeep served in-process; per tag, the manifest through the
#      pull-through (GET /v1/content/.../manifests/TAG: what skopeo inspect --raw does), and
#      POST /v1/images (also the config, and the record stored) — warm sequential per-tag
#      latency, then all 500 at a concurrency of 32;
#   3. skopeo inspect --raw for each tag, sequentially (credentials from the peers' auth file);
#   4. the ratios: per tag (goal >= 5x) and all 500 concurrent vs skopeo sequential (goal >= 20x).
# Usage: bench/tags.sh   (needs root; builds the release example first, on the host)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q --release --example resolve_tags
exec scripts/test-shell.sh bash -c '
set -euo pipefail
bash bench/seed-images.sh >/dev/null
out=$(target/release/examples/resolve_tags)
printf "%s\n" "$out" | grep -v "^REGKEEP_"
per_tag=$(printf "%s\n" "$out" | sed -n "s/^REGKEEP_PER_TAG_MS=//p")
all=$(printf "%s\n" "$out" | sed -n "s/^REGKEEP_ALL_SECONDS=//p")
rec_per_tag=$(printf "%s\n" "$out" | sed -n "s/^REGKEEP_RECORD_PER_TAG_MS=//p")
rec_all=$(printf "%s\n" "$out" | sed -n "s/^REGKEEP_RECORD_ALL_SECONDS=//p")
start=$(date +%s.%N)
for i in $(seq -f "%03g" 0 499); do
    skopeo inspect --raw --tls-verify=false --authfile "$REGKEEP_TEST_PEERS_DIR/auth.json" \
        "docker://$REGKEEP_TEST_REGISTRY_BEARER/bench/tags:t$i" >/dev/null
done
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v p="$per_tag" -v a="$all" -v rp="$rec_per_tag" -v ra="$rec_all" "BEGIN {
    total = e - s; each = total * 1000 / 500;
    printf \"== skopeo inspect --raw, 500 tags sequentially: total %.3f s, %.2f ms/tag\n\", total, each;
    printf \"== ratios, resolve (same work as skopeo inspect --raw): per tag %.1fx (goal >= 5x); all 500 regkeep concurrent vs skopeo sequential %.1fx (goal >= 20x)\n\", each / p, total / a;
    printf \"== ratios, resolve and record (POST /v1/images, more work than skopeo): per tag %.1fx; all 500 %.1fx\n\", each / rp, total / ra;
}"
'
