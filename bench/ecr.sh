#!/usr/bin/env bash
# Benchmark of the ECR token lifecycle (issue 3), inside the test namespace with the peers up:
# 1. examples/ecr_lifecycle.rs: 48 simulated hours at 100 resolutions/s for 3 registries sharing
#    one identity and account, 12-hour tokens, against the ECR-API fixture (AWS calls, failures),
#    then warm in-process resolution latency;
# 2. bench/ecr-api-inner.sh: warm resolution through the API with wrk.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q --release --example ecr_lifecycle --bin regkeep
exec scripts/test-shell.sh bash -c 'target/release/examples/ecr_lifecycle && bench/ecr-api-inner.sh'
