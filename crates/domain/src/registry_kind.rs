//! Registry types (`docker_v2`, `awsecr`), type guessing (docs/design.md §3.2), and how the user/pass of an
//! `awsecr` registry select a credential mode (docs/design.md §3.3).

use std::fmt;

use crate::ecr_host::EcrHost;
use crate::registry_name::{Host, RegistryName};
use crate::secret::Secret;

/// The user or password that selects the host's own AWS identity.
pub const AWSAUTO: &str = "awsauto";
/// The user that selects assuming a role from the host's identity.
pub const IAM_ROLE_USER: &str = "_iam_role";

/// How regkeep authenticates to a registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegistryType {
    /// Docker Registry HTTP API v2 / OCI distribution with a user and password.
    DockerV2,
    /// Amazon ECR: the password is minted from AWS credentials.
    AwsEcr,
}

/// An unknown `registry_type`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registry_type `{0}` is not known: use `docker_v2` or `awsecr`, or leave it out to have it guessed from the registry host")]
pub struct UnknownRegistryType(pub String);

impl RegistryType {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryType::DockerV2 => "docker_v2",
            RegistryType::AwsEcr => "awsecr",
        }
    }

    /// Parses `docker_v2` or `awsecr` (case-insensitive).
    ///
    /// # Errors
    /// [`UnknownRegistryType`] for anything else.
    pub fn parse(text: &str) -> Result<Self, UnknownRegistryType> {
        match text.to_ascii_lowercase().as_str() {
            "docker_v2" => Ok(RegistryType::DockerV2),
            "awsecr" => Ok(RegistryType::AwsEcr),
            _ => Err(UnknownRegistryType(text.to_owned())),
        }
    }

    /// The type to use when none is given: `awsecr` for ECR private and public hosts,
    /// otherwise `docker_v2`.
    pub fn guess(registry: &RegistryName) -> Self {
        match registry.host() {
            Host::Dns(name) if EcrHost::parse(name).is_some() => RegistryType::AwsEcr,
            _ => RegistryType::DockerV2,
        }
    }
}

impl fmt::Display for RegistryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the AWS credentials of an `awsecr` registry come from.
#[derive(Clone, Debug, PartialEq)]
pub enum EcrCredentialMode {
    /// An access key id and secret access key.
    StaticKeys {
        access_key_id: String,
        secret_access_key: Secret,
    },
    /// The host's own identity through the AWS default chain.
    HostIdentity,
    /// A role assumed from the host's identity.
    AssumeRole {
        role_arn: String,
        external_id: Option<Secret>,
    },
}

/// Why an `awsecr` user/password pair was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcrCredentialError {
    #[error("registry_pass for `_iam_role` must be a role ARN such as `arn:aws:iam::123456789012:role/pull`, optionally followed by `;EXTERNAL_ID`")]
    BadRoleArn,
    #[error("registry_user and registry_pass must not be empty: give an AWS access key id and secret access key, or `awsauto awsauto`")]
    Empty,
}

impl EcrCredentialMode {
    /// Reads the mode from the user/password of an `awsecr` registry.
    ///
    /// # Errors
    /// [`EcrCredentialError`] when the pair is empty or the role ARN is malformed.
    pub fn from_user_pass(user: &str, pass: &Secret) -> Result<Self, EcrCredentialError> {
        if user == AWSAUTO || pass.expose() == AWSAUTO {
            return Ok(EcrCredentialMode::HostIdentity);
        }
        if user.is_empty() || pass.is_empty() {
            return Err(EcrCredentialError::Empty);
        }
        if user == IAM_ROLE_USER {
            let (arn, external) = match pass.expose().split_once(';') {
                Some((arn, ext)) => (arn, Some(ext)),
                None => (pass.expose(), None),
            };
            let parts: Vec<&str> = arn.split(':').collect();
            let valid = parts.len() == 6
                && parts[0] == "arn"
                && parts[1].starts_with("aws")
                && parts[2] == "iam"
                && parts[4].len() == 12
                && parts[4].bytes().all(|b| b.is_ascii_digit())
                && parts[5].starts_with("role/")
                && parts[5].len() > "role/".len();
            if !valid || external.is_some_and(str::is_empty) {
                return Err(EcrCredentialError::BadRoleArn);
            }
            return Ok(EcrCredentialMode::AssumeRole {
                role_arn: arn.to_owned(),
                external_id: external.map(Secret::new),
            });
        }
        Ok(EcrCredentialMode::StaticKeys {
            access_key_id: user.to_owned(),
            secret_access_key: pass.clone(),
        })
    }

    /// Whether this mode spends the host's own identity (gated by `allow_awsecr_iam_auto`).
    pub fn uses_host_identity(&self) -> bool {
        !matches!(self, EcrCredentialMode::StaticKeys { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_type_from_host() {
        let guess = |s: &str| RegistryType::guess(&s.parse().unwrap());
        assert_eq!(
            guess("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            RegistryType::AwsEcr
        );
        assert_eq!(
            guess("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/*"),
            RegistryType::AwsEcr
        );
        assert_eq!(guess("public.ecr.aws"), RegistryType::AwsEcr);
        assert_eq!(guess("registry.example.com:5000"), RegistryType::DockerV2);
        assert_eq!(
            guess("123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example"),
            RegistryType::DockerV2
        );
    }

    #[test]
    fn parses_type() {
        assert_eq!(RegistryType::parse("AWSECR"), Ok(RegistryType::AwsEcr));
        assert!(RegistryType::parse("quay")
            .unwrap_err()
            .to_string()
            .contains("docker_v2"));
    }

    #[test]
    fn credential_modes() {
        let mode = |u: &str, p: &str| EcrCredentialMode::from_user_pass(u, &Secret::new(p));
        assert_eq!(
            mode("awsauto", "awsauto"),
            Ok(EcrCredentialMode::HostIdentity)
        );
        assert_eq!(mode("x", "awsauto"), Ok(EcrCredentialMode::HostIdentity));
        assert!(matches!(
            mode("AKIAEXAMPLE", "secret"),
            Ok(EcrCredentialMode::StaticKeys { .. })
        ));
        let role = mode("_iam_role", "arn:aws:iam::123456789012:role/pull;ext-1").unwrap();
        assert!(role.uses_host_identity());
        assert!(
            matches!(role, EcrCredentialMode::AssumeRole { ref role_arn, external_id: Some(_) } if role_arn == "arn:aws:iam::123456789012:role/pull")
        );
        assert_eq!(
            mode("_iam_role", "not-an-arn"),
            Err(EcrCredentialError::BadRoleArn)
        );
        assert_eq!(mode("", "x"), Err(EcrCredentialError::Empty));
    }
}
