//! API keys: credentials for machines (docs/design.md §3.8). A key is `rk_<id>_<secret>`: the id
//! (16 lower-case hex digits) names the key in lists, logs and audit lines; the secret (43
//! base64url characters, 32 random bytes) is shown once and kept only as a keyed hash. A key
//! carries [`Scopes`]; it can do nothing they do not name.

use std::fmt;

use crate::Secret;

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Ask for the credential that serves an image or registry (`POST /v1/credentials/resolve`).
    CredentialsRead,
    /// Add, update, check and delete registries.
    RegistriesWrite,
    /// Every `GET`.
    Read,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::CredentialsRead, Scope::RegistriesWrite, Scope::Read];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CredentialsRead => "credentials:read",
            Scope::RegistriesWrite => "registries:write",
            Scope::Read => "read",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::CredentialsRead => 1,
            Scope::RegistriesWrite => 2,
            Scope::Read => 4,
        }
    }
}

/// A set of scopes (never empty once parsed).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

/// Why text is not a list of scopes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScopesError {
    #[error("no scope given: name at least one of credentials:read, registries:write, read")]
    Empty,
    #[error("`{}` is not a scope: use credentials:read, registries:write or read (comma-separated)", crate::untrusted_text::sanitize(.0, 40))]
    Unknown(String),
}

impl Scopes {
    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// Parses `scope[,scope...]` (spaces around commas allowed, repeats ignored).
    ///
    /// # Errors
    /// [`ScopesError`] for an empty list or an unknown scope.
    pub fn parse(text: &str) -> Result<Scopes, ScopesError> {
        let mut bits = 0;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let scope = Scope::ALL
                .into_iter()
                .find(|s| s.as_str() == part)
                .ok_or_else(|| ScopesError::Unknown(part.to_owned()))?;
            bits |= scope.bit();
        }
        if bits == 0 {
            return Err(ScopesError::Empty);
        }
        Ok(Scopes(bits))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

impl std::str::FromStr for Scopes {
    type Err = ScopesError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Scopes::parse(text)
    }
}

/// The public name of an API key: 16 lower-case hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(String);

/// Why text is not an API key id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not an API key id: give the 16 hex digits `regkeep apikey list` shows", crate::untrusted_text::sanitize(.0, 40))]
pub struct ApiKeyIdError(String);

const ID_LEN: usize = 16;
const SECRET_LEN: usize = 43;
const PREFIX: &str = "rk_";

impl ApiKeyId {
    /// # Errors
    /// [`ApiKeyIdError`] unless `text` is 16 lower-case hex digits.
    pub fn parse(text: &str) -> Result<ApiKeyId, ApiKeyIdError> {
        if text.len() == ID_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(ApiKeyId(text.to_owned()))
        } else {
            Err(ApiKeyIdError(text.to_owned()))
        }
    }

    /// The id of 8 random bytes.
    pub fn from_bytes(bytes: [u8; 8]) -> ApiKeyId {
        ApiKeyId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ApiKeyId {
    type Err = ApiKeyIdError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ApiKeyId::parse(text)
    }
}

/// A whole key as a client presents it: its id and its secret. `Debug` shows the id only.
#[derive(Clone)]
pub struct ApiKeyToken {
    pub id: ApiKeyId,
    /// The 43 base64url characters after the id.
    pub secret: Secret,
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyToken")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl ApiKeyToken {
    /// Parses `rk_<16 hex>_<43 base64url>`; `None` for anything else (never echoed: it may be a
    /// secret sent by mistake).
    pub fn parse(text: &str) -> Option<ApiKeyToken> {
        let rest = text.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let id = ApiKeyId::parse(id).ok()?;
        let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        (secret.len() == SECRET_LEN && secret.bytes().all(base64url)).then(|| ApiKeyToken {
            id,
            secret: Secret::new(secret),
        })
    }

    /// The key of an id and a secret already encoded (43 base64url characters of 32 random
    /// bytes); `None` when the secret is not that.
    pub fn new(id: ApiKeyId, secret: &str) -> Option<ApiKeyToken> {
        ApiKeyToken::parse(&format!("{PREFIX}{id}_{secret}"))
    }

    /// The text the client presents (a secret: shown once).
    pub fn reveal(&self) -> Secret {
        Secret::new(format!("{PREFIX}{}_{}", self.id, self.secret.expose()))
    }
}

/// Longest lifetime a key may be given: ten years.
pub const MAX_LIFETIME_DAYS: u64 = 3650;

/// Parses a key's lifetime: a whole number and a unit, `d` (days), `h` (hours) or `m`
/// (minutes), e.g. `90d`.
///
/// # Errors
/// A sentence saying what is wrong and what to give.
pub fn parse_lifetime(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let wrong = || {
        format!(
            "`{}` is not a key lifetime: give a whole number and d, h or m (e.g. 90d), at most {MAX_LIFETIME_DAYS}d",
            crate::untrusted_text::sanitize(text, 40)
        )
    };
    // By suffix, never by byte position: the text is anyone's, multi-byte characters included.
    let (number, seconds_per) = if let Some(n) = text.strip_suffix('d') {
        (n, 86_400)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3_600)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60)
    } else {
        return Err(wrong());
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(wrong());
    }
    let n: u64 = number.parse().map_err(|_| wrong())?;
    let seconds = n.checked_mul(seconds_per).ok_or_else(wrong)?;
    if n == 0 || seconds > MAX_LIFETIME_DAYS * 86_400 {
        return Err(wrong());
    }
    Ok(std::time::Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("90d").unwrap().as_secs(), 90 * 86_400);
        assert_eq!(parse_lifetime(" 12h").unwrap().as_secs(), 12 * 3_600);
        assert_eq!(parse_lifetime("30m").unwrap().as_secs(), 1_800);
        for bad in [
            "",
            "d",
            "0d",
            "-1d",
            "1.5d",
            "90",
            "90s",
            "3651d",
            "99999999999999999999d",
            "9é",
            "1€",
            "é",
            "+1d",
            "1 d",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_parse_and_print() {
        let s = Scopes::parse("read, credentials:read,read").unwrap();
        assert!(s.contains(Scope::Read) && s.contains(Scope::CredentialsRead));
        assert!(!s.contains(Scope::RegistriesWrite));
        assert_eq!(s.to_string(), "credentials:read,read");
        assert_eq!(Scopes::parse(" , "), Err(ScopesError::Empty));
        assert!(matches!(
            Scopes::parse("read,admin"),
            Err(ScopesError::Unknown(u)) if u == "admin"
        ));
        assert_eq!(Scopes::parse(&s.to_string()), Ok(s));
    }

    #[test]
    fn keys_round_trip_and_refuse_anything_else() {
        let token = ApiKeyToken::new(
            ApiKeyId::from_bytes([0xab; 8]),
            "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc",
        )
        .unwrap();
        let text = token.reveal();
        assert_eq!(text.expose().len(), 3 + 16 + 1 + 43);
        let parsed = ApiKeyToken::parse(text.expose()).unwrap();
        assert_eq!(parsed.id, token.id);
        assert_eq!(parsed.secret.expose(), token.secret.expose());
        assert!(!format!("{parsed:?}").contains(token.secret.expose()));
        for bad in [
            "",
            "rk_",
            "rk_abababababababab",
            "rk_ABABABABABABABAB_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc",
            "xx_abababababababab_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc",
            "rk_abababababababab_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
            "rk_abababababababab_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBw.",
        ] {
            assert!(ApiKeyToken::parse(bad).is_none(), "{bad}");
        }
    }
}
