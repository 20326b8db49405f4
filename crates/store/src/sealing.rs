//! Sealing secrets at rest: AES-256-GCM under one 32-byte key, with associated data that binds
//! each ciphertext to where it belongs (account and registry), so a sealed value copied into
//! another row does not open.
//!
//! Sealed format: `version (1 byte) || nonce (12 bytes) || ciphertext+tag`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use regkeep_domain::Secret;
use sha2::Sha256;
use zeroize::Zeroizing;

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// Errors of key handling and sealing.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    #[error("the secret key must be 32 bytes, base64-encoded (make one with `head -c 32 /dev/urandom | base64`); the one given is not")]
    BadKey,
    #[error("could not read the secret key file {path}: {source}")]
    ReadKeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secret key file {path} can be read by other users (mode {mode:o}): make it private with `chmod 600 {path}`")]
    KeyFileMode { path: PathBuf, mode: u32 },
    #[error("could not create the secret key file {path}: {source}")]
    CreateKeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "a sealed value did not open: it was sealed under another key, or belongs to another row"
    )]
    Open,
    #[error("a sealed value is malformed (too short or unknown format)")]
    Malformed,
}

/// The sealing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SealingKey {
    cipher: Aes256Gcm,
    /// HMAC key for fingerprints, derived from the sealing key so one key file serves both.
    fingerprint_key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

impl SealingKey {
    /// Parses a base64-encoded 32-byte key.
    ///
    /// # Errors
    /// [`SealingError::BadKey`] when it is not base64 or not 32 bytes.
    pub fn from_base64(text: &Secret) -> Result<Self, SealingError> {
        let bytes = Zeroizing::new(
            BASE64
                .decode(text.expose().trim())
                .map_err(|_| SealingError::BadKey)?,
        );
        if bytes.len() != 32 {
            return Err(SealingError::BadKey);
        }
        Ok(Self::from_raw(&bytes))
    }

    /// Reads a key file written by [`SealingKey::create_file`] (or by hand: base64 of 32 bytes).
    ///
    /// # Errors
    /// [`SealingError::ReadKeyFile`] or [`SealingError::BadKey`].
    pub fn read_file(path: &Path) -> Result<Self, SealingError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|source| SealingError::ReadKeyFile {
                    path: path.to_owned(),
                    source,
                })?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(SealingError::KeyFileMode {
                    path: path.to_owned(),
                    mode: mode & 0o777,
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(|source| SealingError::ReadKeyFile {
            path: path.to_owned(),
            source,
        })?;
        Self::from_base64(&Secret::new(text))
    }

    /// Makes a new random key and writes it to `path` with mode 0600; never overwrites a file.
    ///
    /// # Errors
    /// [`SealingError::CreateKeyFile`] when the file exists or cannot be written.
    pub fn create_file(path: &Path) -> Result<Self, SealingError> {
        let err = |source| SealingError::CreateKeyFile {
            path: path.to_owned(),
            source,
        };
        let raw = Zeroizing::new(Aes256Gcm::generate_key(&mut OsRng).to_vec());
        let encoded = Zeroizing::new(BASE64.encode(&*raw));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(err)?;
        file.write_all(encoded.as_bytes()).map_err(err)?;
        file.write_all(b"\n").map_err(err)?;
        file.sync_all().map_err(err)?;
        Ok(Self::from_raw(&raw))
    }

    fn from_raw(raw: &[u8]) -> Self {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(raw).expect("HMAC takes any key length");
        mac.update(b"regkeep/v1/fingerprint-key");
        SealingKey {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(raw)),
            fingerprint_key: Zeroizing::new(mac.finalize().into_bytes().to_vec()),
        }
    }

    /// HMAC-SHA256 of `data` under the derived fingerprint key, first 16 bytes as hex.
    pub fn fingerprint(&self, data: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.fingerprint_key)
            .expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Seals `plain`, bound to `context`.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            // aes-gcm fails only for messages over 64 GiB, which never reach this.
            .expect("AES-GCM encryption of a short secret cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens what [`SealingKey::seal`] made with the same `context`.
    ///
    /// # Errors
    /// [`SealingError::Open`] under another key or context, [`SealingError::Malformed`].
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealingError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != FORMAT_V1 {
            return Err(SealingError::Malformed);
        }
        let nonce = Nonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        self.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealingError::Open)
    }
}

/// The associated data of a registry password: binds it to its account and registry.
pub fn registry_pass_context(account: &str, registry: &str) -> Vec<u8> {
    format!("regkeep/v1/registry_pass\0{account}\0{registry}").into_bytes()
}

/// The associated data of a persisted ECR token: binds it to its token key.
pub fn ecr_token_context(key: &str) -> Vec<u8> {
    format!("regkeep/v1/ecr_token\0{key}").into_bytes()
}

/// The associated data of the key check stored in `meta`.
pub const KEY_CHECK_CONTEXT: &[u8] = b"regkeep/v1/key_check";

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::from_base64(&Secret::new(BASE64.encode([7u8; 32]))).unwrap()
    }

    #[test]
    fn round_trip_and_binding() {
        let k = key();
        let ctx = registry_pass_context("acct", "reg.example.com");
        let sealed = k.seal(b"s3cret", &ctx);
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(k.open(&sealed, &ctx).unwrap().as_slice(), b"s3cret");
        let other_row = registry_pass_context("acct", "other.example.com");
        assert!(matches!(
            k.open(&sealed, &other_row),
            Err(SealingError::Open)
        ));
        let other_key = SealingKey::from_base64(&Secret::new(BASE64.encode([8u8; 32]))).unwrap();
        assert!(matches!(
            other_key.open(&sealed, &ctx),
            Err(SealingError::Open)
        ));
        assert!(matches!(
            k.open(&sealed[..10], &ctx),
            Err(SealingError::Malformed)
        ));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(
            SealingKey::from_base64(&Secret::new("short")),
            Err(SealingError::BadKey)
        ));
        assert!(matches!(
            SealingKey::from_base64(&Secret::new(BASE64.encode([1u8; 16]))),
            Err(SealingError::BadKey)
        ));
    }

    #[test]
    fn key_file_is_0600_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.key");
        let k = SealingKey::create_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let sealed = k.seal(b"x", b"c");
        let again = SealingKey::read_file(&path).unwrap();
        assert_eq!(again.open(&sealed, b"c").unwrap().as_slice(), b"x");
        assert!(SealingKey::create_file(&path).is_err(), "never overwrites");
    }
}
