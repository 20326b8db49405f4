//! `GET /v1/content/<host>/<repository>/manifests/<tag-or-digest>` and
//! `GET /v1/content/<host>/<repository>/blobs/<digest>`: a read-only pull-through of the images
//! the account can reach, with the credential that serves each (docs/design.md §3.5). The path after
//! `/v1/content/` is the image name followed by the distribution API's own suffix, so a client
//! speaks to it as it would to a registry. Manifests come back byte for byte with their media
//! type and `Docker-Content-Digest`; blobs stream through without being buffered.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use regkeep_domain::ImageReference;

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::AppState;

/// What a content path asks for.
enum Wanted {
    Manifest(ImageReference),
    Blob(ImageReference, String),
}

fn parse(path: &str) -> Result<Wanted, ApiError> {
    let bad = |why: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("content path `{path}` {why}: use /v1/content/<host>/<repository>/manifests/<tag-or-digest> or /v1/content/<host>/<repository>/blobs/sha256:<hex>"),
        )
    };
    let image = |name: &str, reference: Option<&str>| -> Result<ImageReference, ApiError> {
        let text = match reference {
            Some(r) if r.contains(':') => format!("{name}@{r}"),
            Some(r) => format!("{name}:{r}"),
            None => name.to_owned(),
        };
        text.parse()
            .map_err(|e: regkeep_domain::ImageReferenceError| bad(&e.to_string()))
    };
    // The last `/blobs/` or `/manifests/` with one segment after it decides (a repository may
    // itself have a segment called `manifests` or `blobs`).
    if let Some((name, digest)) = path
        .rsplit_once("/blobs/")
        .filter(|(_, d)| !d.is_empty() && !d.contains('/'))
    {
        return Ok(Wanted::Blob(image(name, None)?, digest.to_owned()));
    }
    if let Some((name, reference)) = path
        .rsplit_once("/manifests/")
        .filter(|(_, r)| !r.is_empty() && !r.contains('/'))
    {
        return Ok(Wanted::Manifest(image(name, Some(reference))?));
    }
    Err(bad(
        "names neither manifests/<tag-or-digest> nor blobs/<digest> at its end",
    ))
}

#[utoipa::path(
    get,
    path = "/v1/content/{path}",
    tag = "content",
    operation_id = "get_content",
    summary = "A manifest or a blob, pulled through with the credential that serves the image",
    params(("path" = String, Path, description = "`<host>/<repository>/manifests/<tag-or-digest>` or `<host>/<repository>/blobs/sha256:<hex>` (slashes are kept)")),
    responses(
        (status = 200, description = "The manifest (byte for byte, with its media type and Docker-Content-Digest) or the blob", content(
            ("application/octet-stream"),
            ("application/vnd.oci.image.manifest.v1+json"),
            ("application/vnd.oci.image.index.v1+json"),
            ("application/vnd.docker.distribution.manifest.v2+json"),
            ("application/vnd.docker.distribution.manifest.list.v2+json"),
            ("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            ("application/json")
        )),
        (status = 404, description = "No registry of the account serves the image, or the registry has no such manifest or blob", body = regkeep_domain::wire::ErrorBody),
        (status = 422, description = "The registry refused, could not be reached, or sent what regkeep does not accept", body = regkeep_domain::wire::ErrorBody)
    )
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    match parse(&path)? {
        Wanted::Manifest(image) => {
            let manifest = state
                .engine
                .images()
                .fetch_manifest(&auth.account, &image)
                .await?;
            let mut response = manifest.bytes.into_response();
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&manifest.media_type) {
                headers.insert(header::CONTENT_TYPE, v);
            }
            if let Ok(v) = HeaderValue::from_str(manifest.digest.as_str()) {
                headers.insert("docker-content-digest", v);
            }
            Ok(response)
        }
        Wanted::Blob(image, digest) => {
            let download = state
                .engine
                .images()
                .open_blob(&auth.account, &image, &digest)
                .await?;
            let size = download.size;
            let stream = futures_util::stream::unfold(Some(download), |state| async move {
                let mut download = state?;
                match download.chunk().await {
                    Ok(Some(chunk)) => Some((Ok(chunk), Some(download))),
                    Ok(None) => None,
                    // The client sees the transfer end early and its digest check fails.
                    Err(e) => Some((Err(e), None)),
                }
            });
            let mut response = Body::from_stream(stream).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Some(size) = size {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            }
            if let Ok(v) = HeaderValue::from_str(&digest) {
                headers.insert("docker-content-digest", v);
            }
            Ok(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        match parse("127.0.0.1:5000/a/b/manifests/v1").ok().unwrap() {
            Wanted::Manifest(i) => {
                assert_eq!(i.to_string(), "127.0.0.1:5000/a/b:v1");
            }
            Wanted::Blob(..) => panic!("a manifest"),
        }
        let digest = format!("sha256:{}", "a".repeat(64));
        match parse(&format!("docker.io/library/alpine/manifests/{digest}"))
            .ok()
            .unwrap()
        {
            Wanted::Manifest(i) => assert_eq!(i.digest(), Some(digest.as_str())),
            Wanted::Blob(..) => panic!("a manifest"),
        }
        match parse(&format!("r.example.com/x/blobs/{digest}"))
            .ok()
            .unwrap()
        {
            Wanted::Blob(i, d) => {
                assert_eq!(i.repository(), "x");
                assert_eq!(d, digest);
            }
            Wanted::Manifest(..) => panic!("a blob"),
        }
        match parse(&format!("r.example.com/a/manifests/b/blobs/{digest}"))
            .ok()
            .unwrap()
        {
            Wanted::Blob(i, _) => assert_eq!(i.repository(), "a/manifests/b"),
            Wanted::Manifest(..) => panic!("a blob"),
        }
        for bad in [
            "r.example.com/x",
            "r.example.com/x/manifests/",
            "r.example.com/x/blobs/a/b",
            "/manifests/v1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
