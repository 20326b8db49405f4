//! Resolving images with stored-style credentials against the real registries the peers seed
//! (`test/hello:v1`, pushed with skopeo): Basic, Bearer token, TLS with a private CA, anonymous,
//! and the ECR registry under its real name. Digests must equal what skopeo pushed.

mod common;

use common::peers;
use regkeep_domain::Secret;
use regkeep_registry::manifests::Platform;
use regkeep_registry::{
    BasicCredentials, Endpoint, RegistryClient, RegistryError, Timeouts, TlsSettings,
};

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
