//! Tier 3: the real-peer suite. regkeep against the programs it meets in production — the CNCF
//! registry (plain, TLS, Bearer, anonymous, under an ECR name), moto for AWS, PostgreSQL,
//! anchore-cli 0.9.3, skopeo, umoci — and the adversarial lab (stand-ins for the metadata service,
//! internal hosts, a malicious registry and a rebinding DNS server). `scripts/test.sh` starts them
//! in a private network namespace and requires them; under plain `cargo test` every test here is
//! skipped with a one-line notice. One binary with a module per area, so the suite links once.
//! Run it with nextest (one process per test, as `scripts/test.sh` does): some tests set the
//! process's environment (AWS variables) and would race other tests in one `cargo test` process.

#[macro_use]
mod common;

mod api;
mod bridges;
mod cli;
mod contract;
mod deploy;
mod ecr;
mod ecr_aws;
mod ecr_endpoints;
mod images;
mod inbound;
mod metrics;
mod outbound;
mod pull;
mod replicas;
mod store;
mod watch;
