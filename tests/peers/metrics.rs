//! `/metrics` read by Prometheus's own parser (the `prometheus_client` Python package's
//! OpenMetrics parser, in the peers' venv): every family parses, and the counts of a short
//! scripted run are there.

use crate::common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{var, Backend, TestApp};
use reqwest::StatusCode;

const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = [[s.name, s.labels, s.value] for s in family.samples]
print(json.dumps(families))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_parses_the_metrics() {
    crate::skip_without_peers!();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    assert_eq!(app.get("/v1/registries").await.0, StatusCode::OK);
    let url = format!(
        "http://{}/metrics",
        app.metrics_addr.expect("metrics are served")
    );
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let mut python = Command::new(var("REGKEEP_TEST_PYTHON"))
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for family in [
        "regkeep_http_request_duration_seconds",
        "regkeep_aws_calls",
        "regkeep_ecr_renewals",
        "regkeep_credential_handouts",
        "regkeep_auth_failures",
        "regkeep_tag_polls",
        "regkeep_database_errors",
        "regkeep_ecr_token_seconds_left",
    ] {
        assert!(families.get(family).is_some(), "{family} in {families}");
    }
    let listed = families["regkeep_http_request_duration_seconds"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| {
            s[0] == "regkeep_http_request_duration_seconds_count"
                && s[1]["route"] == "/v1/registries"
                && s[1]["status"] == "200"
                && s[2] == 1.0
        });
    assert!(
        listed,
        "{}",
        families["regkeep_http_request_duration_seconds"]
    );
    app.finish().await;
}
