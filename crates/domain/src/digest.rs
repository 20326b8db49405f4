//! [`Digest`]: a content digest (`sha256:` and 64 lower-case hex digits, or `sha512:` and 128),
//! parsed once where text comes in; everything that holds one holds a valid one.

use std::fmt;
use std::str::FromStr;

/// A valid content digest. Registries, layouts and regkeep's answers use `sha256`; `sha512` is
/// accepted in references (the OCI spec registers it) but regkeep verifies only `sha256`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why text is not a digest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not a digest: use `sha256:` and 64 lower-case hex digits (or `sha512:` and 128)", crate::untrusted_text::sanitize(.0, 80))]
pub struct DigestError(String);

impl Digest {
    /// Parses `algorithm:hex`.
    ///
    /// # Errors
    /// [`DigestError`] for anything else (upper-case hex, another algorithm, a wrong length).
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let valid = text.split_once(':').is_some_and(|(algorithm, hex)| {
            let len = match algorithm {
                "sha256" => 64,
                "sha512" => 128,
                _ => return false,
            };
            hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if valid {
            Ok(Digest(text.to_owned()))
        } else {
            Err(DigestError(text.to_owned()))
        }
    }

    /// The digest of a finished SHA-256 hash.
    pub fn of_sha256(hash: [u8; 32]) -> Digest {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(71);
        text.push_str("sha256:");
        for b in hash {
            let _ = write!(text, "{b:02x}");
        }
        Digest(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex digits, without the algorithm.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, hex)| hex)
    }

    /// Whether it is a SHA-256 digest (the only algorithm regkeep verifies).
    pub fn is_sha256(&self) -> bool {
        self.0.starts_with("sha256:")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Digest::parse(text)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_registries_use_and_nothing_else() {
        let sha256 = format!("sha256:{}", "ab".repeat(32));
        let d = Digest::parse(&sha256).unwrap();
        assert!(d.is_sha256());
        assert_eq!(d.hex(), "ab".repeat(32));
        assert_eq!(d.to_string(), sha256);
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "sha256:E3B0".to_owned(),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", "a".repeat(63)),
            format!("md5:{}", "a".repeat(32)),
            "sha256".to_owned(),
            String::new(),
            format!("sha256:{}\u{1b}[31m", "a".repeat(64)),
        ] {
            let err = Digest::parse(&bad).unwrap_err();
            assert!(!err.to_string().contains('\u{1b}'), "{err}");
        }
        assert_eq!(
            Digest::of_sha256([0xab; 32]).as_str(),
            format!("sha256:{}", "ab".repeat(32))
        );
    }
}
