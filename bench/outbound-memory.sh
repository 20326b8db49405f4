#!/usr/bin/env bash
# Memory bound of image resolution (issue 8): 50 concurrent `POST /v1/images`, each an image whose
# config is a distinct 8 MiB blob (the lab's malicious registry, big.evil.test, inside the test
# namespace), against `regkeep serve` (release) with the default outbound settings (configs capped
# at 8 MiB, 16 resolutions at once). Reports the server's peak RSS (VmHWM) and the answers.
# Goal: peak < 300 MiB. Before the bound (configs read into one growing buffer up to 16 MiB, no
# limit on concurrent resolutions) the same load took a server from 273 MB to 1.2 GB.
#
# Usage: bench/outbound-memory.sh [CONCURRENT]   (default 50)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ${REGKEEP_BENCH_INNER:-} != 1 ]]; then
    cargo build -q --release --bin regkeep
    exec scripts/test-shell.sh env REGKEEP_BENCH_INNER=1 bash bench/outbound-memory.sh "$@"
fi

n=${1:-50}
[[ ${REGKEEP_TEST_LAB:-} == 1 ]] || { echo "outbound-memory: the lab is not up (run me from the host, not in the namespace)" >&2; exit 1; }
work=$(mktemp -d)
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
admin_pass=$(openssl rand -hex 16)
REGKEEP_DATA_DIR=$work/data REGKEEP_LISTEN=127.0.0.1:18610 REGKEEP_LOG_LEVEL=warn \
    REGKEEP_TLS__CA_BUNDLE=$REGKEEP_TEST_CA \
    REGKEEP_DEFAULT_ADMIN_PASSWORD=$admin_pass target/release/regkeep serve 2>"$work/log" &
pid=$!
t0=$SECONDS
until curl -sf http://127.0.0.1:18610/health >/dev/null; do
    ((SECONDS - t0 < 30)) || { cat "$work/log" >&2; echo "regkeep not ready" >&2; exit 1; }
    sleep 0.05
done
printf 'user = "admin:%s"\n' "$admin_pass" >"$work/curl.cfg"
rss() { awk -v k="$1" '$1 == k":" {print int($2 / 1024)}' "/proc/$pid/status"; }
echo "== $n concurrent image adds, each with a distinct 8 MiB config (big.evil.test/big/N:latest)"
echo "server RSS before: $(rss VmRSS) MiB"
start=$(date +%s.%N)
for i in $(seq 1 "$n"); do
    curl -s -K "$work/curl.cfg" -H 'content-type: application/json' -o "$work/answer.$i" -w '%{http_code}\n' \
        -d "{\"tag\":\"big.evil.test/big/$i:latest\"}" http://127.0.0.1:18610/v1/images >"$work/code.$i" &
done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
end=$(date +%s.%N)
ok=$(cat "$work"/code.* | grep -c '^200$' || true)
echo "answers: $ok of $n were 200 ($(cat "$work"/code.* | sort | uniq -c | tr '\n' ' '))"
[[ $ok == "$n" ]] || { echo "a non-200 answer:" >&2; grep -L '^200$' "$work"/code.* | head -1 | sed 's/code/answer/' | xargs cat >&2; }
awk -v a="$start" -v b="$end" 'BEGIN {printf "wall time: %.2f s\n", b - a}'
peak=$(rss VmHWM)
echo "server peak RSS (VmHWM): $peak MiB (goal < 300); RSS after: $(rss VmRSS) MiB"
((peak < 300)) || { echo "outbound-memory: peak RSS over 300 MiB" >&2; exit 1; }
