//! ECR under AWS's real endpoint names, with no `AWS_ENDPOINT_URL*` at all: the AWS SDK picks
//! the identity source and the endpoint by itself, as on EKS, ECS, GovCloud, China or FIPS hosts.
//!
//! Inside the test namespace the private `/etc/hosts` maps AWS's API names to a TLS front
//! (`fixtures/aws_front.py`, certificate from the test CA, which regkeep trusts through
//! `tls.ca_bundle` only) that logs the SNI and `Host` each request asked for and forwards it to
//! moto (signature checking on) or, for ECR Public, to the ECR-API fixture; the registry host forms
//! (GovCloud, China, FIPS, dual-stack, `public.ecr.aws`) are the TLS CNCF registry under each name.
//! Each test reads the front's log from where it started (the tests of this module run one at a
//! time: nextest group `aws-front`) and checks the exact host the SDK asked for, the SigV4 scope
//! it signed for, and that the token came back and the registry accepted it.
//!
//! The identity sources: web identity (EKS IRSA), container credentials with an authorization
//! token file (EKS Pod Identity, ECS), a profile with `role_arn` + `source_profile`, a profile with
//! `credential_process`. Each test is its own process (nextest) and sets the environment it needs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common;

use common::{assert_no_secrets, captured_logs, enc, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

const ECR_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
const ECR_PUBLIC_TARGET: &str = "SpencerFrontendService.GetAuthorizationToken";
/// What moto (and the ECR-API fixture by default) put in their tokens; the registry's password.
const TOKEN: &str = "123456789012-auth-token";

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: these tests need AWS's real names in the test namespace; run them with scripts/test.sh or scripts/test-shell.sh")
    })
}

/// No endpoint override of any kind, no ambient identity, no other trust store: what is left is
/// the SDK's own choice of endpoint and whatever identity the test then gives.
fn real_names_environment() {
    let overrides: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("AWS_ENDPOINT_URL"))
        .collect();
    for name in overrides.iter().map(String::as_str).chain([
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_USE_DUALSTACK_ENDPOINT",
        "AWS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    ]) {
        std::env::remove_var(name);
    }
    std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/regkeep-test/config");
    std::env::set_var(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/regkeep-test/credentials",
    );
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let left: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("AWS_ENDPOINT_URL"))
        .collect();
    assert!(left.is_empty(), "no endpoint override may be set: {left:?}");
}

/// A regkeep trusting the test CA through `tls.ca_bundle` (for the registry and for AWS alike),
/// with `awsauto` allowed.
async fn app() -> TestApp {
    let ca = PathBuf::from(var("REGKEEP_TEST_CA"));
    TestApp::spawn_with(Backend::Sqlite, move |s| {
        s.tls.ca_bundle = Some(ca);
        s.allow_awsecr_iam_auto = true;
    })
    .await
}

fn body(registry: &str, user: &str, pass: &str) -> Value {
    json!({"registry": registry, "registry_user": user, "registry_pass": pass})
}

/// The front's request log, read from the line where the test started.
struct FrontLog {
    path: PathBuf,
    start: usize,
}

