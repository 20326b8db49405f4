//! `RegistryName`: the `registry` string an operator registers (docs/design.md §3.1).
//!
//! Grammar: `host[:port][/path...][*]` where host is a DNS name, an IPv4 address or a
//! bracketed IPv6 address. Parsing normalises what names the same registry (host case,
//! Docker Hub aliases) so that the stored string is the one key for it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest registry string accepted, in bytes.
pub const MAX_REGISTRY_LEN: usize = 255;

/// The canonical host that Docker Hub's aliases are stored under.
pub const DOCKER_HUB: &str = "docker.io";

/// Host names that all mean Docker Hub.
const DOCKER_HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// A parsed, normalised registry string. The only way to make one is [`RegistryName::from_str`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegistryName {
    /// The normalised text (`host[:port][/path][*]`), kept so `as_str` costs nothing.
    text: String,
    /// Byte length of `host[:port]` inside `text`.
    authority_len: usize,
    host: Host,
    port: Option<u16>,
    wildcard: bool,
}

/// The host part of a registry string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// A lower-case DNS name.
    Dns(String),
    /// A dotted IPv4 address.
    Ipv4(std::net::Ipv4Addr),
    /// An IPv6 address (written bracketed).
    Ipv6(std::net::Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Dns(name) => f.write_str(name),
            Host::Ipv4(ip) => write!(f, "{ip}"),
            Host::Ipv6(ip) => write!(f, "[{ip}]"),
        }
    }
}

/// Why a registry string was refused. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryNameError {
    #[error("registry is empty: give a host such as `registry.example.com:5000`")]
    Empty,
    #[error("registry `{0}` is longer than {MAX_REGISTRY_LEN} bytes")]
    TooLong(String),
    #[error("registry `{0}` contains whitespace or control characters: remove them")]
    Whitespace(String),
    #[error("registry `{0}` has a scheme: give the host without `{1}://` (for example `{2}`)")]
    Scheme(String, String, String),
    #[error("registry `{0}` ends with `/`: remove the trailing slash")]
    TrailingSlash(String),
    #[error("registry `{0}` has an empty path segment (`//`): remove it")]
    EmptySegment(String),
    #[error("registry `{0}` has no host before the `/`")]
    MissingHost(String),
    #[error("registry `{0}` has an invalid host `{1}`: use a DNS name (letters, digits, `-`, `.`), an IPv4 address or a bracketed IPv6 address; internationalised names must be given in punycode (`xn--...`)")]
    InvalidHost(String, String),
    #[error("registry `{0}` has an invalid port `{1}`: use a number from 1 to 65535")]
    InvalidPort(String, String),
    #[error("registry `{0}` has an invalid repository path segment `{1}`: use lower-case letters, digits and `.`, `_`, `-` separators")]
    InvalidPath(String, String),
    #[error("registry `{0}` has `*` somewhere other than at the very end: a wildcard may only end the string")]
    MisplacedWildcard(String),
}

impl RegistryName {
    /// The normalised string, as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host, normalised (lower case; Docker Hub aliases as `docker.io`).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The explicit port, if one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// `host[:port]`: what a client connects to.
    pub fn authority(&self) -> &str {
        &self.text[..self.authority_len]
    }

    /// The repository path after the authority, without the leading `/` or trailing `*`.
    pub fn path(&self) -> Option<&str> {
        let rest = self.text[self.authority_len..].trim_end_matches('*');
        rest.strip_prefix('/').filter(|p| !p.is_empty())
    }

    /// Whether the string ends with `*`.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Whether this names Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        matches!(&self.host, Host::Dns(h) if h == DOCKER_HUB)
    }
}

impl fmt::Display for RegistryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for RegistryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegistryName({:?})", self.text)
    }
}

impl From<RegistryName> for String {
    fn from(value: RegistryName) -> Self {
        value.text
    }
}

