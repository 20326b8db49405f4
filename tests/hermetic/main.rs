//! Tier 2: hermetic integration tests. The real server on port 0 over SQLite, an in-process fake
//! registry (Basic and Bearer, with a token endpoint) and the scripted ECR minter: no root, no
//! network namespace, no Python, no peer process. They run under plain `cargo test`.

mod app;
#[path = "../support/capture.rs"]
mod capture;
mod fake_registry;

mod api;
mod api_keys;
mod cli_docs;
mod cli_exit;
mod metrics;
mod openapi;
mod registry_client;
