//! Resolving images with stored-style credentials against the real registries the peers seed
//! (`test/hello:v1`, pushed with skopeo): Basic, Bearer token, TLS with a private CA, anonymous,
//! and the ECR registry under its real name. Digests must equal what skopeo pushed.

mod common;

use common::{enc, peers, registry_body, Backend, TestApp};
use regkeep_domain::Secret;
use regkeep_registry::manifests::Platform;
use regkeep_registry::{
    BasicCredentials, Endpoint, RegistryClient, RegistryError, Timeouts, TlsSettings,
};
use reqwest::StatusCode;
use serde_json::json;

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh"))
}

fn client(with_ca: bool) -> RegistryClient {
    let ca = with_ca.then(|| std::path::PathBuf::from(var("REGKEEP_TEST_CA")));
    RegistryClient::new(
        Timeouts::default(),
        TlsSettings::new(ca.as_deref(), None).unwrap(),
    )
}

fn creds(user: &str, pass: &str) -> BasicCredentials {
    BasicCredentials {
        username: user.into(),
        password: Secret::new(pass),
    }
}

#[tokio::test]
async fn resolves_the_seeded_image_in_every_registry() {
    let p = peers();
    let digest = var("REGKEEP_TEST_IMAGE_DIGEST");
    let user = creds(&p.user, &p.pass);
    let ecr = var("REGKEEP_TEST_REGISTRY_ECR");
    let aws = creds("AWS", "123456789012-auth-token");
    let cases: [(&str, &str, bool, Option<&BasicCredentials>); 5] = [
        ("basic over HTTP", &p.http, false, Some(&user)),
        ("bearer token", &p.bearer, false, Some(&user)),
        ("TLS with a private CA", &p.tls, true, Some(&user)),
        ("anonymous", &p.anon, false, None),
        ("ECR under its real name", &ecr, true, Some(&aws)),
    ];
    for (what, authority, verify, credentials) in cases {
        let endpoint = Endpoint {
            authority: authority.to_owned(),
            verify_tls: verify,
        };
        let image = client(verify)
            .resolve_image(
                &endpoint,
                credentials,
                "test/hello",
                "v1",
                &Platform::default_linux(),
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(image.digest, digest, "{what}: the digest skopeo pushed");
        assert_eq!(image.manifest_digest, digest, "{what}: single-platform");
        assert_eq!(image.platform, Platform::default_linux(), "{what}");
        assert!(image.config_digest.starts_with("sha256:"), "{what}");
        assert_eq!(image.layers.len(), 1, "{what}");
        assert!(image.total_size > 0, "{what}");
        // By digest too.
        let again = client(verify)
            .resolve_image(
                &endpoint,
                credentials,
                "test/hello",
                &digest,
                &Platform::default_linux(),
            )
            .await
            .unwrap_or_else(|e| panic!("{what} by digest: {e}"));
        assert_eq!(again.digest, digest);
    }
}

#[tokio::test]
async fn unknown_tags_and_wrong_credentials_are_clear_errors() {
    let p = peers();
    let endpoint = Endpoint {
        authority: p.http.clone(),
        verify_tls: false,
    };
    let user = creds(&p.user, &p.pass);
    let err = client(false)
        .resolve_image(
            &endpoint,
            Some(&user),
            "test/hello",
            "no-such-tag",
            &Platform::default_linux(),
        )
        .await
        .expect_err("unknown tag");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("test/hello:no-such-tag"), "{err}");
    let wrong = creds(&p.user, "wrong-password");
    let err = client(false)
        .resolve_image(
            &endpoint,
            Some(&wrong),
            "test/hello",
            "v1",
            &Platform::default_linux(),
        )
        .await
        .expect_err("wrong password");
    assert_eq!(err.status(), Some(401), "{err}");
    let bearer = Endpoint {
        authority: p.bearer.clone(),
        verify_tls: false,
    };
    let err = client(false)
        .resolve_image(
            &bearer,
            Some(&wrong),
            "test/hello",
            "v1",
            &Platform::default_linux(),
        )
        .await
        .expect_err("wrong password at the token server");
    assert!(err.to_string().contains("token server"), "{err}");
    // An unknown CA with verification on: a TLS error, not a silent downgrade.
    let tls = Endpoint {
        authority: p.tls.clone(),
        verify_tls: true,
    };
    let err = client(false)
        .resolve_image(
            &tls,
            Some(&user),
            "test/hello",
            "v1",
            &Platform::default_linux(),
        )
        .await
        .expect_err("unknown CA");
    assert_eq!(err.kind(), "tls", "{err}");
}

