//! Resolving images with stored-style credentials against the real registries the peers seed
//! (`test/hello:v1`, pushed with skopeo): Basic, Bearer token, TLS with a private CA, anonymous,
//! and the ECR registry under its real name. Digests must equal what skopeo pushed.

use crate::common;

use common::{enc, peers, registry_body, Backend, TestApp};
use regkeep_domain::oci::Platform;
use regkeep_domain::Secret;
use regkeep_registry::{
    BasicCredentials, Endpoint, Outbound, RegistryClient, RegistryError, Timeouts, TlsSettings,
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
        Outbound::allowing_loopback(),
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
    crate::skip_without_peers!();
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
        assert_eq!(
            image.digest.as_str(),
            digest,
            "{what}: the digest skopeo pushed"
        );
        assert_eq!(
            image.manifest_digest.as_str(),
            digest,
            "{what}: single-platform"
        );
        assert_eq!(image.platform, Platform::default_linux(), "{what}");
        assert!(image.config_digest.is_sha256(), "{what}");
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
        assert_eq!(again.digest.as_str(), digest);
    }
}

#[tokio::test]
async fn unknown_tags_and_wrong_credentials_are_clear_errors() {
    crate::skip_without_peers!();
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
    repository_credentials_beat_host_credentials,
    one_digest_under_many_tags
);

