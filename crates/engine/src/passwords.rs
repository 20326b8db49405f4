//! User passwords: Argon2id hashes (PHC strings). Hashing and verifying are slow by design, so
//! they run on the blocking pool.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use regkeep_domain::Secret;

use crate::EngineError;

/// Longest password accepted, in bytes (hashing cost grows with it).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Hashes a password with Argon2id and a random salt.
///
/// # Errors
/// [`EngineError::BadInput`] for an empty or over-long password.
pub async fn hash(password: &Secret) -> Result<String, EngineError> {
    check(password)?;
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| EngineError::Internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| EngineError::Internal(format!("password hashing task failed: {e}")))?
}

/// Whether `password` matches `hash`. A malformed hash never matches.
pub async fn verify(password: &Secret, hash: String) -> bool {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A real Argon2id hash of a random password nobody knows, made once per process.
///
/// # Errors
/// [`EngineError::Internal`] when hashing fails.
pub async fn unmatchable_hash() -> Result<String, EngineError> {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_try_init(|| async {
        let random: String = {
            use argon2::password_hash::rand_core::RngCore;
            let mut bytes = [0u8; 24];
            OsRng.fill_bytes(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        hash(&Secret::new(random)).await
    })
    .await
    .cloned()
}

/// Checks a new password's shape.
///
/// # Errors
/// [`EngineError::BadInput`] naming the problem.
pub fn check(password: &Secret) -> Result<(), EngineError> {
    if password.is_empty() {
        return Err(EngineError::BadInput(
            "password is empty: give a non-empty password".into(),
        ));
    }
    if password.expose().len() > MAX_PASSWORD_LEN {
        return Err(EngineError::BadInput(format!(
            "password is longer than {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hash(&Secret::new("correct horse")).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(verify(&Secret::new("correct horse"), h.clone()).await);
        assert!(!verify(&Secret::new("wrong"), h).await);
        assert!(!verify(&Secret::new("x"), "not a hash".into()).await);
        assert!(hash(&Secret::new("")).await.is_err());
    }
}
