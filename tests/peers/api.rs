//! The HTTP API against real registries (the CNCF registry over HTTP, TLS with a private CA,
//! and Bearer token auth), on SQLite and PostgreSQL. Every test ends by checking that no test
//! secret reached the logs.

use crate::common;

use common::{assert_no_secrets, captured_logs, enc, peers, registry_body, Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    basic_auth_registry_validates_and_refuses,
    tls_registry_needs_its_ca,
    bearer_token_registry_validates_and_refuses,
    skip_validate_stores_without_contact,
    update_replaces_only_what_it_may,
    delete_answers_404_for_unknown,
    accounts_never_see_each_other,
    account_and_user_management,
    bad_input_is_refused_and_changes_nothing,
    restart_keeps_everything,
    secrets_are_sealed_in_the_database,
    awsecr_rules,
    users_manage_the_users_of_their_own_account,
    credentials_as_anchore_serves_them,
    events_as_anchore_serves_them,
    system_status_as_anchore_serves_it,
    framework_errors_are_json,
);

/// A registry body for a peer that speaks plain HTTP: `registry_verify: false` is what lets
/// regkeep fall back from HTTPS to HTTP (docs/design.md §3.6).
fn plain_http_body(registry: &str, user: &str, pass: &str) -> Value {
    let mut body = registry_body(registry, user, pass);
    body["registry_verify"] = json!(false);
    body
}

fn first(value: &Value) -> &Value {
    value
        .as_array()
        .and_then(|a| a.first())
        .expect("a JSON array with a record")
}

fn message(value: &Value) -> &str {
    value["message"].as_str().unwrap_or_default()
}

async fn basic_auth_registry_validates_and_refuses(backend: Backend) {
    let p = peers();
    let app = TestApp::spawn(backend).await;

    let (status, body) = app
        .post(
            "/v1/registries",
            plain_http_body(&p.http, &p.user, "wrong-password-123"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["httpcode"], 422);
    assert_eq!(body["detail"]["reason"], "refused");
    assert_eq!(body["detail"]["registry_status"], 401);
    assert!(
        message(&body).contains("UNAUTHORIZED"),
        "names what the registry answered: {body}"
    );
    assert_eq!(
        app.get("/v1/registries").await.1,
        json!([]),
        "nothing stored"
    );

    let (status, body) = app
        .post(
            "/v1/registries?validate=True",
            plain_http_body(&p.http, &p.user, &p.pass),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = first(&body);
    assert_eq!(record["registry"], p.http);
    assert_eq!(record["registry_name"], p.http);
    assert_eq!(record["registry_user"], p.user);
    assert_eq!(record["registry_type"], "docker_v2");
    assert_eq!(record["registry_verify"], false);
    assert_eq!(record["userId"], "admin");
    assert!(record["last_validated"].is_string());
    assert!(record.get("registry_pass").is_none());
    let created = record["created_at"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && created.len() == 20,
        "RFC 3339 UTC: {created}"
    );

    let (status, body) = app.get(&format!("/v1/registries/{}", enc(&p.http))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first(&body)["registry"], p.http);
    let (status, body) = app.get("/v1/registries").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1);

    let (status, body) = app
        .post("/v1/registries", plain_http_body(&p.http, &p.user, &p.pass))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("update"));

    // A check logs in with the stored credential now.
    let path = format!("/v1/registries/{}/check", enc(&p.http));
    let (status, body) = app.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true);
    let (status, _) = app
        .post("/v1/registries/unknown.example.com/check", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // POST on a registry path other than /check.
    let (status, _) = app
        .post(&format!("/v1/registries/{}", enc(&p.http)), json!({}))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    assert_no_secrets(
        "logs",
        &captured_logs(),
        &[&p.pass, "wrong-password-123", &app.admin_pass],
    );
    app.finish().await;
}

