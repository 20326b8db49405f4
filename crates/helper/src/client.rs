//! The few calls the helper makes to regkeep's API, with the API key as `Bearer`.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use regkeep_domain::untrusted_text::sanitize;
use regkeep_domain::wire::{
    CredentialHandout, CredentialRequest, ErrorBody, RegistryConfiguration,
    RegistryConfigurationRequest,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::error::HelperError;

/// Largest answer read from regkeep.
const MAX_ANSWER: usize = 1024 * 1024;

pub struct Regkeep<'a> {
    config: &'a Config,
    http: reqwest::Client,
}

/// What regkeep answered when it did not answer with success.
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

impl<'a> Regkeep<'a> {
    /// # Errors
    /// An unreadable CA file.
    pub fn new(config: &'a Config) -> Result<Self, HelperError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                HelperError::Message(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            let certificate = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                HelperError::Message(format!("{} holds no PEM certificate: {e}", path.display()))
            })?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|e| HelperError::Message(format!("cannot set up HTTPS: {e}")))?;
        Ok(Regkeep { config, http })
    }

    /// The credential handout for an image or a registry host. `Ok(None)`: no registry entry
    /// of the key's account serves it.
    pub async fn resolve(
        &self,
        request: &CredentialRequest,
    ) -> Result<Option<CredentialHandout>, HelperError> {
        match self
            .call(Method::POST, "/v1/credentials/resolve", Some(request))
            .await?
        {
            Ok(handout) => Ok(Some(handout)),
            Err(refused) if refused.status == StatusCode::NOT_FOUND => Ok(None),
            Err(refused) => Err(refused.into()),
        }
    }

    pub async fn registries(&self) -> Result<Vec<RegistryConfiguration>, HelperError> {
        self.call::<(), _>(Method::GET, "/v1/registries", None)
            .await?
            .map_err(Into::into)
    }

    /// Registers `request` (validated against the registry), or updates the user and password
    /// of the docker_v2 entry that exists; never changes an entry's type or TLS verification
    /// (a `docker login` must not turn the team's ECR entry into a stored token, nor switch
    /// verification off for everyone).
    pub async fn add_or_update(
        &self,
        request: &RegistryConfigurationRequest,
    ) -> Result<(), HelperError> {
        let added = self
            .call::<_, serde_json::Value>(
                Method::POST,
                "/v1/registries?validate=true",
                Some(request),
            )
            .await?;
        match added {
            Ok(_) => Ok(()),
            Err(refused) if refused.status == StatusCode::CONFLICT => {
                let segment = utf8_percent_encode(&request.registry, NON_ALPHANUMERIC).to_string();
                let existing = self
                    .call::<(), Vec<RegistryConfiguration>>(
                        Method::GET,
                        &format!("/v1/registries/{segment}"),
                        None,
                    )
                    .await?
                    .map_err(HelperError::from)?;
                let Some(existing) = existing.into_iter().next() else {
                    return Err(HelperError::Message(format!(
                        "regkeep refused to add {} and does not show it: try again",
                        request.registry
                    )));
                };
                if existing.registry_type != "docker_v2" {
                    return Err(HelperError::Message(format!(
                        "{} is a {} registry in regkeep: docker login does not change it (regkeep keeps its tokens itself); log in to other registries, or change it with `regkeep registry update`",
                        existing.registry, existing.registry_type
                    )));
                }
                let update = RegistryConfigurationRequest {
                    registry_verify: Some(existing.registry_verify),
                    registry_name: Some(existing.registry_name),
                    ..request.clone()
                };
                self.call::<_, serde_json::Value>(
                    Method::PUT,
                    &format!("/v1/registries/{segment}?validate=true"),
                    Some(&update),
                )
                .await?
                .map(|_| ())
                .map_err(Into::into)
            }
            Err(refused) => Err(refused.into()),
        }
    }

    /// Removes a registry; one that is not there is no error.
    pub async fn delete(&self, registry: &str) -> Result<(), HelperError> {
        let path = format!(
            "/v1/registries/{}",
            utf8_percent_encode(registry, NON_ALPHANUMERIC)
        );
        match self
            .call::<(), serde_json::Value>(Method::DELETE, &path, None)
            .await?
        {
            Ok(_) => Ok(()),
            Err(refused) if refused.status == StatusCode::NOT_FOUND => Ok(()),
            Err(refused) => Err(refused.into()),
        }
    }

    /// One call: `Err` when regkeep could not be asked, `Ok(Err)` with what it refused.
    async fn call<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Result<T, Refused>, HelperError> {
        let url = format!("{}{path}", self.config.url);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(self.config.key.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            HelperError::Message(format!(
                "cannot reach regkeep at {}: {}; check REGKEEP_URL and that regkeep runs",
                self.config.url,
                cause(&e)
            ))
        })?;
        let status = response.status();
        let bytes = read_capped(response).await.map_err(|e| {
            HelperError::Message(format!("regkeep's answer broke off: {}", cause(&e)))
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map(Ok).map_err(|e| {
                HelperError::Message(format!(
                    "regkeep at {} answered something that is not its API ({e}): check REGKEEP_URL",
                    self.config.url
                ))
            });
        }
        // Whatever answered may not be regkeep: its text is made safe for a terminal and a log.
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| sanitize(&b.message, 600))
            .unwrap_or_else(|_| format!("regkeep answered {status}"));
        Ok(Err(Refused { status, message }))
    }
}

impl From<Refused> for HelperError {
    fn from(refused: Refused) -> Self {
        let hint = match refused.status {
            StatusCode::UNAUTHORIZED => " (the API key in REGKEEP_API_KEY_FILE / REGKEEP_API_KEY is wrong, expired or revoked: make a new one with `regkeep apikey create`)",
            _ => "",
        };
        HelperError::Message(format!("regkeep refused: {}{hint}", refused.message))
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if bytes.len() + chunk.len() > MAX_ANSWER {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The innermost cause of a connection error, which says what happened (refused, TLS, DNS).
fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        last = e.to_string();
        next = e.source();
    }
    last
}
