//! An in-process Docker Registry v2 stand-in for the hermetic tier: one image (`app:1.0`, a
//! schema 2 manifest and its config), behind HTTP Basic or behind Bearer tokens from its own token
//! endpoint. It counts what it was asked. The real registry (CNCF distribution) plays the same
//! parts in the peer suite; this one needs no process, no root and no network namespace.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Response, StatusCode, Uri};
use axum::Router;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// How the registry asks for credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `WWW-Authenticate: Basic`, the user and password on every request.
    Basic,
    /// `WWW-Authenticate: Bearer realm=…/token`: the user and password buy a token there.
    Bearer,
}

pub const USER: &str = "hermetic-user";
pub const PASS: &str = "hermetic-registry-pass";
const TOKEN: &str = "hermetic-bearer-token";

pub struct FakeRegistry {
    /// `127.0.0.1:PORT`, the `registry` string to register.
    pub authority: String,
    state: Arc<Shared>,
    _server: tokio::task::JoinHandle<()>,
}

struct Shared {
    auth: Auth,
    realm: String,
    manifest: Vec<u8>,
    manifest_digest: String,
    config: Vec<u8>,
    config_digest: String,
    token_requests: AtomicU64,
    refused: AtomicU64,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

impl FakeRegistry {
    pub async fn start(auth: Auth) -> FakeRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-11-01T00:00:00Z",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "a".repeat(64))]},
        }))
        .unwrap();
        let config_digest = sha256(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": config.len(),
                "digest": config_digest,
            },
            "layers": [{
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 1234,
                "digest": format!("sha256:{}", "b".repeat(64)),
            }],
        }))
        .unwrap();
        let state = Arc::new(Shared {
            auth,
            realm: format!("http://{addr}/token"),
            manifest_digest: sha256(&manifest),
            manifest,
            config,
            config_digest,
            token_requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let app = Router::new().fallback(serve).with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeRegistry {
            authority: addr.to_string(),
            state,
            _server: server,
        }
    }

    /// The digest of `app:1.0`.
    pub fn manifest_digest(&self) -> &str {
        &self.state.manifest_digest
    }

    /// The image id regkeep shows for `app:1.0` (its config digest without `sha256:`).
    pub fn image_id(&self) -> &str {
        self.state.config_digest.trim_start_matches("sha256:")
    }

    /// Tokens asked for at the realm.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Requests refused for wrong or missing credentials.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }
}

fn basic_ok(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    );
    headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes())
}

fn bearer_ok(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes())
}

fn answer(status: StatusCode, headers: &[(&str, &str)], body: Vec<u8>) -> Response<Body> {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response.body(Body::from(body)).unwrap()
}

async fn serve(
    State(state): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let path = uri.path();
    if path == "/token" {
        state.token_requests.fetch_add(1, Ordering::SeqCst);
        if state.auth == Auth::Bearer && basic_ok(&headers) {
            let body = serde_json::to_vec(&serde_json::json!({"token": TOKEN, "expires_in": 300}));
            return answer(
                StatusCode::OK,
                &[("content-type", "application/json")],
                body.unwrap(),
            );
        }
        state.refused.fetch_add(1, Ordering::SeqCst);
        return answer(
            StatusCode::UNAUTHORIZED,
            &[],
            b"{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}".to_vec(),
        );
    }
    let authorized = match state.auth {
        Auth::Basic => basic_ok(&headers),
        Auth::Bearer => bearer_ok(&headers),
    };
    if !authorized {
        state.refused.fetch_add(1, Ordering::SeqCst);
        let challenge = match state.auth {
            Auth::Basic => "Basic realm=\"fake-registry\"".to_owned(),
            Auth::Bearer => format!(
                "Bearer realm=\"{}\",service=\"fake-registry\",scope=\"repository:app:pull\"",
                state.realm
            ),
        };
        return answer(
            StatusCode::UNAUTHORIZED,
            &[
                ("www-authenticate", &challenge),
                ("content-type", "application/json"),
            ],
            b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}"
                .to_vec(),
        );
    }
    let body_unless_head = |bytes: &[u8]| {
        if method == Method::HEAD {
            Vec::new()
        } else {
            bytes.to_vec()
        }
    };
    let manifest_paths = [
        "/v2/app/manifests/1.0".to_owned(),
        format!("/v2/app/manifests/{}", state.manifest_digest),
    ];
    if path == "/v2/" {
        answer(
            StatusCode::OK,
            &[("docker-distribution-api-version", "registry/2.0")],
            b"{}".to_vec(),
        )
    } else if manifest_paths.iter().any(|p| p == path) {
        let length = state.manifest.len().to_string();
        answer(
            StatusCode::OK,
            &[
                (
                    "content-type",
                    "application/vnd.docker.distribution.manifest.v2+json",
                ),
                ("docker-content-digest", &state.manifest_digest),
                ("content-length", &length),
            ],
            body_unless_head(&state.manifest),
        )
    } else if path == format!("/v2/app/blobs/{}", state.config_digest) {
        answer(
            StatusCode::OK,
            &[
                ("content-type", "application/octet-stream"),
                ("docker-content-digest", &state.config_digest),
            ],
            body_unless_head(&state.config),
        )
    } else {
        answer(
            StatusCode::NOT_FOUND,
            &[("content-type", "application/json")],
            b"{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}"
                .to_vec(),
        )
    }
}
