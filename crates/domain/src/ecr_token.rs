//! An ECR registry credential as regkeep keeps it: what AWS minted, with the times the token
//! lifecycle (docs/design.md §3.4) decided for it. One shape for memory, the database and the API.

use crate::{Secret, Timestamp};

/// A registry credential minted from AWS. `Debug` redacts the password.
#[derive(Clone)]
pub struct EcrToken {
    pub username: String,
    pub password: Secret,
    /// When the token stops being handed out (AWS's expiry less a margin, or the skew floor).
    pub usable_until: Timestamp,
    pub obtained_at: Timestamp,
    /// When a background renewal is due.
    pub renew_at: Timestamp,
}

impl std::fmt::Debug for EcrToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcrToken")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("usable_until", &self.usable_until)
            .field("obtained_at", &self.obtained_at)
            .field("renew_at", &self.renew_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let token = EcrToken {
            username: "AWS".into(),
            password: Secret::new("debug-ecr-token"),
            usable_until: Timestamp::from_unix(2),
            obtained_at: Timestamp::from_unix(0),
            renew_at: Timestamp::from_unix(1),
        };
        let shown = format!("{token:?}");
        assert!(!shown.contains("debug-ecr-token"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