impl FrontLog {
    fn mark() -> FrontLog {
        let path = PathBuf::from(var("REGKEEP_TEST_AWS_FRONT_LOG"));
        let start = Self::lines(&path).len();
        FrontLog { path, start }
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading the front's log {}: {e}", path.display()))
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    /// Every request since the mark.
    fn since(&self) -> Vec<Value> {
        Self::lines(&self.path).split_off(self.start)
    }

    /// The requests since the mark with this `X-Amz-Target` (JSON protocols) or `Action` (STS).
    fn calls(&self, operation: &str) -> Vec<Value> {
        self.since()
            .into_iter()
            .filter(|e| e["target"] == operation || e["action"] == operation)
            .collect()
    }
}

/// The one host `calls` asked for (SNI and `Host` alike), and that each was answered 200 with
/// a signature for `scope` (`<region>/<service>`).
fn asked_exactly(calls: &[Value], host: &str, scope: &str, what: &str) {
    assert!(!calls.is_empty(), "{what}: the front saw no call");
    let hosts: BTreeSet<&str> = calls
        .iter()
        .flat_map(|e| [e["host"].as_str(), e["sni"].as_str()])
        .map(Option::unwrap_or_default)
        .collect();
    assert_eq!(
        hosts,
        BTreeSet::from([host]),
        "{what}: the SDK asked for other names: {calls:?}"
    );
    for call in calls {
        assert_eq!(call["status"], 200, "{what}: {call}");
        assert_eq!(call["scope"], scope, "{what}: signed for: {call}");
    }
}

/// Adds `registry` (validated: a token minted and the registry under that name logging in with
/// it), resolves its test image, and checks that no secret reached the answers or the logs.
async fn add_and_resolve(app: &TestApp, registry: &str, user: &str, pass: &str, secrets: &[&str]) {
    let (status, answer) = app.post("/v1/registries", body(registry, user, pass)).await;
    assert_eq!(status, StatusCode::OK, "adding {registry}: {answer}");
    assert_eq!(answer[0]["registry_type"], "awsecr", "{answer}");
    let (_, got) = app.get(&format!("/v1/registries/{}", enc(registry))).await;
    assert!(got[0]["token_expires_at"].is_string(), "{got}");
    assert!(got[0].get("token_last_error").is_none(), "{got}");
    let (status, image) = app
        .post(
            "/v1/images",
            json!({"tag": format!("{registry}/test/hello:v1")}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "resolving under {registry}: {image}"
    );
    assert_eq!(image[0]["imageDigest"], var("REGKEEP_TEST_IMAGE_DIGEST"));
    let mut all = vec![TOKEN];
    all.extend_from_slice(secrets);
    assert_no_secrets("API answers", &format!("{answer}{got}{image}"), &all);
    assert_no_secrets("logs", &captured_logs(), &all);
}

fn commercial_registry() -> String {
    var("REGKEEP_TEST_REGISTRY_ECR")
}

/// A file of `contents`, mode 0600, in `dir`.
fn private_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    file.write_all(contents.as_bytes()).unwrap();
    path
}

// --- identity sources ------------------------------------------------------------------------

/// EKS IRSA: a web identity token file and a role ARN, nothing else. The SDK's chain calls STS
/// `AssumeRoleWithWebIdentity` at its regional name; moto answers with credentials its own checks
/// then accept for `GetAuthorizationToken`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irsa_web_identity_awsauto_validates_and_resolves() {
    crate::skip_without_peers!();
    real_names_environment();
    let dir = tempfile::tempdir().unwrap();
    let jwt = format!(
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cmVna2VlcDpyZWdrZWVwIn0.{}",
        common::random_hex(32)
    );
    let token_file = private_file(dir.path(), "token", &jwt);
    std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file);
    std::env::set_var("AWS_ROLE_ARN", var("REGKEEP_TEST_AWS_ROLE_ARN"));
    let log = FrontLog::mark();
    let app = app().await;
    add_and_resolve(&app, &commercial_registry(), "awsauto", "awsauto", &[&jwt]).await;

    let sts = log.calls("AssumeRoleWithWebIdentity");
    asked_exactly(
        &sts,
        "sts.us-east-1.amazonaws.com",
        "us-east-1/sts",
        "web identity",
    );
    assert!(
        sts.iter().all(|e| e["signed_by_front"] == true),
        "the SDK sent AssumeRoleWithWebIdentity unsigned, as STS takes it: {sts:?}"
    );
    asked_exactly(
        &log.calls(ECR_TARGET),
        "api.ecr.us-east-1.amazonaws.com",
        "us-east-1/ecr",
        "GetAuthorizationToken",
    );
    app.finish().await;
}

