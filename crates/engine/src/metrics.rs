//! What the engine counts for operators (docs/design.md §6 of the issue: Prometheus at
//! `metrics_listen`): AWS calls and renewals with their outcome, credential handouts, tag polls,
//! failed authentications, database errors. The counters are shared handles; the server
//! registers them and exposes the text format. No label carries a secret or unbounded input: the
//! values are fixed words, AWS error codes (bounded, from AWS) and ECR hosts (at most the
//! registries there are).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A renewal's outcome: `ok`, or the AWS error code (`throttled`, `unavailable` when there was
/// none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RenewalLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandoutLabels {
    pub registry_type: String,
}

/// `kind`: `password` or `api_key`; `reason`: `wrong_credentials`, `throttled`, `unusable_key`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthFailureLabels {
    pub kind: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollLabels {
    /// `unchanged`, `changed` or `failed`.
    pub outcome: String,
}

/// The ECR host a token is for.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub ecr_host: String,
}

/// Storage errors, counted where they become engine errors (one process, one count).
pub(crate) static DATABASE_ERRORS: std::sync::LazyLock<Counter> =
    std::sync::LazyLock::new(Counter::default);

/// The engine's counters. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct EngineMetrics {
    pub aws_calls: Counter,
    pub renewals: Family<RenewalLabels, Counter>,
    pub handouts: Family<HandoutLabels, Counter>,
    pub auth_failures: Family<AuthFailureLabels, Counter>,
    pub tag_polls: Family<PollLabels, Counter>,
    pub database_errors: Counter,
    /// Seconds left before each kept ECR token stops being handed out (set at each scrape).
    pub token_seconds_left: Family<TokenLabels, Gauge>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics {
            aws_calls: Counter::default(),
            renewals: Family::default(),
            handouts: Family::default(),
            auth_failures: Family::default(),
            tag_polls: Family::default(),
            database_errors: DATABASE_ERRORS.clone(),
            token_seconds_left: Family::default(),
        }
    }
}

/// Longest label value kept (an AWS code is short; anything longer is cut).
const MAX_LABEL: usize = 64;

/// A label value made safe: printable ASCII, bounded.
pub fn label(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(MAX_LABEL)
        .collect()
}

impl EngineMetrics {
    /// Registers every series in `registry` under the `regkeep_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "regkeep_aws_calls",
            "GetAuthorizationToken calls made (minting attempts)",
            self.aws_calls.clone(),
        );
        registry.register(
            "regkeep_ecr_renewals",
            "ECR token mints by outcome: ok, or the AWS error code",
            self.renewals.clone(),
        );
        registry.register(
            "regkeep_credential_handouts",
            "Credentials handed out (POST /v1/credentials/resolve) by registry type",
            self.handouts.clone(),
        );
        registry.register(
            "regkeep_auth_failures",
            "Failed authentications by kind (password, api_key) and reason",
            self.auth_failures.clone(),
        );
        registry.register(
            "regkeep_tag_polls",
            "Tag polls by outcome (unchanged, changed, failed)",
            self.tag_polls.clone(),
        );
        registry.register(
            "regkeep_database_errors",
            "Storage errors met by the use-cases",
            self.database_errors.clone(),
        );
        registry.register(
            "regkeep_ecr_token_seconds_left",
            "Seconds before each kept ECR token stops being handed out (negative: expired)",
            self.token_seconds_left.clone(),
        );
    }

    pub fn renewal(&self, outcome: &str) {
        self.renewals
            .get_or_create(&RenewalLabels {
                outcome: label(outcome),
            })
            .inc();
    }

    pub fn auth_failure(&self, kind: &str, reason: &str) {
        self.auth_failures
            .get_or_create(&AuthFailureLabels {
                kind: kind.into(),
                reason: reason.into(),
            })
            .inc();
    }
}