fn fulltags(record: &serde_json::Value) -> Vec<String> {
    let mut tags: Vec<String> = record["image_detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["fulltag"].as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    tags
}

/// Anchore keeps every tag a digest was added under as its own `image_detail` entry, with the
/// image ID (the config digest's hex); by_id reads and deletes; a digest the tag no longer
/// points at is accepted and the answer names the one it points at now.
async fn one_digest_under_many_tags(backend: Backend) {
    let p = peers();
    let digest = var("REGKEEP_TEST_IMAGE_DIGEST");
    let app = TestApp::spawn(backend).await;
    for registry in [&p.http, &p.bearer] {
        let (status, body) = app
            .post("/v1/registries", insecure(registry, &p.user, &p.pass))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let alias = format!("alias-{}", common::random_hex(4));
    common::copy_tag(&p.http, "test/hello", "v1", &alias).await;
    let mut tags = vec![
        format!("{}/test/hello:v1", p.http),
        format!("{}/test/hello:{alias}", p.http),
        format!("{}/test/hello:v1", p.bearer),
    ];
    let mut first_created = None;
    for (i, tag) in tags.iter().enumerate() {
        let (status, body) = app.post("/v1/images", json!({"tag": tag})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body[0]["imageDigest"], digest.as_str(), "{body}");
        assert_eq!(fulltags(&body[0]).len(), i + 1, "every tag so far: {body}");
        assert!(fulltags(&body[0]).contains(tag), "{body}");
        assert!(body[0].get("tag_points_at").is_none(), "{body}");
        first_created.get_or_insert(body[0]["image_detail"][0]["created_at"].clone());
    }
    tags.sort();
    // Adding a tag again changes nothing but when it was last seen.
    let (_, body) = app.post("/v1/images", json!({"tag": &tags[0]})).await;
    assert_eq!(fulltags(&body[0]), tags, "{body}");

    let (status, list) = app.get("/v1/images").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "one record per digest: {list}"
    );
    let record = &list[0];
    assert_eq!(fulltags(record), tags);
    let image_id = record["config_digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    assert_eq!(image_id.len(), 64);
    for detail in record["image_detail"].as_array().unwrap() {
        assert_eq!(detail["imageId"], image_id.as_str(), "{detail}");
        assert_eq!(detail["imageDigest"], digest.as_str());
        assert_eq!(detail["userId"], "admin");
        assert!(detail["tag_detected_at"].is_string(), "{detail}");
    }
    // What Anchore's clients read, with honest values: regkeep records, it does not analyse.
    assert_eq!(record["analysis_status"], "not_analyzed");
    assert_eq!(record["image_status"], "active");
    assert_eq!(record["image_type"], "docker");
    assert!(record["analyzed_at"].is_null());
    assert_eq!(record["parentDigest"], digest.as_str());
    assert_eq!(record["annotations"], json!({}));

    // Found by any of its tags, by image ID (both as Anchore's fulltag filter and by_id), by digest.
    for wanted in [tags[1].as_str(), image_id.as_str(), digest.as_str()] {
        let (status, found) = app
            .get(&format!("/v1/images?fulltag={}&history=false", enc(wanted)))
            .await;
        assert_eq!(status, StatusCode::OK, "{wanted}: {found}");
        assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
        assert_eq!(found[0]["imageDigest"], digest.as_str());
    }
    let (status, found) = app.get(&format!("/v1/images/by_id/{image_id}")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found[0]["imageDigest"], digest.as_str());
    let (status, body) = app
        .get(&format!(
            "/v1/images?fulltag={}",
            enc(&format!("{}/test/hello:nope", p.http))
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .get(&format!("/v1/images/by_id/{}", "0".repeat(64)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app.get("/v1/images/by_id/not-an-id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("64 hex"),
        "{body}"
    );

    // Deleting the image removes every tag with it.
    let (status, body) = app.delete(&format!("/v1/images/{}", enc(&digest))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "deleting");
    let (_, list) = app.get("/v1/images").await;
    assert_eq!(list, json!([]));
    for tag in &tags {
        let (status, _) = app.get(&format!("/v1/images?fulltag={}", enc(tag))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{tag} went with its image");
    }
    // Added again: a new record with only that tag (nothing of the deleted one is left).
    let (_, body) = app.post("/v1/images", json!({"tag": &tags[0]})).await;
    assert_eq!(fulltags(&body[0]), vec![tags[0].clone()], "{body}");
    assert_ne!(body[0]["image_detail"][0]["created_at"], json!(null));

    // An older digest under its tag: accepted, and the answer names the digest the tag points
    // at now. Here the tag points at an index; its linux/amd64 manifest is the older digest.
    let multi = format!("{}/test/multi:v1", p.http);
    let (index, amd64) = (
        var("REGKEEP_TEST_MULTI_DIGEST"),
        var("REGKEEP_TEST_MULTI_AMD64_DIGEST"),
    );
    let (status, body) = app
        .post("/v1/images", json!({"tag": &multi, "digest": &amd64}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["imageDigest"], amd64.as_str());
    assert_eq!(body[0]["tag_points_at"], index.as_str(), "{body}");
    assert_eq!(fulltags(&body[0]), vec![multi.clone()]);
    // Pinned to the digest it points at: nothing to say.
    let (status, body) = app
        .post("/v1/images", json!({"tag": &multi, "digest": &index}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body[0].get("tag_points_at").is_none(), "{body}");
    // The tag was added at two digests: without history, the one it was added at last
    // (timestamps are in seconds: the second add is made a second later).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, body) = app.post("/v1/images", json!({"tag": &multi})).await;
    assert_eq!(body[0]["imageDigest"], index.as_str(), "{body}");
    let (_, latest) = app
        .get(&format!("/v1/images?fulltag={}&history=false", enc(&multi)))
        .await;
    assert_eq!(latest.as_array().unwrap().len(), 1, "{latest}");
    assert_eq!(latest[0]["imageDigest"], index.as_str(), "{latest}");
    let (_, all) = app
        .get(&format!("/v1/images?fulltag={}&history=true", enc(&multi)))
        .await;
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    // Both records have the linux/amd64 image's config: one image ID; by_id deletes both.
    let multi_id = latest[0]["image_detail"][0]["imageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, found) = app.get(&format!("/v1/images/by_id/{multi_id}")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found.as_array().unwrap().len(), 2, "{found}");
    let (status, body) = app.delete(&format!("/v1/images/by_id/{multi_id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "deleting");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(&index) && detail.contains(&amd64), "{body}");
    let (status, _) = app.get(&format!("/v1/images/by_id/{multi_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1/images").await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only the re-added hello: {list}"
    );
    app.finish().await;
}

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

    // Anchore's DeleteImageResponse (anchore-cli takes only `status: deleting` as success).
    let (status, body) = app.delete(&format!("/v1/images/{}", enc(&digest))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"digest": digest, "status": "deleting", "detail": null})
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

/// A two-platform image in both formats (an OCI index, and a Docker schema 2 manifest list),
/// pushed through the registry's own API: resolved to the asked platform.
#[tokio::test]
async fn indexes_and_manifest_lists_resolve_to_a_platform() {
    crate::skip_without_peers!();
    let p = peers();
    let base = format!("http://{}", p.http);
    let http = reqwest::Client::new();
    let auth = (p.user.as_str(), p.pass.as_str());
    let repo = format!("test/multi-{}", common::random_hex(4));
    let formats = [
        (
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
    ];
    for (index_type, manifest_type, config_type, layer_type) in formats {
        let mut entries = Vec::new();
        let mut manifests = std::collections::HashMap::new();
        for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
            let config = json!({"architecture": arch, "os": "linux", "variant": variant, "created": "2020-01-01T00:00:00Z",
                "rootfs": {"type": "layers", "diff_ids": []}});
            let (config_digest, config_size) = common::push_blob(
                &http,
                &base,
                &repo,
                auth,
                &serde_json::to_vec(&config).unwrap(),
            )
            .await;
            let (layer_digest, layer_size) = common::push_blob(
                &http,
                &base,
                &repo,
                auth,
                format!("layer for {arch} {index_type}").as_bytes(),
            )
            .await;
            let manifest = json!({"schemaVersion": 2, "mediaType": manifest_type,
                "config": {"mediaType": config_type, "digest": config_digest, "size": config_size},
                "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": layer_size}]});
            let (digest, size) = common::push_manifest(
                &http,
                &base,
                &repo,
                auth,
                &format!("{arch}-{}", index_type.len()),
                manifest_type,
                &manifest,
            )
            .await;
            manifests.insert(arch, digest.clone());
            let mut platform = json!({"os": "linux", "architecture": arch});
            if let Some(v) = variant {
                platform["variant"] = json!(v);
            }
            entries.push(json!({"mediaType": manifest_type, "digest": digest, "size": size, "platform": platform}));
        }
        let index = json!({"schemaVersion": 2, "mediaType": index_type, "manifests": entries});
        let tag = format!("multi-{}", index_type.len());
        let (index_digest, _) =
            common::push_manifest(&http, &base, &repo, auth, &tag, index_type, &index).await;

        let endpoint = Endpoint {
            authority: p.http.clone(),
            verify_tls: false,
        };
        let user = creds(&p.user, &p.pass);
        for (wanted, arch) in [
            ("linux/amd64", "amd64"),
            ("linux/arm64", "arm64"),
            ("linux/arm64/v8", "arm64"),
        ] {
            let image = client(false)
                .resolve_image(
                    &endpoint,
                    Some(&user),
                    &repo,
                    &tag,
                    &Platform::parse(wanted).unwrap(),
                )
                .await
                .unwrap_or_else(|e| panic!("{index_type} {wanted}: {e}"));
            assert_eq!(
                image.digest.as_str(),
                index_digest,
                "{index_type}: the tag's digest is the index's"
            );
            assert_eq!(image.media_type, index_type);
            assert_eq!(
                image.manifest_digest.as_str(),
                manifests[arch],
                "{index_type} {wanted}"
            );
            assert_eq!(image.platform.architecture, arch);
            assert_eq!(image.created.as_deref(), Some("2020-01-01T00:00:00Z"));
        }
        let err = client(false)
            .resolve_image(
                &endpoint,
                Some(&user),
                &repo,
                &tag,
                &Platform::parse("linux/s390x").unwrap(),
            )
            .await
            .expect_err("no such platform");
        assert!(
            err.to_string().contains("linux/amd64") && err.to_string().contains("linux/s390x"),
            "{err}"
        );
    }
}
