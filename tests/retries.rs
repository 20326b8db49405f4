//! Retries of a registry that asks for them: 429 with `Retry-After` is waited out, 502/503/504
//! are retried with backoff, a `Retry-After` beyond regkeep's cap is not waited for, and retries
//! end after three. No real registry answers 429/503 on demand, so this is the one place a small
//! in-test HTTP fixture plays the registry (DESIGN: a fixture where no real program can).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regkeep_domain::oci::Platform;
use regkeep_registry::{Endpoint, RegistryClient, RegistryError, Timeouts, TlsSettings};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// What the fixture answers the n-th manifest request (0-based): a status and extra headers;
/// past the end of the script it serves the manifest.
type Script = Vec<(u16, Option<&'static str>)>;

struct Fixture {
    authority: String,
    /// Arrival time of each manifest request.
    manifest_requests: Arc<Mutex<Vec<Instant>>>,
    manifest_digest: String,
}

async fn fixture(script: Script) -> Fixture {
    let config =
        br#"{"architecture":"amd64","os":"linux","created":"2020-01-01T00:00:00Z"}"#.to_vec();
    let config_digest = digest(&config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[]}}"#,
        config.len()
    )
    .into_bytes();
    let manifest_digest = digest(&manifest);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let manifest_requests = Arc::new(Mutex::new(Vec::new()));
    let seen = manifest_requests.clone();
    let md = manifest_digest.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
                // A TLS ClientHello: this is a plain-HTTP registry, close as one would.
                if request.first() == Some(&0x16) {
                    break;
                }
            }
            if request.first() == Some(&0x16) {
                continue;
            }
            let text = String::from_utf8_lossy(&request);
            let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, headers, body): (u16, String, Vec<u8>) = if path == "/v2/" {
                (200, String::new(), b"{}".to_vec())
            } else if path.contains("/manifests/") {
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(Instant::now());
                    seen.len() - 1
                };
                match script.get(n) {
                    Some((status, retry_after)) => (
                        *status,
                        retry_after.map(|r| format!("Retry-After: {r}\r\n")).unwrap_or_default(),
                        br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#.to_vec(),
                    ),
                    None => (
                        200,
                        format!("Content-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {md}\r\n"),
                        manifest.clone(),
                    ),
                }
            } else if path.ends_with(&config_digest) {
                (200, String::new(), config.clone())
            } else {
                (404, String::new(), Vec::new())
            };
            let head = format!(
                "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&body).await;
            let _ = socket.shutdown().await;
        }
    });
    Fixture {
        authority,
        manifest_requests,
        manifest_digest,
    }
}

async fn resolve(f: &Fixture) -> Result<String, RegistryError> {
    let client = RegistryClient::new(Timeouts::default(), TlsSettings::new(None, None).unwrap());
    let endpoint = Endpoint {
        authority: f.authority.clone(),
        verify_tls: false,
    };
    client
        .resolve_image(&endpoint, None, "r", "v1", &Platform::default_linux())
        .await
        .map(|i| i.digest)
}

#[tokio::test]
async fn retry_after_is_honoured_and_5xx_retried() {
    let f = fixture(vec![(429, Some("1")), (503, None), (502, None)]).await;
    let digest = resolve(&f)
        .await
        .expect("resolves after the registry's retries");
    assert_eq!(digest, f.manifest_digest);
    let times = f.manifest_requests.lock().unwrap().clone();
    assert_eq!(times.len(), 4, "three retries, then the manifest");
    // The second request came no sooner than the Retry-After asked.
    assert!(
        times[1] - times[0] >= Duration::from_millis(950),
        "{:?}",
        times[1] - times[0]
    );
}

#[tokio::test]
async fn retries_end_after_three_and_name_the_answer() {
    let f = fixture(vec![(503, None); 6]).await;
    let err = resolve(&f).await.expect_err("the registry keeps failing");
    assert_eq!(f.manifest_requests.lock().unwrap().len(), 4);
    assert!(err.to_string().contains("503"), "{err}");

    // A Retry-After beyond the cap is answered at once with the registry's error.
    let f = fixture(vec![(429, Some("3600"))]).await;
    let err = resolve(&f).await.expect_err("not waited for");
    assert_eq!(f.manifest_requests.lock().unwrap().len(), 1);
    assert!(err.to_string().contains("429"), "{err}");
    assert!(err.to_string().contains("slow down"), "{err}");

    // Other errors are not retried.
    let f = fixture(vec![(500, None), (500, None)]).await;
    assert!(resolve(&f).await.is_err());
    assert_eq!(f.manifest_requests.lock().unwrap().len(), 1);
}