/// EKS IRSA in GovCloud: EKS sets `AWS_REGION` to the cluster's region, and the web identity
/// token is good only at that partition's STS. The host identity is fetched in that region (not a
/// fixed us-east-1), so STS and ECR are both GovCloud's, and moto's `aws-us-gov` IAM, which knows
/// nothing of the `aws` partition, accepts the credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irsa_in_govcloud_asks_govcloud_sts() {
    crate::skip_without_peers!();
    real_names_environment();
    let dir = tempfile::tempdir().unwrap();
    let jwt = format!(
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Z292OnJlZ2tlZXAifQ.{}",
        common::random_hex(32)
    );
    let token_file = private_file(dir.path(), "token", &jwt);
    std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file);
    std::env::set_var("AWS_ROLE_ARN", var("REGKEEP_TEST_AWS_GOV_ROLE_ARN"));
    std::env::set_var("AWS_REGION", "us-gov-west-1");
    let log = FrontLog::mark();
    let app = app().await;
    add_and_resolve(
        &app,
        "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
        "awsauto",
        "awsauto",
        &[&jwt],
    )
    .await;
    asked_exactly(
        &log.calls("AssumeRoleWithWebIdentity"),
        "sts.us-gov-west-1.amazonaws.com",
        "us-gov-west-1/sts",
        "web identity",
    );
    asked_exactly(
        &log.calls(ECR_TARGET),
        "api.ecr.us-gov-west-1.amazonaws.com",
        "us-gov-west-1/ecr",
        "GetAuthorizationToken",
    );
    app.finish().await;
}

/// EKS Pod Identity (and ECS task roles): the container credentials endpoint, with the
/// authorization token read from a file. No STS call: the endpoint hands out credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_identity_container_credentials_awsauto_validates() {
    crate::skip_without_peers!();
    real_names_environment();
    let url = var("REGKEEP_TEST_CONTAINER_CREDENTIALS_URL");
    let token_file = var("REGKEEP_TEST_CONTAINER_TOKEN_FILE");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let stand_in = url.trim_end_matches("/v1/credentials").to_owned();
    let http = reqwest::Client::new();
    let reset = http
        .post(format!("{stand_in}/_reset"))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());
    std::env::set_var("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
    std::env::set_var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file);
    let log = FrontLog::mark();
    let app = app().await;
    add_and_resolve(
        &app,
        &commercial_registry(),
        "awsauto",
        "awsauto",
        &[token.trim()],
    )
    .await;

    let calls: Value = http
        .get(format!("{stand_in}/_calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        calls["authorized"].as_u64().unwrap_or(0) >= 1,
        "the SDK asked the endpoint with the file's token: {calls}"
    );
    assert_eq!(calls["unauthorized"], 0, "{calls}");
    assert!(
        log.since()
            .iter()
            .all(|e| e["host"] != "sts.us-east-1.amazonaws.com"),
        "container credentials need no STS"
    );
    asked_exactly(
        &log.calls(ECR_TARGET),
        "api.ecr.us-east-1.amazonaws.com",
        "us-east-1/ecr",
        "GetAuthorizationToken",
    );
    app.finish().await;
}

/// `AWS_PROFILE` naming a profile with `role_arn` + `source_profile`: the source profile's keys
/// (in the shared credentials file) assume the role at STS's regional name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_role_arn_with_source_profile_validates() {
    crate::skip_without_peers!();
    real_names_environment();
    let dir = tempfile::tempdir().unwrap();
    let secret = var("REGKEEP_TEST_AWS_SECRET_ACCESS_KEY");
    let credentials = private_file(
        dir.path(),
        "credentials",
        &format!(
            "[regkeep-source]\naws_access_key_id = {}\naws_secret_access_key = {secret}\n",
            var("REGKEEP_TEST_AWS_ACCESS_KEY_ID")
        ),
    );
    let config = private_file(
        dir.path(),
        "config",
        &format!(
            "[profile regkeep-pull]\nrole_arn = {}\nsource_profile = regkeep-source\n",
            var("REGKEEP_TEST_AWS_ROLE_ARN")
        ),
    );
    std::env::set_var("AWS_CONFIG_FILE", &config);
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &credentials);
    std::env::set_var("AWS_PROFILE", "regkeep-pull");
    let log = FrontLog::mark();
    let app = app().await;
    add_and_resolve(
        &app,
        &commercial_registry(),
        "awsauto",
        "awsauto",
        &[&secret],
    )
    .await;

    let sts = log.calls("AssumeRole");
    asked_exactly(
        &sts,
        "sts.us-east-1.amazonaws.com",
        "us-east-1/sts",
        "AssumeRole",
    );
    assert!(sts.iter().all(|e| e["signed_by_front"] == false), "{sts:?}");
    asked_exactly(
        &log.calls(ECR_TARGET),
        "api.ecr.us-east-1.amazonaws.com",
        "us-east-1/ecr",
        "GetAuthorizationToken",
    );
    app.finish().await;
}

