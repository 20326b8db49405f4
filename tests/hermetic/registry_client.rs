//! What no real registry does on demand, played by a small in-test HTTP registry (docs/design.md: a
//! fixture only where no real program can play the part):
//! - retries: 429 with `Retry-After` is waited out, 502/503/504 are retried with backoff (on
//!   manifests and blobs alike), a `Retry-After` beyond regkeep's cap is not waited for, retries
//!   end after three, other errors are not retried;
//! - refusals: a Docker schema 1 manifest, a manifest whose bytes do not match its digest, a
//!   config blob whose bytes do not match its digest.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regkeep_domain::oci::Platform;
use regkeep_registry::{Endpoint, Outbound, RegistryClient, RegistryError, Timeouts, TlsSettings};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// What the fixture answers the n-th request for a manifest (or for the config blob): a status
/// and a `Retry-After`; past the end of the script it serves the content.
type Script = Vec<(u16, Option<&'static str>)>;

/// How the fixture misbehaves.
#[derive(Default)]
struct Behaviour {
    manifests: Script,
    blobs: Script,
    /// Serve this manifest (content type, bytes) instead of the good one, under the good digest.
    manifest: Option<(&'static str, Vec<u8>)>,
    /// Serve these bytes as the config blob, under the config's digest.
    config: Option<Vec<u8>>,
}

struct Fixture {
    authority: String,
    /// Arrival times of the manifest requests, and of the blob requests.
    manifest_requests: Arc<Mutex<Vec<Instant>>>,
    blob_requests: Arc<Mutex<Vec<Instant>>>,
    manifest_digest: String,
}

fn scripted(script: &Script, seen: &Mutex<Vec<Instant>>) -> Option<(u16, String, Vec<u8>)> {
    let n = {
        let mut seen = seen.lock().unwrap();
        seen.push(Instant::now());
        seen.len() - 1
    };
    script.get(n).map(|(status, retry_after)| {
        (
            *status,
            retry_after
                .map(|r| format!("Retry-After: {r}\r\n"))
                .unwrap_or_default(),
            br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#.to_vec(),
        )
    })
}

async fn fixture(behaviour: Behaviour) -> Fixture {
    let config =
        br#"{"architecture":"amd64","os":"linux","created":"2020-01-01T00:00:00Z"}"#.to_vec();
    let config_digest = digest(&config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[]}}"#,
        config.len()
    )
    .into_bytes();
    let manifest_digest = digest(&manifest);
    let (served_type, served_manifest) = behaviour.manifest.clone().unwrap_or((
        "application/vnd.oci.image.manifest.v1+json",
        manifest.clone(),
    ));
    let served_config = behaviour.config.clone().unwrap_or(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let manifest_requests = Arc::new(Mutex::new(Vec::new()));
    let blob_requests = Arc::new(Mutex::new(Vec::new()));
    let (seen_manifests, seen_blobs) = (manifest_requests.clone(), blob_requests.clone());
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
                scripted(&behaviour.manifests, &seen_manifests).unwrap_or_else(|| {
                    (
                        200,
                        format!("Content-Type: {served_type}\r\nDocker-Content-Digest: {md}\r\n"),
                        served_manifest.clone(),
                    )
                })
            } else if path.ends_with(&config_digest) {
                scripted(&behaviour.blobs, &seen_blobs)
                    .unwrap_or_else(|| (200, String::new(), served_config.clone()))
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
        blob_requests,
        manifest_digest,
    }
}

async fn resolve(f: &Fixture) -> Result<String, RegistryError> {
    let client = RegistryClient::new(
        Timeouts::default(),
        TlsSettings::new(None, None).unwrap(),
        Outbound::allowing_loopback(),
    );
    let endpoint = Endpoint {
        authority: f.authority.clone(),
        verify_tls: false,
    };
    client
        .resolve_image(&endpoint, None, "r", "v1", &Platform::default_linux())
        .await
        .map(|i| i.digest.to_string())
}

#[tokio::test]
async fn retry_after_is_honoured_and_5xx_retried() {
    let f = fixture(Behaviour {
        manifests: vec![(429, Some("1")), (503, None), (502, None)],
        blobs: vec![(504, None), (429, Some("0"))],
        ..Behaviour::default()
    })
    .await;
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
    assert_eq!(
        f.blob_requests.lock().unwrap().len(),
        3,
        "the config blob retried too"
    );
}

#[tokio::test]
async fn retries_end_after_three_and_name_the_answer() {
    let f = fixture(Behaviour {
        manifests: vec![(503, None); 6],
        ..Behaviour::default()
    })
    .await;
    let err = resolve(&f).await.expect_err("the registry keeps failing");
    assert_eq!(f.manifest_requests.lock().unwrap().len(), 4);
    assert!(err.to_string().contains("503"), "{err}");

    // A Retry-After beyond the cap is answered at once with the registry's error.
    let f = fixture(Behaviour {
        manifests: vec![(429, Some("3600"))],
        ..Behaviour::default()
    })
    .await;
    let err = resolve(&f).await.expect_err("not waited for");
    assert_eq!(f.manifest_requests.lock().unwrap().len(), 1);
    assert!(err.to_string().contains("429"), "{err}");
    assert!(err.to_string().contains("slow down"), "{err}");
    assert!(err.to_string().contains("asked to wait 3600"), "{err}");

    // Other errors are not retried.
    let f = fixture(Behaviour {
        manifests: vec![(500, None), (500, None)],
        ..Behaviour::default()
    })
    .await;
    assert!(resolve(&f).await.is_err());
    assert_eq!(f.manifest_requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn schema_1_and_tampered_content_are_refused() {
    // Docker schema 1 (signed), as old registries still hold.
    let schema1 = br#"{"schemaVersion":1,"name":"r","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}"#.to_vec();
    let f = fixture(Behaviour {
        manifest: Some((
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1.clone(),
        )),
        ..Behaviour::default()
    })
    .await;
    // Asked for by its own digest, so the digest check passes and the schema is what refuses it.
    let client = RegistryClient::new(
        Timeouts::default(),
        TlsSettings::new(None, None).unwrap(),
        Outbound::allowing_loopback(),
    );
    let endpoint = Endpoint {
        authority: f.authority.clone(),
        verify_tls: false,
    };
    let err = client
        .resolve_image(
            &endpoint,
            None,
            "r",
            &digest(&schema1),
            &Platform::default_linux(),
        )
        .await
        .expect_err("schema 1 is refused");
    assert!(
        err.to_string().contains("schema 1 is not supported"),
        "{err}"
    );

    // A manifest whose bytes are not what its digest says.
    let tampered = b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"layers\":[]}".to_vec();
    let f = fixture(Behaviour {
        manifest: Some(("application/vnd.oci.image.manifest.v1+json", tampered)),
        ..Behaviour::default()
    })
    .await;
    let err = resolve(&f)
        .await
        .expect_err("a tampered manifest is refused");
    assert!(err.to_string().contains("refusing it"), "{err}");
    assert!(err.to_string().contains(&f.manifest_digest), "{err}");

    // A config blob whose bytes are not what its digest says.
    let f = fixture(Behaviour {
        config: Some(br#"{"architecture":"evil","os":"linux"}"#.to_vec()),
        ..Behaviour::default()
    })
    .await;
    let err = resolve(&f).await.expect_err("a tampered blob is refused");
    assert!(err.to_string().contains("the blob's digest is"), "{err}");
}