async fn tls_registry_needs_its_ca(backend: Backend) {
    let p = peers();
    // No CA configured: the private CA is not trusted.
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post("/v1/registries", registry_body(&p.tls, &p.user, &p.pass))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"]["reason"], "tls");
    // The hint names the real file to create, not the setting's name.
    let ca_file = app
        .data_dir
        .path()
        .join("certs.d")
        .join(&p.tls)
        .join("ca.crt");
    assert!(
        message(&body).contains(&format!(
            "its certificate goes in {} on the regkeep host",
            ca_file.display()
        )),
        "says where the CA goes: {body}"
    );
    assert!(!message(&body).contains("tls.certs_dir/"), "{body}");

    // A plain-HTTP registry registered with verification on: said as such, not as a CA problem.
    let (status, body) = app
        .post("/v1/registries", registry_body(&p.http, &p.user, &p.pass))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"]["reason"], "tls");
    assert!(
        message(&body).contains("plain HTTP") && message(&body).contains("--insecure"),
        "{body}"
    );
    assert!(!message(&body).contains("corrupt message"), "{body}");

    // registry_verify=false (--insecure): accepted without the CA.
    let mut insecure = registry_body(&p.tls, &p.user, &p.pass);
    insecure["registry_verify"] = json!(false);
    let (status, body) = app.post("/v1/registries", insecure).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(first(&body)["registry_verify"], false);

    // Wrong password over TLS: refused with the registry's answer.
    let mut wrong = registry_body(&format!("{}/other", p.tls), &p.user, "nope-nope-nope");
    wrong["registry_verify"] = json!(false);
    let (status, body) = app.post("/v1/registries", wrong).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"]["reason"], "refused");

    // The CA where the hint said makes verification pass.
    std::fs::create_dir_all(ca_file.parent().unwrap()).unwrap();
    std::fs::copy(&p.ca, &ca_file).unwrap();
    let (status, body) = app
        .post(
            "/v1/registries",
            registry_body(&format!("{}/team/*", p.tls), &p.user, &p.pass),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.finish().await;

    // A global CA bundle works too.
    let ca = p.ca.clone();
    let app = TestApp::spawn_with(backend, move |s| s.tls.ca_bundle = Some(ca)).await;
    let (status, body) = app
        .post("/v1/registries", registry_body(&p.tls, &p.user, &p.pass))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(first(&body)["registry_verify"], true);

    // A plain-HTTP registry with verification on fails clearly; with it off, falls back to HTTP.
    let (status, body) = app
        .post("/v1/registries", registry_body(&p.http, &p.user, &p.pass))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let mut plain = registry_body(&p.http, &p.user, &p.pass);
    plain["registry_verify"] = json!(false);
    let (status, body) = app.post("/v1/registries", plain).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_no_secrets(
        "logs",
        &captured_logs(),
        &[&p.pass, "nope-nope-nope", &app.admin_pass],
    );
    app.finish().await;
}

async fn bearer_token_registry_validates_and_refuses(backend: Backend) {
    let p = peers();
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post(
            "/v1/registries",
            plain_http_body(&p.bearer, &p.user, "bad-bearer-pass"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"]["reason"], "refused");
    assert!(message(&body).contains("token server"), "{body}");
    assert_eq!(app.get("/v1/registries").await.1, json!([]));

    let (status, body) = app
        .post(
            "/v1/registries",
            plain_http_body(&p.bearer, &p.user, &p.pass),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(first(&body)["last_validated"].is_string());
    assert_no_secrets(
        "logs",
        &captured_logs(),
        &[&p.pass, "bad-bearer-pass", &app.admin_pass],
    );
    app.finish().await;
}

async fn skip_validate_stores_without_contact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Nothing listens on port 1: validation fails as unreachable, and nothing is stored.
    let (status, body) = app
        .post(
            "/v1/registries?validate=true",
            registry_body("127.0.0.1:1", "u", "p"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"]["reason"], "unreachable");
    assert_eq!(app.get("/v1/registries").await.1, json!([]));

    let (status, body) = app
        .post(
            "/v1/registries?validate=False",
            registry_body("127.0.0.1:1", "u", "p"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(first(&body)["last_validated"].is_null());
    app.finish().await;
}

async fn update_replaces_only_what_it_may(backend: Backend) {
    let p = peers();
    let app = TestApp::spawn(backend).await;
    let (status, added) = app
        .post("/v1/registries", plain_http_body(&p.http, &p.user, &p.pass))
        .await;
    assert_eq!(status, StatusCode::OK);
    let added = first(&added).clone();

    // A wrong password on update is refused and the stored entry stays as it was.
    let path = format!("/v1/registries/{}?validate=True", enc(&p.http));
    let (status, _) = app
        .put(&path, plain_http_body(&p.http, &p.user, "bad"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        first(&app.get(&format!("/v1/registries/{}", enc(&p.http))).await.1),
        &added
    );

    // Keys other than user/pass/type/verify/name are ignored (Anchore copied them all).
    let mut body = plain_http_body(&p.http, &p.user, &p.pass);
    body["registry_name"] = json!("renamed");
    body["registry_user"] = json!(p.user.clone());
    body["userId"] = json!("someone-else");
    body["created_at"] = json!("2000-01-01T00:00:00Z");
    let (status, updated) = app.put(&path, body).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let updated = first(&updated);
    assert_eq!(updated["registry_name"], "renamed");
    assert!(updated["last_updated"].is_string());
    assert_eq!(updated["userId"], "admin");
    assert_eq!(updated["created_at"], added["created_at"]);

    // Path and body must name the same registry.
    let (status, body) = app
        .put(&path, registry_body("other.example.com", "u", "p"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("differ"));
    // Unknown registry.
    let (status, _) = app
        .put(
            "/v1/registries/unknown.example.com?validate=false",
            registry_body("unknown.example.com", "u", "p"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.finish().await;
}

async fn delete_answers_404_for_unknown(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reg = "reg.example.com:5000/team/*";
    let (status, _) = app
        .post(
            "/v1/registries?validate=false",
            registry_body(reg, "u", "p"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Both an encoded path (anchore-cli) and a raw one reach the same registry.
    assert_eq!(
        app.get("/v1/registries/reg.example.com:5000/team/*")
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = app.delete(&format!("/v1/registries/{}", enc(reg))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.delete(&format!("/v1/registries/{}", enc(reg))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(message(&body).contains("registry list"));
    assert_eq!(
        app.get(&format!("/v1/registries/{}", enc(reg))).await.0,
        StatusCode::NOT_FOUND
    );
    app.finish().await;
}

async fn accounts_never_see_each_other(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_account_with_user("team-a", "alice", "alice-pass-1")
        .await;
    app.add_account_with_user("team-b", "bob", "bob-pass-1")
        .await;
    let alice = Some(("alice", "alice-pass-1"));
    let bob = Some(("bob", "bob-pass-1"));
    let add = |reg: &str| json!({"registry": reg, "registry_user": "u", "registry_pass": "p"});

    let (s, b) = app
        .request(
            Method::POST,
            "/v1/registries?validate=false",
            Some(add("a.example.com")),
            alice,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(first(&b)["userId"], "team-a");
    let (s, _) = app
        .request(
            Method::POST,
            "/v1/registries?validate=false",
            Some(add("b.example.com")),
            bob,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // The same registry string in two accounts is two entries.
    let (s, _) = app
        .request(
            Method::POST,
            "/v1/registries?validate=false",
            Some(add("a.example.com")),
            bob,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["registry"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, list) = app
        .request(Method::GET, "/v1/registries", None, alice, None)
        .await;
    assert_eq!(names(&list), ["a.example.com"]);
    let (_, list) = app
        .request(Method::GET, "/v1/registries", None, bob, None)
        .await;
    assert_eq!(names(&list), ["a.example.com", "b.example.com"]);
    let (s, _) = app
        .request(
            Method::GET,
            "/v1/registries/b.example.com",
            None,
            alice,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .request(
            Method::DELETE,
            "/v1/registries/b.example.com",
            None,
            alice,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A non-admin may not act in another account.
    let (s, b) = app
        .request(Method::GET, "/v1/registries", None, alice, Some("team-b"))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(message(&b).contains("admin"));
    // An admin may; the admin account itself has none.
    let (s, list) = app
        .request(Method::GET, "/v1/registries", None, None, Some("team-b"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(names(&list), ["a.example.com", "b.example.com"]);
    assert_eq!(app.get("/v1/registries").await.1, json!([]));
    let (s, _) = app
        .request(
            Method::GET,
            "/v1/registries",
            None,
            None,
            Some("no-such-account"),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Non-admins do not manage accounts.
    let (s, _) = app
        .request(Method::GET, "/v1/accounts", None, alice, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_no_secrets(
        "logs",
        &captured_logs(),
        &["alice-pass-1", "bob-pass-1", &app.admin_pass],
    );
    app.finish().await;
}

async fn account_and_user_management(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Unauthenticated and wrongly authenticated requests.
    let response = app
        .http
        .get(format!("{}/v1/registries", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"regkeep\""
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["httpcode"], 401);
    let (s, _) = app
        .request(Method::GET, "/v1", None, Some(("admin", "wrong")), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    for open in ["/health", "/version"] {
        assert_eq!(
            app.http
                .get(format!("{}{open}", app.base))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }

    app.add_account_with_user("team-c", "carol", "carol-pass-1")
        .await;
    let carol = Some(("carol", "carol-pass-1"));
    let (s, me) = app
        .request(Method::GET, "/v1/account", None, carol, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["name"], "team-c");
    assert_eq!(me["type"], "user");
    let (_, me) = app
        .request(Method::GET, "/v1/user", None, carol, None)
        .await;
    assert_eq!(me["username"], "carol");
    // A duplicate account is a 400, as Anchore answers.
    let (s, b) = app.post("/v1/accounts", json!({"name": "team-c"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&b).starts_with("Account already exists"), "{b}");
    let (_, list) = app.get("/v1/accounts").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, users) = app.get("/v1/accounts/team-c/users").await;
    assert_eq!(users[0]["username"], "carol");
    assert!(users[0].get("password").is_none() && users[0].get("password_hash").is_none());

    // A new password takes effect at once (the verification cache is cleared).
    assert_eq!(
        app.request(Method::GET, "/v1", None, carol, None).await.0,
        StatusCode::OK
    );
    let (s, _) = app
        .post(
            "/v1/accounts/team-c/users/carol/credentials",
            json!({"type": "password", "value": "carol-pass-2"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        app.request(Method::GET, "/v1", None, carol, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let carol = Some(("carol", "carol-pass-2"));
    assert_eq!(
        app.request(Method::GET, "/v1", None, carol, None).await.0,
        StatusCode::OK
    );

    // Add a registry to the account, then disable: its users can no longer log in.
    let (s, _) = app
        .request(
            Method::POST,
            "/v1/registries?validate=false",
            Some(registry_body("c.example.com", "u", "p")),
            carol,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app.delete("/v1/accounts/team-c").await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "only disabled accounts are deleted: {b}"
    );
    // anchore-cli adds its hint when it sees Anchore's words.
    assert!(message(&b).contains("Invalid account state change requested"));
    assert!(message(&b).contains("disable"));
    let (s, b) = app
        .put("/v1/accounts/team-c/state", json!({"state": "disabled"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "disabled");
    // The right password of a disabled account's user: 403 (authenticated, refused by the
    // account's state), as Anchore answers; a wrong one stays 401.
    let (s, b) = app
        .request(Method::GET, "/v1/user", None, carol, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(message(&b).contains("Account not enabled"), "{b}");
    assert!(message(&b).contains("team-c is disabled"), "{b}");
    assert_eq!(
        app.request(
            Method::GET,
            "/v1/user",
            None,
            Some(("carol", "wrong-pass")),
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, _) = app
        .put("/v1/accounts/team-c/state", json!({"state": "sleeping"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app
        .put("/v1/accounts/admin/state", json!({"state": "disabled"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Delete: 200 with the account, now `deleting` (as Anchore answers); it shows as such
    // until the background pass removes it with its users and registries, then 404.
    let (s, b) = app.delete("/v1/accounts/team-c").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["name"], "team-c");
    assert_eq!(b["state"], "deleting");
    let (s, b) = app.get("/v1/accounts/team-c").await;
    assert_eq!((s, b["state"].as_str()), (StatusCode::OK, Some("deleting")));
    let (s, b) = app.delete("/v1/accounts/team-c").await;
    assert_eq!((s, b["state"].as_str()), (StatusCode::OK, Some("deleting")));
    let (s, b) = app
        .put("/v1/accounts/team-c/state", json!({"state": "enabled"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app.post("/v1/accounts", json!({"name": "team-c"})).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a name being deleted is taken: {b}"
    );
    let (s, b) = app
        .post(
            "/v1/accounts/team-c/users",
            json!({"username": "late-user", "password": "late-pass-1"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "no new users while deleting: {b}"
    );
    assert!(message(&b).contains("being deleted"), "{b}");
    let (s, b) = app
        .request(Method::GET, "/v1/user", None, carol, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(message(&b).contains("being deleted"), "{b}");
    assert_eq!(app.engine.purge_deleted_accounts().await.unwrap(), 1);
    assert_eq!(
        app.get("/v1/accounts/team-c").await.0,
        StatusCode::NOT_FOUND
    );
    let account = "team-c".parse::<regkeep_domain::AccountName>().unwrap();
    let store = open_store(&app).await;
    assert!(store.list_registries(&account).await.unwrap().is_empty());
    assert!(store.list_users(&account).await.unwrap().is_empty());

    // Users: add, duplicate, delete, delete again.
    app.add_account_with_user("team-d", "dave", "dave-pass-1")
        .await;
    // A password write names the account: a user of that name in another account (deleted and
    // re-created there while a hash was computed) is never touched.
    app.add_account_with_user("team-e", "erin", "erin-pass-1")
        .await;
    let team_d = "team-d".parse::<regkeep_domain::AccountName>().unwrap();
    let erin = "erin".parse::<regkeep_domain::UserName>().unwrap();
    let written = store
        .set_user_password_hash(&team_d, &erin, "", regkeep_domain::Timestamp::from_unix(0))
        .await;
    assert!(
        matches!(written, Err(regkeep_store::StoreError::NotFound)),
        "{written:?}"
    );
    assert_eq!(
        app.request(
            Method::GET,
            "/v1/user",
            None,
            Some(("erin", "erin-pass-1")),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    assert!(!store
        .get_user(&erin)
        .await
        .unwrap()
        .password_hash
        .is_empty());

    let (s, _) = app
        .post(
            "/v1/accounts/team-d/users",
            json!({"username": "dave", "password": "x-pass-xx"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app.get("/v1/accounts/team-d/users/dave").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        app.delete("/v1/accounts/team-d/users/dave").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/v1/accounts/team-d/users/dave").await.0,
        StatusCode::NOT_FOUND
    );
    // Nobody deletes the user it is logged in as (400, as Anchore answers).
    let (s, b) = app.delete("/v1/accounts/admin/users/admin").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_no_secrets(
        "logs",
        &captured_logs(),
        &[
            "carol-pass-1",
            "carol-pass-2",
            "dave-pass-1",
            &app.admin_pass,
        ],
    );
    app.finish().await;
}

/// Opens the app's store directly (same database and key) to look behind the API.
async fn open_store(app: &TestApp) -> regkeep_store::Store {
    let key = regkeep_store::KeySource::File(app.settings.secret_key_file());
    regkeep_store::Store::open(&app.settings.database_url(), &key)
        .await
        .unwrap()
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (s, _) = app
        .post(
            "/v1/registries?validate=false",
            registry_body("kept.example.com", "u", "p"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let before = app.get("/v1/registries").await.1;

    let body = |registry: &str| registry_body(registry, "u", "p").to_string();
    let json_ct = "application/json";
    // (what, path, content type, body, expected status, a word the message must contain)
    let cases: Vec<(&str, &str, &str, String, u16, &str)> = vec![
        ("scheme", "/v1/registries", json_ct, body("https://reg.example.com"), 400, "scheme"),
        ("trailing slash", "/v1/registries", json_ct, body("reg.example.com/"), 400, "trailing"),
        ("empty registry", "/v1/registries", json_ct, body(""), 400, "empty"),
        ("whitespace registry", "/v1/registries", json_ct, body("reg .example.com"), 400, "whitespace"),
        ("unicode host", "/v1/registries", json_ct, body("régistry.example.com"), 400, "punycode"),
        ("port 0", "/v1/registries", json_ct, body("reg.example.com:0"), 400, "port"),
        ("port 70000", "/v1/registries", json_ct, body("reg.example.com:70000"), 400, "port"),
        ("empty user", "/v1/registries", json_ct, registry_body("r.example.com", "", "p").to_string(), 400, "registry_user"),
        ("blank user", "/v1/registries", json_ct, registry_body("r.example.com", "   ", "p").to_string(), 400, "registry_user"),
        ("empty pass", "/v1/registries", json_ct, registry_body("r.example.com", "u", "").to_string(), 400, "registry_pass"),
        ("unknown type", "/v1/registries", json_ct,
            json!({"registry": "r.example.com", "registry_user": "u", "registry_pass": "p", "registry_type": "quay"}).to_string(), 400, "docker_v2"),
        ("missing field", "/v1/registries", json_ct, json!({"registry": "r.example.com"}).to_string(), 400, "registry_user"),
        ("wrong field type", "/v1/registries", json_ct,
            json!({"registry": "r.example.com", "registry_user": "u", "registry_pass": "p", "registry_verify": "yes"}).to_string(), 400, "registry_verify"),
        ("invalid JSON", "/v1/registries", json_ct, "{not json".into(), 400, "JSON"),
        ("empty body", "/v1/registries", json_ct, String::new(), 400, "empty"),
        ("wrong content type", "/v1/registries", "text/plain", body("r.example.com"), 415, "Content-Type"),
        ("bad validate flag", "/v1/registries?validate=perhaps", json_ct, body("r.example.com"), 400, "validate"),
        ("bad account name", "/v1/accounts", json_ct, json!({"name": "has space"}).to_string(), 400, "account name"),
        ("bad email", "/v1/accounts", json_ct, json!({"name": "ok-name", "email": "nope"}).to_string(), 400, "email"),
        ("empty user password", "/v1/accounts/admin/users", json_ct, json!({"username": "eve", "password": ""}).to_string(), 400, "password"),
    ];
    for (what, path, content_type, payload, want, word) in cases {
        let response = app
            .http
            .post(format!("{}{path}", app.base))
            .basic_auth("admin", Some(&app.admin_pass))
            .header("content-type", content_type)
            .body(payload)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(body["httpcode"], want, "{what}: error body shape: {body}");
        assert!(
            message(&body).contains(word),
            "{what}: message should mention `{word}`: {body}"
        );
    }
    // Cross-site form posts: a body without a JSON Content-Type (none at all, a form, text) never
    // creates an account or sets a password, even with a foreign Origin and valid credentials.
    for (content_type, path, payload) in [
        (None, "/v1/accounts", json!({"name": "csrf-a"}).to_string()),
        (
            Some("application/x-www-form-urlencoded"),
            "/v1/accounts",
            "name=csrf-b".to_owned(),
        ),
        (
            Some("text/plain"),
            "/v1/accounts/admin/users/admin/credentials",
            json!({"type": "password", "value": "csrf-pass"}).to_string(),
        ),
    ] {
        let mut request = app
            .http
            .post(format!("{}{path}", app.base))
            .basic_auth("admin", Some(&app.admin_pass))
            .header("origin", "https://evil.example")
            .body(payload);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 415, "{content_type:?} {path}: {body}");
        assert!(
            message(&body).contains("Content-Type: application/json"),
            "{body}"
        );
    }
    assert_eq!(
        app.get("/v1/accounts/csrf-a").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/user").await.0,
        StatusCode::OK,
        "the admin password is unchanged"
    );
    // Requests without a body are unaffected: DELETE, and a POST with an empty body.
    let status = app
        .http
        .post(format!(
            "{}/v1/registries/{}/check?login=false",
            app.base, "nothing.example.com"
        ))
        .basic_auth("admin", Some(&app.admin_pass))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an empty POST is judged on its merits"
    );

    // A 10 MB body: refused with 413 before it is read. curl, because it stops sending and reads
    // the early answer, where an HTTP client library reports a broken pipe instead.
    let big = app.data_dir.path().join("big.json");
    let pass = "a".repeat(10 * 1024 * 1024);
    std::fs::write(&big, registry_body("x.example.com", "u", &pass).to_string()).unwrap();
    // The credentials go through a curl config on stdin, not the process arguments.
    let mut curl = std::process::Command::new("curl")
        .args(["-sS", "-K", "-", "-H", "content-type: application/json"])
        .arg("--data-binary")
        .arg(format!("@{}", big.display()))
        .arg(format!("{}/v1/registries", app.base))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("curl runs");
    {
        use std::io::Write;
        let mut stdin = curl.stdin.take().unwrap();
        writeln!(stdin, "user = \"admin:{}\"", app.admin_pass).unwrap();
    }
    let out = curl.wait_with_output().unwrap();
    let body: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        body["httpcode"],
        413,
        "10 MB body: {body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(message(&body).contains("larger"));

    // A bad registry in the path.
    let (s, b) = app.get("/v1/registries/https%3A%2F%2Fx").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(
        app.get("/v1/registries").await.1,
        before,
        "the store is unchanged"
    );
    assert_eq!(app.get("/v1/accounts").await.1.as_array().unwrap().len(), 1);
    app.finish().await;
}

async fn restart_keeps_everything(backend: Backend) {
    let p = peers();
    let app = TestApp::spawn(backend).await;
    app.add_account_with_user("team-r", "rita", "rita-pass-1")
        .await;
    let (s, _) = app
        .post("/v1/registries", plain_http_body(&p.http, &p.user, &p.pass))
        .await;
    assert_eq!(s, StatusCode::OK);
    let rita = Some(("rita", "rita-pass-1"));
    let (s, _) = app
        .request(
            Method::POST,
            "/v1/registries?validate=false",
            Some(registry_body("r.example.com", "u", "rita-reg-pass")),
            rita,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let admin_list = app.get("/v1/registries").await.1;
    let rita_list = app
        .request(Method::GET, "/v1/registries", None, rita, None)
        .await
        .1;

    let app = app.restart().await;
    assert_eq!(app.get("/v1/registries").await.1, admin_list);
    assert_eq!(
        app.request(Method::GET, "/v1/registries", None, rita, None)
            .await
            .1,
        rita_list
    );
    // The sealed passwords still open under the kept key file.
    let store = open_store(&app).await;
    let admin = regkeep_domain::AccountName::admin();
    let reg: regkeep_domain::RegistryName = p.http.parse().unwrap();
    assert_eq!(
        store
            .registry_password(&admin, &reg)
            .await
            .unwrap()
            .expose(),
        p.pass
    );
    // Validation still works with what was stored: update re-validates with the same password.
    let (s, b) = app
        .put(
            &format!("/v1/registries/{}", enc(&p.http)),
            plain_http_body(&p.http, &p.user, &p.pass),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    app.finish().await;
}

async fn secrets_are_sealed_in_the_database(backend: Backend) {
    let p = peers();
    let app = TestApp::spawn(backend).await;
    let registry_pass = format!("reg-secret-{}", common::random_hex(8));
    let (s, _) = app
        .post(
            "/v1/registries?validate=false",
            registry_body("sealed.example.com", "u", &registry_pass),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .post("/v1/registries", plain_http_body(&p.http, &p.user, &p.pass))
        .await;
    assert_eq!(s, StatusCode::OK);
    app.add_account_with_user("team-s", "sam", "sam-user-pass")
        .await;
    let admin_pass = app.admin_pass.clone();
    let secrets = [
        registry_pass.as_str(),
        p.pass.as_str(),
        "sam-user-pass",
        admin_pass.as_str(),
    ];

    // Every API answer so far, and a list: no secret.
    let (_, list) = app.get("/v1/registries").await;
    assert_no_secrets("API response", &list.to_string(), &secrets);

    let mut app = app;
    app.stop().await;
    match backend {
        Backend::Sqlite => {
            let mut dump = Vec::new();
            for entry in std::fs::read_dir(app.data_dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.to_string_lossy().contains("regkeep.db") {
                    dump.extend(std::fs::read(&path).unwrap());
                }
            }
            assert!(!dump.is_empty());
            assert_no_secrets(
                "the SQLite files",
                &String::from_utf8_lossy(&dump),
                &secrets,
            );
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(app.database.url.as_deref().unwrap())
                .await
                .unwrap();
            let mut dump = String::new();
            for table in ["registries", "users", "accounts", "meta"] {
                let rows: Vec<(String,)> =
                    sqlx::query_as(&format!("SELECT CAST(t AS TEXT) FROM {table} t"))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                for (row,) in rows {
                    dump.push_str(&row);
                }
            }
            assert!(dump.contains("sealed.example.com"));
            assert_no_secrets("the PostgreSQL tables", &dump, &secrets);
            // BYTEA columns print as hex: look for the secrets' hex too.
            let hex: Vec<String> = secrets
                .iter()
                .map(|s| s.bytes().map(|b| format!("{b:02x}")).collect())
                .collect();
            let hex: Vec<&str> = hex.iter().map(String::as_str).collect();
            assert_no_secrets("the PostgreSQL tables (hex)", &dump, &hex);
        }
    }

    // Swapping sealed passwords between rows makes them unreadable, not someone else's.
    let store = open_store(&app).await;
    let admin = regkeep_domain::AccountName::admin();
    let sealed: regkeep_domain::RegistryName = "sealed.example.com".parse().unwrap();
    assert_eq!(
        store
            .registry_password(&admin, &sealed)
            .await
            .unwrap()
            .expose(),
        registry_pass
    );
    store.close().await;
    swap_sealed_passwords(&app, "sealed.example.com", &p.http).await;
    let store = open_store(&app).await;
    assert!(store.registry_password(&admin, &sealed).await.is_err());

    // A wrong key and a missing key file are clear start-up errors; the data stays.
    let key_file = app.settings.secret_key_file();
    let original = std::fs::read(&key_file).unwrap();
    std::fs::write(&key_file, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
    let err = regkeep_server::Application::build(&app.settings)
        .await
        .err()
        .expect("wrong key refused");
    assert!(format!("{err:#}").contains("another key"), "{err:#}");
    std::fs::remove_file(&key_file).unwrap();
    let err = regkeep_server::Application::build(&app.settings)
        .await
        .err()
        .expect("missing key refused");
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    assert!(
        !key_file.exists(),
        "a new key is not made for a database that has sealed data"
    );
    std::fs::write(&key_file, original).unwrap();
    // Restored as an operator would (a key file others can read is refused at start).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let app = app.restart().await;
    assert_eq!(
        app.get("/v1/registries").await.1.as_array().unwrap().len(),
        2
    );
    assert_no_secrets("logs", &captured_logs(), &secrets);
    app.finish().await;
}

async fn swap_sealed_passwords(app: &TestApp, a: &str, b: &str) {
    sqlx::any::install_default_drivers();
    let url = app.settings.database_url();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let get = |r: &str| {
        sqlx::query_scalar::<_, Vec<u8>>("SELECT sealed_pass FROM registries WHERE registry = $1")
            .bind(r.to_owned())
    };
    let sealed_a = get(a).fetch_one(&pool).await.unwrap();
    let sealed_b = get(b).fetch_one(&pool).await.unwrap();
    for (registry, sealed) in [(a, sealed_b), (b, sealed_a)] {
        sqlx::query("UPDATE registries SET sealed_pass = $1 WHERE registry = $2")
            .bind(sealed)
            .bind(registry)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

async fn awsecr_rules(backend: Backend) {
    let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let app = TestApp::spawn(backend).await;
    // The host's own identity is off by default: refused, naming the setting.
    let (s, b) = app
        .post(
            "/v1/registries?validate=false",
            registry_body(ecr, "awsauto", "awsauto"),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("allow_awsecr_iam_auto"));
    let (s, _) = app
        .post(
            "/v1/registries?validate=false",
            registry_body(ecr, "_iam_role", "arn:aws:iam::123456789012:role/pull"),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Static keys: the type is guessed from the host.
    let (s, b) = app
        .post(
            "/v1/registries?validate=false",
            registry_body(ecr, "AKIAEXAMPLE", "aws-secret-key-1"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(first(&b)["registry_type"], "awsecr");
    // Updating an ECR registry works (Anchore's fails) and cannot switch to awsauto.
    let path = format!("/v1/registries/{}?validate=false", enc(ecr));
    let (s, b) = app
        .put(&path, registry_body(ecr, "AKIAOTHER", "aws-secret-key-2"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(first(&b)["registry_user"], "AKIAOTHER");
    let (s, _) = app
        .put(&path, registry_body(ecr, "awsauto", "awsauto"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // awsecr on a host that is not ECR.
    let mut body = registry_body("registry.example.com", "AKIA", "x");
    body["registry_type"] = json!("awsecr");
    let (s, b) = app.post("/v1/registries?validate=false", body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&b).contains("not an Amazon ECR host"));
    assert_no_secrets(
        "logs",
        &captured_logs(),
        &["aws-secret-key-1", "aws-secret-key-2"],
    );
    app.finish().await;

    let app = TestApp::spawn_with(backend, |s| s.allow_awsecr_iam_auto = true).await;
    let (s, b) = app
        .post(
            "/v1/registries?validate=false",
            registry_body(ecr, "awsauto", "awsauto"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    app.finish().await;
}

/// A registry that accepts connections and never answers: a small in-test fixture, since no real
/// program plays a hung registry. Validation gives up after the configured timeout.
#[tokio::test]
async fn a_registry_that_never_answers_times_out() {
    crate::skip_without_peers!();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.registry.request_timeout_secs = 1).await;
    let (status, body) = app
        .post("/v1/registries", registry_body(&addr, "u", "p"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"]["reason"], "timeout");
    assert!(
        message(&body).contains("did not answer within 1 s"),
        "{body}"
    );
    assert_eq!(app.get("/v1/registries").await.1, json!([]));
    holder.abort();
    app.finish().await;
}

/// GET with the raw answer: status, content type, body.
async fn raw_get(app: &TestApp, path: &str, auth: (&str, &str)) -> (StatusCode, String, Value) {
    let response = app
        .http
        .get(format!("{}{path}", app.base))
        .basic_auth(auth.0, Some(auth.1))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (
        status,
        kind,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Anchore lets a user of an account manage that account's users (issue 10): list, add and
/// delete them, with or without `x-anchore-account` naming its own account; never another
/// account's or the admin account's.
async fn users_manage_the_users_of_their_own_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_account_with_user("team-e", "erin", "erin-pass-1")
        .await;
    app.add_account_with_user("team-f", "frank", "frank-pass-1")
        .await;
    let erin = Some(("erin", "erin-pass-1"));
    for header in [None, Some("team-e")] {
        let (s, users) = app
            .request(Method::GET, "/v1/accounts/team-e/users", None, erin, header)
            .await;
        assert_eq!(s, StatusCode::OK, "{users}");
        assert_eq!(users[0]["username"], "erin");
    }
    let (s, b) = app
        .request(
            Method::POST,
            "/v1/accounts/team-e/users",
            Some(json!({"username": "eve", "password": "eve-pass-1"})),
            erin,
            Some("team-e"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["username"], "eve");
    assert_eq!(b["type"], "native");
    // The new user logs in, in erin's account.
    let (s, me) = app
        .request(
            Method::GET,
            "/v1/account",
            None,
            Some(("eve", "eve-pass-1")),
            None,
        )
        .await;
    assert_eq!((s, me["name"].as_str()), (StatusCode::OK, Some("team-e")));
    let (s, b) = app
        .request(
            Method::GET,
            "/v1/accounts/team-e/users/eve",
            None,
            erin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .request(
            Method::DELETE,
            "/v1/accounts/team-e/users/eve",
            None,
            erin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(
        app.request(
            Method::GET,
            "/v1/user",
            None,
            Some(("eve", "eve-pass-1")),
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    // Never another account's users, nor the admin account's, nor accounts themselves.
    for account in ["team-f", "admin"] {
        let users = format!("/v1/accounts/{account}/users");
        let (s, _) = app.request(Method::GET, &users, None, erin, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{account}");
        let (s, _) = app
            .request(
                Method::POST,
                &users,
                Some(json!({"username": "mallory", "password": "mallory-pass"})),
                erin,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{account}");
    }
    for path in [
        "/v1/accounts/team-f/users/frank",
        "/v1/accounts/admin/users/admin",
    ] {
        let (s, _) = app.request(Method::DELETE, path, None, erin, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
    }
    let (s, _) = app
        .request(
            Method::GET,
            "/v1/accounts/team-f/users",
            None,
            erin,
            Some("team-f"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .request(
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "team-x"})),
            erin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // frank is untouched.
    assert_eq!(
        app.request(
            Method::GET,
            "/v1/user",
            None,
            Some(("frank", "frank-pass-1")),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    app.finish().await;
}

/// `/v1/user/credentials` and `/v1/accounts/{a}/users/{u}/credentials` (issue 10): summaries
/// never hold the secret; a user changes its own password; a deleted password credential ends
/// that user's logins.
async fn credentials_as_anchore_serves_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_account_with_user("team-g", "gina", "gina-pass-1")
        .await;
    let gina = ("gina", "gina-pass-1");
    let (s, kind, list) = raw_get(&app, "/v1/user/credentials", gina).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert!(kind.starts_with("application/json"), "{kind}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["type"], "password");
    assert_eq!(list[0]["value"], "********");
    assert!(list[0]["created_at"].as_str().unwrap().ends_with('Z'));

    // Changing one's own password: the summary back, the old password refused at once.
    let (s, b) = app
        .request(
            Method::POST,
            "/v1/user/credentials",
            Some(json!({"type": "password", "value": "gina-pass-2"})),
            Some(gina),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["type"].as_str(), b["value"].as_str()),
        (Some("password"), Some("********"))
    );
    assert_eq!(
        app.request(Method::GET, "/v1/user", None, Some(gina), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let gina = ("gina", "gina-pass-2");
    assert_eq!(raw_get(&app, "/v1/user", gina).await.0, StatusCode::OK);
    let (s, b) = app
        .request(
            Method::POST,
            "/v1/user/credentials",
            Some(json!({"type": "apikey", "value": "gina-pass-3"})),
            Some(gina),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("use `password`"), "{b}");

    // A user of the account lists and deletes another user's password credential.
    let (s, _) = app
        .request(
            Method::POST,
            "/v1/accounts/team-g/users",
            Some(json!({"username": "gus", "password": "gus-pass-1"})),
            Some(gina),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let path = "/v1/accounts/team-g/users/gus/credentials";
    let (s, _, list) = raw_get(&app, path, gina).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list[0]["type"], "password");
    assert_eq!(
        raw_get(&app, "/v1/user", ("gus", "gus-pass-1")).await.0,
        StatusCode::OK
    );
    let (s, b) = app
        .request(Method::DELETE, path, None, Some(gina), None)
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "credential_type is required: {b}"
    );
    let typed = format!("{path}?credential_type=password");
    let (s, b) = app
        .request(Method::DELETE, &typed, None, Some(gina), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(
        raw_get(&app, "/v1/user", ("gus", "gus-pass-1")).await.0,
        StatusCode::UNAUTHORIZED,
        "no password, no login"
    );
    assert_eq!(raw_get(&app, path, gina).await.2, json!([]));
    let (s, _) = app
        .request(Method::DELETE, &typed, None, Some(gina), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A new password brings gus back.
    let (s, _) = app
        .request(
            Method::POST,
            path,
            Some(json!({"type": "password", "value": "gus-pass-2"})),
            Some(gina),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        raw_get(&app, "/v1/user", ("gus", "gus-pass-2")).await.0,
        StatusCode::OK
    );
    // Nobody deletes the password it is logged in with; nor another account's.
    let own = "/v1/accounts/team-g/users/gina/credentials?credential_type=password";
    let (s, _) = app
        .request(Method::DELETE, own, None, Some(gina), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app
        .request(
            Method::GET,
            "/v1/accounts/admin/users/admin/credentials",
            None,
            Some(gina),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_no_secrets(
        "logs",
        &captured_logs(),
        &["gina-pass-1", "gina-pass-2", "gus-pass-1", "gus-pass-2"],
    );
    app.finish().await;
}

/// Events as Anchore's clients ask for them (issue 10): unknown parameters ignored, source
/// filters, Anchore's time formats, one event by id, the event type tree, deletes by window.
async fn events_as_anchore_serves_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = ("admin", app.admin_pass.as_str());
    let store = open_store(&app).await;
    let account: regkeep_domain::AccountName = "admin".parse().unwrap();
    let t0 = regkeep_domain::Timestamp::parse_rfc3339("2026-12-01T04:38:13Z").unwrap();
    for (i, (uuid, kind)) in [
        ("ev-old", "system.image_analysis.registry_lookup_failed"),
        ("ev-new", "user.checks.tag_update"),
    ]
    .into_iter()
    .enumerate()
    {
        store
            .insert_event(&regkeep_domain::entities::EventRecord {
                account: account.clone(),
                generated_uuid: uuid.into(),
                created_at: regkeep_domain::Timestamp::from_unix(t0.unix() + 3600 * i as i64),
                event_type: kind.into(),
                level: if i == 0 { "ERROR" } else { "INFO" }.into(),
                message: "m".into(),
                resource_type: "image_tag".into(),
                resource_id: "r.example.com/app:1".into(),
                details: "{}".into(),
            })
            .await
            .unwrap();
    }
    let ids = |b: &Value| -> Vec<String> {
        b["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["generated_uuid"].as_str().unwrap().to_owned())
            .collect()
    };
    let (s, kind, b) = raw_get(
        &app,
        "/v1/events?source_servicename=regkeep&source_hostid=regkeep&unknown_param=1",
        admin,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(kind.starts_with("application/json"));
    assert_eq!(ids(&b), ["ev-new", "ev-old"]);
    assert_eq!(
        (b["page"].as_i64(), b["item_count"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(b["results"][0]["event"]["source"]["servicename"], "regkeep");
    let (s, _, b) = raw_get(&app, "/v1/events?source_servicename=catalog", admin).await;
    assert_eq!((s, ids(&b).len()), (StatusCode::OK, 0));
    // Python's str(datetime) (anchore-cli and Anchore's own tests send it), as UTC.
    let (s, _, b) = raw_get(&app, "/v1/events?since=2026-12-01%2005:00:00.262543", admin).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ids(&b), ["ev-new"]);
    let (_, _, b) = raw_get(&app, "/v1/events?before=2026-12-01+05:00:00", admin).await;
    assert_eq!(ids(&b), ["ev-old"]);
    let (s, _, b) = raw_get(&app, "/v1/events?since=yesterday", admin).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&b).contains("2026-11-29 03:00:00"), "{b}");

    // One event.
    let (s, _, b) = raw_get(&app, "/v1/events/ev-old", admin).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["generated_uuid"], "ev-old");
    assert_eq!(
        b["event"]["type"],
        "system.image_analysis.registry_lookup_failed"
    );
    assert_eq!(b["event"]["level"], "ERROR");
    assert_eq!(b["event"]["resource"]["id"], "r.example.com/app:1");
    let (s, kind, b) = raw_get(&app, "/v1/events/no-such-event", admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(kind.starts_with("application/json"), "{kind}");
    assert_eq!(b["httpcode"], 404);

    // The type tree: the types regkeep writes, under Anchore's categories.
    let (s, _, tree) = raw_get(&app, "/v1/event_types", admin).await;
    assert_eq!(s, StatusCode::OK, "{tree}");
    let names: Vec<&str> = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["system", "user"]);
    let user = &tree[1];
    assert_eq!(user["category"], "user");
    assert_eq!(user["subcategories"][0]["name"], "checks");
    let event = &user["subcategories"][0]["events"][0];
    assert_eq!(event["name"], "tag_update");
    assert_eq!(event["type"], "user.checks.tag_update");
    assert_eq!(event["resource_type"], "image_tag");
    let system = &tree[0]["subcategories"][0];
    assert_eq!(system["name"], "image_analysis");
    assert_eq!(
        system["events"][0]["type"],
        "system.image_analysis.registry_lookup_failed"
    );

    // Deleting by window answers the ids deleted (anchore-cli counts them); one by id: 200.
    let (s, b) = app
        .delete("/v1/events?since=2026-12-01T05:00:00Z&anything=else")
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, json!(["ev-new"]));
    let (s, _) = app.delete("/v1/events/ev-old").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        app.delete("/v1/events/ev-old").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, _, b) = raw_get(&app, "/v1/events", admin).await;
    assert_eq!(ids(&b).len(), 0);
    app.finish().await;
}

/// `GET /v1/system`, `/v1/status`, `/v1/health`, `/v1/version`, `/swagger.json` (issue 10).
async fn system_status_as_anchore_serves_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = ("admin", app.admin_pass.as_str());
    let (s, _, b) = raw_get(&app, "/v1/system", admin).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let parts = b["service_states"].as_array().unwrap();
    let names: Vec<&str> = parts
        .iter()
        .map(|p| p["servicename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "regkeep-api",
            "database",
            "ecr-token-renewal",
            "tag-watcher"
        ]
    );
    for part in parts {
        assert_eq!(part["status"], true, "{part}");
        assert_eq!(part["base_url"], app.base.as_str(), "{part}");
        assert!(!part["hostid"].as_str().unwrap().is_empty());
        let detail = &part["service_detail"];
        assert_eq!(detail["up"], true);
        assert!(
            detail["db_version"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
                >= 4
        );
        assert_eq!(detail["version"], env!("CARGO_PKG_VERSION"));
    }
    assert!(parts[1]["service_detail"]["message"]
        .as_str()
        .unwrap()
        .contains("can be written"));
    let (s, _, b) = raw_get(&app, "/v1/status", admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (b["up"].as_bool(), b["available"].as_bool()),
        (Some(true), Some(true))
    );
    // A tenant's user: /system is the admin's (host, listen address, every account's work);
    // /status is anyone's.
    app.add_account_with_user("sys-tenant", "sys-user", "sys-pass-1")
        .await;
    let (s, _, b) = raw_get(&app, "/v1/system", ("sys-user", "sys-pass-1")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(b["message"].as_str().unwrap().contains("admin"), "{b}");
    let (s, _, b) = raw_get(&app, "/v1/status", ("sys-user", "sys-pass-1")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Anonymous: /system needs a login; health, version and swagger.json do not.
    let anonymous = app
        .http
        .get(format!("{}/v1/system", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    for path in ["/v1/health", "/health"] {
        let r = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    for path in ["/v1/version", "/version"] {
        let v: Value = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["service"]["version"], env!("CARGO_PKG_VERSION"), "{v}");
        assert!(v["api"]["version"].is_string() && v["db"]["schema_version"].is_string());
    }
    // anchore-cli reads info.version to choose how it asks for images by tag (>= 0.1.6).
    let v: Value = app
        .http
        .get(format!("{}/swagger.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["info"]["version"], "0.1.20");
    app.finish().await;
}

/// The framework's own refusals (unknown path, wrong method, a query string it cannot read)
/// answer `{message, httpcode, detail}` JSON like every other error (issue 10).
async fn framework_errors_are_json(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = ("admin", app.admin_pass.as_str());
    let check = |s: StatusCode, kind: &str, b: &Value, want: StatusCode| {
        assert_eq!(s, want, "{b}");
        assert!(kind.starts_with("application/json"), "{want}: {kind}");
        assert_eq!(b["httpcode"], want.as_u16());
        assert!(!message(b).is_empty());
        assert!(b["detail"]["error_codes"].is_array(), "{b}");
    };
    let (s, kind, b) = raw_get(&app, "/v1/no/such/path", admin).await;
    check(s, &kind, &b, StatusCode::NOT_FOUND);
    assert!(message(&b).contains("/v1/no/such/path"), "{b}");
    let (s, kind, b) = raw_get(&app, "/v1/events?page=abc", admin).await;
    check(s, &kind, &b, StatusCode::BAD_REQUEST);
    let response = app
        .http
        .patch(format!("{}/v1/registries", app.base))
        .basic_auth("admin", Some(&app.admin_pass))
        .send()
        .await
        .unwrap();
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let status = response.status();
    let b: Value = response.json().await.unwrap();
    check(status, &kind, &b, StatusCode::METHOD_NOT_ALLOWED);
    assert!(allow.contains("GET") && message(&b).contains("GET"), "{b}");
    // Unknown query parameters are ignored, as Anchore does.
    let (s, _, b) = raw_get(
        &app,
        "/v1/subscriptions?foo=bar&subscription_type=tag_update",
        admin,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _, b) = raw_get(&app, "/v1/registries?foo=bar", admin).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    app.finish().await;
}
