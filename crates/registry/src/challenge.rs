//! `WWW-Authenticate` challenges as registries send them (RFC 7235 with the Docker token
//! auth parameters `realm`, `service`, `scope`).
//!
//! Written here because neither reqwest nor the OCI crates expose a parser for the header; it is
//! the smallest piece that covers what registries send: one challenge, a scheme, then
//! comma-separated `key=value` or `key="quoted, value"` parameters.

use std::collections::HashMap;

/// One authentication challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// A scheme regkeep does not speak.
    Other(String),
}

impl Challenge {
    /// Parses a header value. `None` when it has no scheme at all.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = match header.split_once(char::is_whitespace) {
            Some((s, r)) => (s, r),
            None => (header, ""),
        };
        if scheme.is_empty() {
            return None;
        }
        let params = parse_params(rest);
        Some(match scheme.to_ascii_lowercase().as_str() {
            "basic" => Challenge::Basic,
            "bearer" => match params.get("realm") {
                Some(realm) => Challenge::Bearer {
                    realm: realm.clone(),
                    service: params.get("service").cloned(),
                    scope: params.get("scope").cloned(),
                },
                None => Challenge::Other("Bearer without realm".into()),
            },
            other => Challenge::Other(other.to_owned()),
        })
    }
}

fn parse_params(mut rest: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.insert(key, value);
        rest = remaining;
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="http://127.0.0.1:5002/token",service="test-registry",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:5002/token".into(),
                service: Some("test-registry".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            Challenge::parse("bearer realm=https://auth.example/token, service=reg"),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg".into()),
                scope: None
            })
        );
        assert_eq!(
            Challenge::parse(r#"Bearer service="x""#),
            Some(Challenge::Other("Bearer without realm".into()))
        );
        assert_eq!(
            Challenge::parse("Negotiate"),
            Some(Challenge::Other("negotiate".into()))
        );
        assert_eq!(Challenge::parse("  "), None);
        assert_eq!(
            Challenge::parse(r#"Bearer realm="a\"b""#),
            Some(Challenge::Bearer {
                realm: "a\"b".into(),
                service: None,
                scope: None
            })
        );
    }
}