on_both_backends!(
    image_records_through_the_api,
    repository_credentials_beat_host_credentials
);

fn insecure(registry: &str, user: &str, pass: &str) -> serde_json::Value {
    let mut body = registry_body(registry, user, pass);
    body["registry_verify"] = json!(false);
    body
}

async fn image_records_through_the_api(backend: Backend) {
    let p = peers();
    let digest = var("REGKEEP_TEST_IMAGE_DIGEST");
    let app = TestApp::spawn(backend).await;
    // No credential matches: anonymous with TLS verification on, so the private CA fails.
    let (status, body) = app
        .post(
            "/v1/images",
            json!({"tag": format!("{}/test/hello:v1", p.tls)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"]["reason"], "tls", "{body}");

    let (status, _) = app
        .post("/v1/registries", insecure(&p.http, &p.user, &p.pass))
        .await;
    assert_eq!(status, StatusCode::OK);
    let tag = format!("{}/test/hello:v1", p.http);
    let (status, body) = app.post("/v1/images", json!({"tag": tag})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = &body[0];
    assert_eq!(record["imageDigest"], digest);
    assert_eq!(record["resolution_status"], "resolved");
    assert_eq!(record["platform"], "linux/amd64");
    assert_eq!(record["layer_count"], 1);
    assert!(record["image_size"].as_i64().unwrap() > 0);
    let detail = &record["image_detail"][0];
    assert_eq!(detail["fulltag"], tag);
    assert_eq!(
        detail["fulldigest"],
        format!("{}/test/hello@{digest}", p.http)
    );
    assert_eq!(detail["repo"], "test/hello");
    // Pinned by digest: the same record.
    let (status, body) = app
        .post("/v1/images", json!({"tag": tag, "digest": digest}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["created_at"], record["created_at"]);

    let (_, list) = app.get("/v1/images").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, got) = app.get(&format!("/v1/images/{}", enc(&digest))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got[0]["imageDigest"], digest);

    // Errors: unknown tag, malformed reference, bad platform.
    let (status, body) = app
        .post(
            "/v1/images",
            json!({"tag": format!("{}/test/hello:nope", p.http)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"]["reason"], "not_found");
    let (status, body) = app.post("/v1/images", json!({"tag": "https://x/y"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .post("/v1/images", json!({"tag": tag, "platform": "linux"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    assert_eq!(
        app.delete(&format!("/v1/images/{}", enc(&digest))).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/v1/images/{}", enc(&digest))).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/v1/images/{}", enc(&digest))).await.0,
        StatusCode::NOT_FOUND
    );
    app.finish().await;
}

async fn repository_credentials_beat_host_credentials(backend: Backend) {
    let p = peers();
    let app = TestApp::spawn(backend).await;
    let tag = format!("{}/test/hello:v1", p.http);
    // The host entry has a wrong password; the repository entry the right one.
    let (s, _) = app
        .post(
            "/v1/registries?validate=false",
            insecure(&p.http, &p.user, "wrong-host-pass"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .post(
            "/v1/registries?validate=false",
            insecure(&format!("{}/test/hello", p.http), &p.user, &p.pass),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (status, body) = app.post("/v1/images", json!({"tag": tag})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the repository entry served it: {body}"
    );
    // Another repository of the host gets the host entry (wrong password): refused.
    let (status, body) = app
        .post(
            "/v1/images",
            json!({"tag": format!("{}/test/other:v1", p.http)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"]["reason"], "refused", "{body}");
    common::assert_no_secrets(
        "logs",
        &common::captured_logs(),
        &[&p.pass, "wrong-host-pass"],
    );
    app.finish().await;
}
