//! What can go wrong, in words for the person reading a failed `docker pull` or kubelet log.

/// The helper's errors. `NotFound` is the protocol's own text, which consumers match exactly.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("credentials not found in native keychain")]
    NotFound,
    #[error("{0}")]
    Message(String),
}