impl TryFrom<String> for RegistryName {
    type Error = RegistryNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl FromStr for RegistryName {
    type Err = RegistryNameError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let original = input.to_owned();
        if input.is_empty() {
            return Err(RegistryNameError::Empty);
        }
        if input.len() > MAX_REGISTRY_LEN {
            return Err(RegistryNameError::TooLong(truncate(input)));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RegistryNameError::Whitespace(original));
        }
        if let Some((scheme, rest)) = input.split_once("://") {
            return Err(RegistryNameError::Scheme(
                original.clone(),
                scheme.to_owned(),
                rest.trim_end_matches('/').to_owned(),
            ));
        }
        let (body, wildcard) = match input.strip_suffix('*') {
            Some(body) => (body, true),
            None => (input, false),
        };
        if body.contains('*') {
            return Err(RegistryNameError::MisplacedWildcard(original));
        }
        if body.is_empty() {
            return Err(RegistryNameError::Empty);
        }
        if body.ends_with('/') && !wildcard {
            return Err(RegistryNameError::TrailingSlash(original));
        }
        let (authority, path) = match body.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (body, None),
        };
        if authority.is_empty() {
            return Err(RegistryNameError::MissingHost(original));
        }
        let (host, port) = parse_authority(authority, &original)?;

        let mut text = host.to_string();
        if let Some(port) = port {
            text.push(':');
            text.push_str(&port.to_string());
        }
        let authority_len = text.len();
        if let Some(path) = path {
            // `host/repo/*` is allowed: the wildcard may follow a `/`.
            let trimmed = if wildcard {
                path.strip_suffix('/').unwrap_or(path)
            } else {
                path
            };
            let trailing_slash = trimmed.len() != path.len();
            if !trimmed.is_empty() {
                for segment in trimmed.split('/') {
                    if segment.is_empty() {
                        return Err(RegistryNameError::EmptySegment(original));
                    }
                    if !valid_path_segment(segment) {
                        return Err(RegistryNameError::InvalidPath(original, segment.to_owned()));
                    }
                }
            }
            text.push('/');
            text.push_str(trimmed);
            if trailing_slash {
                text.push('/');
            }
        }
        if wildcard {
            text.push('*');
        }
        Ok(RegistryName {
            text,
            authority_len,
            host,
            port,
            wildcard,
        })
    }
}

fn truncate(input: &str) -> String {
    let mut end = 40.min(input.len());
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &input[..end])
}

fn parse_authority(
    authority: &str,
    original: &str,
) -> Result<(Host, Option<u16>), RegistryNameError> {
    let (host_text, port_text) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(|| {
            RegistryNameError::InvalidHost(original.to_owned(), authority.to_owned())
        })?;
        let ip: std::net::Ipv6Addr = inside.parse().map_err(|_| {
            RegistryNameError::InvalidHost(original.to_owned(), format!("[{inside}]"))
        })?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| {
                RegistryNameError::InvalidHost(original.to_owned(), authority.to_owned())
            })?),
        };
        return Ok((Host::Ipv6(ip), parse_port(port, original)?));
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = parse_port(port_text, original)?;
    let host = parse_host(host_text)
        .ok_or_else(|| RegistryNameError::InvalidHost(original.to_owned(), host_text.to_owned()))?;
    Ok((host, port))
}

fn parse_port(port: Option<&str>, original: &str) -> Result<Option<u16>, RegistryNameError> {
    let Some(text) = port else { return Ok(None) };
    let invalid = || RegistryNameError::InvalidPort(original.to_owned(), text.to_owned());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 5 {
        return Err(invalid());
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(invalid()),
        Ok(port) => Ok(Some(port)),
    }
}

fn parse_host(text: &str) -> Option<Host> {
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return text.parse().ok().map(Host::Ipv4);
    }
    let lower = text.to_ascii_lowercase();
    if lower.len() > 253 {
        return None;
    }
    let labels_ok = lower.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if !labels_ok {
        return None;
    }
    if DOCKER_HUB_ALIASES.contains(&lower.as_str()) {
        return Some(Host::Dns(DOCKER_HUB.to_owned()));
    }
    Some(Host::Dns(lower))
}

