#!/usr/bin/env bash
# Benchmark of the ECR token lifecycle (issue 3): 48 simulated hours at 100 resolutions/s for 3
# registries sharing one identity and account, 12-hour tokens, against the ECR-API fixture (inside
# the test namespace, peers up); then warm in-process resolution latency. See examples/ecr_lifecycle.rs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q --release --example ecr_lifecycle
exec scripts/test-shell.sh target/release/examples/ecr_lifecycle
