//! `GET /v1/openapi.json` on the real server: public, OpenAPI 3.1, and what it says about
//! credentials and methods is what the server does. (That every route is documented is a unit
//! test in the server crate; schemathesis fuzzes the whole document in the peer tier.)

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::app::HermeticApp;

async fn document(app: &HermeticApp) -> Value {
    let response = reqwest::get(format!("{}/v1/openapi.json", app.base))
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "served without credentials"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{:?}",
        response.headers()
    );
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_public_openapi_3_1_and_its_security_is_what_the_server_asks() {
    let app = HermeticApp::spawn().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let anonymous = reqwest::Client::new();
    let mut public = 0;
    let mut secured = 0;
    // Every GET without path parameters, asked without credentials: the public ones answer,
    // the others 401, as the document says.
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(get) = item.get("get") else { continue };
        if path.contains('{') {
            continue;
        }
        let needs_credentials = get
            .get("security")
            .is_none_or(|s| s != &Value::Array(vec![]));
        let status = anonymous
            .request(Method::GET, format!("{}{path}", app.base))
            .send()
            .await
            .unwrap()
            .status();
        if needs_credentials {
            secured += 1;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "GET {path}");
            assert!(get["responses"].get("401").is_some(), "GET {path}");
        } else {
            public += 1;
            assert!(status.is_success(), "GET {path} answered {status}");
        }
    }
    assert!(
        public >= 9 && secured >= 15,
        "{public} public, {secured} secured"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_path_answers_405_with_the_methods_it_has() {
    let app = HermeticApp::spawn().await;
    let client = reqwest::Client::new();
    for (method, path, allow) in [
        // POST on a registry is only a check.
        (
            Method::POST,
            "/v1/registries/r.example.com",
            "GET,PUT,DELETE",
        ),
        (
            Method::PATCH,
            "/v1/registries/r.example.com",
            "GET,PUT,DELETE",
        ),
        // `…/check` is a check, and also the registry `r.example.com/check`.
        (
            Method::PATCH,
            "/v1/registries/r.example.com/check",
            "GET,PUT,DELETE,POST",
        ),
    ] {
        let response = client
            .request(method.clone(), format!("{}{path}", app.base))
            .basic_auth("admin", Some(&app.admin_pass))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["httpcode"], 405, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains(allow) || method == Method::POST,
            "{body}"
        );
    }
    app.stop().await;
}