/// A profile with `credential_process` (aws-config's `credentials-process` feature): the
/// program's JSON is the identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_credential_process_validates() {
    crate::skip_without_peers!();
    real_names_environment();
    let dir = tempfile::tempdir().unwrap();
    let secret = var("REGKEEP_TEST_AWS_SECRET_ACCESS_KEY");
    // The secret sits in a 0600 file the process prints, never on a command line.
    let output = private_file(
        dir.path(),
        "process-output.json",
        &json!({
            "Version": 1,
            "AccessKeyId": var("REGKEEP_TEST_AWS_ACCESS_KEY_ID"),
            "SecretAccessKey": secret,
        })
        .to_string(),
    );
    let config = private_file(
        dir.path(),
        "config",
        &format!(
            "[profile regkeep-process]\ncredential_process = /bin/cat {}\n",
            output.display()
        ),
    );
    std::env::set_var("AWS_CONFIG_FILE", &config);
    std::env::set_var("AWS_PROFILE", "regkeep-process");
    let log = FrontLog::mark();
    let app = app().await;
    add_and_resolve(
        &app,
        &commercial_registry(),
        "awsauto",
        "awsauto",
        &[&secret],
    )
    .await;
    asked_exactly(
        &log.calls(ECR_TARGET),
        "api.ecr.us-east-1.amazonaws.com",
        "us-east-1/ecr",
        "GetAuthorizationToken",
    );
    assert!(log.calls("AssumeRole").is_empty());
    app.finish().await;
}

// --- partitions and host forms ---------------------------------------------------------------

/// Static keys on `registry`: the SDK asked exactly `api_host`, signed for `scope`, and the
/// registry under that name accepted the token.
async fn static_keys_under_real_names(
    registry: &str,
    keys: (&str, &str),
    api_host: &str,
    scope: &str,
) {
    real_names_environment();
    let (key, secret) = (var(keys.0), var(keys.1));
    let log = FrontLog::mark();
    let app = app().await;
    add_and_resolve(&app, registry, &key, &secret, &[&secret]).await;
    asked_exactly(
        &log.calls(ECR_TARGET),
        api_host,
        scope,
        &format!("GetAuthorizationToken for {registry}"),
    );
    app.finish().await;
}

const KEYS: (&str, &str) = (
    "REGKEEP_TEST_AWS_ACCESS_KEY_ID",
    "REGKEEP_TEST_AWS_SECRET_ACCESS_KEY",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commercial_host_asks_api_ecr_region_amazonaws_com() {
    crate::skip_without_peers!();
    static_keys_under_real_names(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        KEYS,
        "api.ecr.us-east-1.amazonaws.com",
        "us-east-1/ecr",
    )
    .await;
}

/// GovCloud: the `aws-us-gov` partition, whose IAM (moto's too) knows only its own keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn govcloud_host_asks_api_ecr_us_gov_west_1() {
    crate::skip_without_peers!();
    static_keys_under_real_names(
        "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
        (
            "REGKEEP_TEST_AWS_GOV_ACCESS_KEY_ID",
            "REGKEEP_TEST_AWS_GOV_SECRET_ACCESS_KEY",
        ),
        "api.ecr.us-gov-west-1.amazonaws.com",
        "us-gov-west-1/ecr",
    )
    .await;
}