/// A repository path segment per the distribution spec: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_path_segment(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().copied().is_some_and(alnum) || !bytes.last().copied().is_some_and(alnum) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or `-+`.
        let start = i;
        match b {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !bytes.get(i).copied().is_some_and(alnum) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        input
            .parse::<RegistryName>()
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .to_string()
    }

    #[test]
    fn accepts_and_normalises() {
        let cases = [
            ("registry.example.com", "registry.example.com"),
            ("Registry.Example.COM:5000", "registry.example.com:5000"),
            ("127.0.0.1:15000", "127.0.0.1:15000"),
            ("[::1]:5000", "[::1]:5000"),
            ("[2001:DB8::1]", "[2001:db8::1]"),
            ("localhost", "localhost"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io/library/*", "docker.io/library/*"),
            ("docker.io/*", "docker.io/*"),
            ("gcr.io/myproject/*", "gcr.io/myproject/*"),
            ("quay.io/org/repo", "quay.io/org/repo"),
            ("myreg.example.com*", "myreg.example.com*"),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            ),
            (
                "reg.example.com/a__b/c-d/e.f",
                "reg.example.com/a__b/c-d/e.f",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ok(input), want, "{input}");
        }
    }

    #[test]
    fn parts() {
        let name: RegistryName = "Reg.Example.com:5000/team/app*".parse().unwrap();
        assert_eq!(name.authority(), "reg.example.com:5000");
        assert_eq!(name.port(), Some(5000));
        assert_eq!(name.path(), Some("team/app"));
        assert!(name.is_wildcard());
        assert_eq!(name.host(), &Host::Dns("reg.example.com".into()));
        let bare: RegistryName = "docker.io".parse().unwrap();
        assert!(bare.is_docker_hub());
        assert_eq!(bare.path(), None);
    }

    #[test]
    fn rejects_with_reason() {
        type Check = fn(&RegistryNameError) -> bool;
        let cases: [(&str, Check); 17] = [
            ("", |e| matches!(e, RegistryNameError::Empty)),
            ("https://reg.example.com", |e| {
                matches!(e, RegistryNameError::Scheme(..))
            }),
            ("reg.example.com/", |e| {
                matches!(e, RegistryNameError::TrailingSlash(_))
            }),
            ("reg.example.com/a//b", |e| {
                matches!(e, RegistryNameError::EmptySegment(_))
            }),
            (" reg.example.com", |e| {
                matches!(e, RegistryNameError::Whitespace(_))
            }),
            ("reg example.com", |e| {
                matches!(e, RegistryNameError::Whitespace(_))
            }),
            ("reg.example.com:0", |e| {
                matches!(e, RegistryNameError::InvalidPort(..))
            }),
            ("reg.example.com:70000", |e| {
                matches!(e, RegistryNameError::InvalidPort(..))
            }),
            ("reg.example.com:", |e| {
                matches!(e, RegistryNameError::InvalidPort(..))
            }),
            ("reg.example.com:http", |e| {
                matches!(e, RegistryNameError::InvalidPort(..))
            }),
            ("régistry.example.com", |e| {
                matches!(e, RegistryNameError::InvalidHost(..))
            }),
            ("reg..example.com", |e| {
                matches!(e, RegistryNameError::InvalidHost(..))
            }),
            ("/repo", |e| matches!(e, RegistryNameError::MissingHost(_))),
            ("reg.example.com/UPPER", |e| {
                matches!(e, RegistryNameError::InvalidPath(..))
            }),
            ("reg*.example.com", |e| {
                matches!(e, RegistryNameError::MisplacedWildcard(_))
            }),
            ("[::1", |e| matches!(e, RegistryNameError::InvalidHost(..))),
            ("999.1.1.1", |e| {
                matches!(e, RegistryNameError::InvalidHost(..))
            }),
        ];
        for (input, check) in cases {
            let err = input.parse::<RegistryName>().expect_err(input);
            assert!(check(&err), "{input}: unexpected {err:?}");
            assert!(!err.to_string().is_empty());
        }
        let long = format!("{}.com", "a".repeat(300));
        assert!(matches!(
            long.parse::<RegistryName>(),
            Err(RegistryNameError::TooLong(_))
        ));
    }

    #[test]
    fn serde_rejects_bad_input() {
        let bad: Result<RegistryName, _> = serde_json::from_str("\"https://x\"");
        assert!(bad.is_err());
        let good: RegistryName = serde_json::from_str("\"X.io\"").unwrap();
        assert_eq!(serde_json::to_string(&good).unwrap(), "\"x.io\"");
    }
}