/// China: the `aws-cn` partition and its `.amazonaws.com.cn` names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn china_host_asks_api_ecr_cn_north_1_amazonaws_com_cn() {
    crate::skip_without_peers!();
    static_keys_under_real_names(
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
        (
            "REGKEEP_TEST_AWS_CN_ACCESS_KEY_ID",
            "REGKEEP_TEST_AWS_CN_SECRET_ACCESS_KEY",
        ),
        "api.ecr.cn-north-1.amazonaws.com.cn",
        "cn-north-1/ecr",
    )
    .await;
}

/// FIPS (`dkr.ecr-fips`): the SDK's FIPS endpoint for ECR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fips_host_asks_the_fips_endpoint() {
    crate::skip_without_peers!();
    static_keys_under_real_names(
        "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
        KEYS,
        "api.ecr-fips.us-east-1.amazonaws.com",
        "us-east-1/ecr",
    )
    .await;
}

/// Dual-stack (`<acct>.dkr-ecr.<region>.on.aws`): the dual-stack API, `ecr.<region>.api.aws`, not
/// the IPv4-only `api.ecr.<region>.amazonaws.com`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_host_asks_ecr_region_api_aws() {
    crate::skip_without_peers!();
    static_keys_under_real_names(
        "123456789012.dkr-ecr.us-east-1.on.aws",
        KEYS,
        "ecr.us-east-1.api.aws",
        "us-east-1/ecr",
    )
    .await;
}

/// ECR Public: `public.ecr.aws` takes its token from the `ecr-public` API in us-east-1 (moto has
/// none: the ECR-API fixture answers, in the real wire format). The fixture's settings are shared
/// with the `ecr_fixture_*` tests, so this one runs in their group (its name says so), and asserts
/// only on ECR Public's own calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_fixture_public_host_asks_api_ecr_public_us_east_1() {
    crate::skip_without_peers!();
    real_names_environment();
    let fixture = var("REGKEEP_TEST_ECR_FIXTURE_URL");
    let http = reqwest::Client::new();
    let reset = http.post(format!("{fixture}/_reset")).send().await.unwrap();
    assert!(reset.status().is_success());
    let log = FrontLog::mark();
    let app = app().await;
    add_and_resolve(
        &app,
        "public.ecr.aws",
        "AKIAPUBLICFIXTURE000",
        "public-fixture-secret",
        &["public-fixture-secret"],
    )
    .await;
    asked_exactly(
        &log.calls(ECR_PUBLIC_TARGET),
        "api.ecr-public.us-east-1.amazonaws.com",
        "us-east-1/ecr-public",
        "ECR Public GetAuthorizationToken",
    );
    let calls: Value = http
        .get(format!("{fixture}/_calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        calls["PublicGetAuthorizationToken"].as_u64().unwrap_or(0) >= 1,
        "the fixture answered: {calls}"
    );
    app.finish().await;
}

/// The trust in the front comes from `tls.ca_bundle` alone: without it the SDK refuses the
/// front's certificate (a TLS failure the front logs under the name asked for), and regkeep says
/// AWS is unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_bundle_the_sdk_refuses_the_front() {
    crate::skip_without_peers!();
    real_names_environment();
    let log = FrontLog::mark();
    let app = TestApp::spawn(Backend::Sqlite).await;
    let registry = commercial_registry();
    let (status, answer) = app
        .post(
            "/v1/registries",
            body(
                &registry,
                &var("REGKEEP_TEST_AWS_ACCESS_KEY_ID"),
                &var("REGKEEP_TEST_AWS_SECRET_ACCESS_KEY"),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["detail"]["reason"], "aws_unavailable", "{answer}");
    // Said in a few words: the transport's cause, never the SDK's Debug text.
    crate::ecr_aws::said_briefly(&answer);
    let failed: Vec<Value> = log
        .since()
        .into_iter()
        .filter(|e| e["error"].is_string())
        .collect();
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|e| e["sni"] == "api.ecr.us-east-1.amazonaws.com"),
        "the front saw refused handshakes for the ECR name: {:?}",
        log.since()
    );
    assert!(
        log.calls(ECR_TARGET).is_empty(),
        "no request got through an untrusted connection"
    );
    app.finish().await;
}
