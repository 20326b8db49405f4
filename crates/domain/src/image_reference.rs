//! Image references (`[host[:port]/]repository[:tag][@sha256:digest]`) with Docker Hub
//! normalisation (`alpine` → `docker.io/library/alpine:latest`), and which registered credential
//! serves an image (docs/design.md §3.5: Anchore's rules, repaired).

use std::fmt;
use std::str::FromStr;

use crate::registry_name::{RegistryName, DOCKER_HUB};
use crate::Digest;

/// A parsed, normalised image reference.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    /// `host[:port]`, lower case, Docker Hub as `docker.io`, `:443` dropped.
    authority: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why an image reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageReferenceError {
    #[error(
        "image reference is empty: give one like `registry.example.com/team/app:1.0` or `alpine`"
    )]
    Empty,
    #[error("image reference `{0}` contains whitespace or a scheme: give `host/repository:tag` without `https://`")]
    Malformed(String),
    #[error("image reference `{0}` has an invalid registry host `{1}`")]
    Host(String, String),
    #[error("image reference `{0}` has an invalid repository `{1}`: use lower-case letters, digits and `.`, `_`, `-` separators, with `/` between components")]
    Repository(String, String),
    #[error("image reference `{0}` has an invalid tag `{1}`: up to 128 of letters, digits, `_`, `.`, `-`, not starting with `.` or `-`")]
    Tag(String, String),
    #[error("image reference `{0}` has an invalid digest `{1}`: use `sha256:` and 64 lower-case hex digits (or `sha512:` and 128)")]
    Digest(String, String),
}

impl ImageReference {
    /// `host[:port]`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag; `latest` when neither tag nor digest was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_ref().map(Digest::as_str)
    }

    /// The same image pinned to `digest` (the tag kept, for the record).
    #[must_use]
    pub fn with_digest(&self, digest: &Digest) -> ImageReference {
        ImageReference {
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn reference(&self) -> &str {
        self.digest().or(self.tag()).unwrap_or("latest")
    }

    /// `host/repository`, what credentials are matched against.
    pub fn name(&self) -> String {
        format!("{}/{}", self.authority, self.repository)
    }

    /// Which of `registries` serves this image: the longest registry string that matches
    /// (docs/design.md §3.5). A `*` entry matches images whose `host/repo` starts with it at a `/`
    /// boundary (Anchore matched any prefix, so `reg.example.com*` also served
    /// `reg.example.com.evil.net`); an entry with a path matches that repository exactly; a bare
    /// host matches every repository of the host. `None`: anonymous access.
    pub fn select_credential<'a>(
        &self,
        registries: &'a [RegistryName],
    ) -> Option<&'a RegistryName> {
        let name = self.name();
        let mut candidates: Vec<&RegistryName> = registries.iter().collect();
        candidates.sort_by_key(|r| std::cmp::Reverse(r.as_str().len()));
        candidates.into_iter().find(|registry| {
            let authority = normalise_authority(registry.authority());
            if registry.is_wildcard() {
                let prefix = format!(
                    "{authority}{}",
                    &registry.as_str()[registry.authority().len()..]
                );
                let prefix = prefix.trim_end_matches('*');
                if prefix.ends_with('/') {
                    return name.starts_with(prefix);
                }
                name == prefix
                    || name
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            } else {
                match registry.path() {
                    Some(path) => authority == self.authority && path == self.repository,
                    None => authority == self.authority,
                }
            }
        })
    }
}

/// Which of `registries` serves every repository of `authority` (`host[:port]`), for callers that
/// know a host but no repository (docker's credential helpers): the entry of the whole host
/// (`host`), else a wildcard over it (`host*`, `host/*`). A repository-scoped entry never serves
/// a whole host. `None`: no entry does.
pub fn select_for_host<'a>(
    authority: &str,
    registries: &'a [RegistryName],
) -> Option<&'a RegistryName> {
    let authority = normalise_authority(&authority.to_ascii_lowercase());
    let whole_host =
        |r: &&RegistryName| normalise_authority(r.authority()) == authority && r.path().is_none();
    registries
        .iter()
        .filter(whole_host)
        .min_by_key(|r| r.is_wildcard())
}

/// What a registry entry covers, as the credential handout and the kubelet see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryScope {
    /// Every repository of the host.
    Host,
    /// One repository.
    Repository,
    /// The repositories under a prefix.
    Wildcard,
}

impl EntryScope {
    pub fn of(registry: &RegistryName) -> EntryScope {
        match (registry.is_wildcard(), registry.path()) {
            (false, None) => EntryScope::Host,
            (false, Some(_)) => EntryScope::Repository,
            (true, _) => EntryScope::Wildcard,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EntryScope::Host => "host",
            EntryScope::Repository => "repository",
            EntryScope::Wildcard => "wildcard",
        }
    }
}

/// `:443` is the default for HTTPS: the same registry as no port.
fn normalise_authority(authority: &str) -> String {
    authority
        .strip_suffix(":443")
        .unwrap_or(authority)
        .to_owned()
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.authority, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageReference({self})")
    }
}

impl FromStr for ImageReference {
    type Err = ImageReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(ImageReferenceError::Empty);
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) || input.contains("://") {
            return Err(ImageReferenceError::Malformed(input.to_owned()));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                let digest = Digest::parse(digest).map_err(|_| {
                    ImageReferenceError::Digest(input.to_owned(), digest.to_owned())
                })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag follows the last `:` after the last `/` (a `:` before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(ImageReferenceError::Tag(input.to_owned(), tag.to_owned()));
            }
        }
        let (authority, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.starts_with('[') =>
            {
                let registry: RegistryName = first
                    .parse()
                    .map_err(|_| ImageReferenceError::Host(input.to_owned(), first.to_owned()))?;
                if registry.path().is_some() || registry.is_wildcard() {
                    return Err(ImageReferenceError::Host(
                        input.to_owned(),
                        first.to_owned(),
                    ));
                }
                (normalise_authority(registry.authority()), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let repository = if authority == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() || !repository.split('/').all(valid_component) {
            return Err(ImageReferenceError::Repository(
                input.to_owned(),
                repository,
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        Ok(ImageReference {
            authority,
            repository,
            tag,
            digest,
        })
    }
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A repository component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(component: &str) -> bool {
    // The same rule as registry-string paths; reuse it through a throwaway registry string.
    !component.is_empty()
        && format!("x.invalid/{component}")
            .parse::<RegistryName>()
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ImageReference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3.19", "docker.io/library/alpine:3.19"),
            ("library/alpine", "docker.io/library/alpine:latest"),
            ("myorg/app:1.0", "docker.io/myorg/app:1.0"),
            ("index.docker.io/myorg/app", "docker.io/myorg/app:latest"),
            ("registry-1.docker.io/alpine", "docker.io/library/alpine:latest"),
            ("Registry.Example.com:5000/team/app:v1", "registry.example.com:5000/team/app:v1"),
            ("reg.example.com:443/app", "reg.example.com/app:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/a/b/c:tag", "localhost:5000/a/b/c:tag"),
            ("[::1]:5000/app:1", "[::1]:5000/app:1"),
            (
                "quay.io/org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "quay.io/org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            (
                "quay.io/org/app:v2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "quay.io/org/app:v2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:latest", "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).to_string(), want, "{input}");
        }
        let r = parse("reg.example.com:5000/team/app:v1");
        assert_eq!(
            (r.authority(), r.repository(), r.tag()),
            ("reg.example.com:5000", "team/app", Some("v1"))
        );
    }

    #[test]
    fn refuses_malformed_references() {
        let cases = [
            "",
            "https://reg.example.com/app",
            "reg.example.com/App",
            "app:",
            "app:-bad",
            "app@sha256:abc",
            "app@md5:0123456789abcdef0123456789abcdef",
            "reg.example.com/",
            "reg.example.com//app",
            "has space/app",
            "reg.example.com:99999/app",
            "reg..example.com/app",
        ];
        for input in cases {
            let err = input.parse::<ImageReference>().expect_err(input);
            assert!(!err.to_string().is_empty());
        }
    }

    fn registries(list: &[&str]) -> Vec<RegistryName> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn chosen(image: &str, list: &[RegistryName]) -> Option<String> {
        parse(image)
            .select_credential(list)
            .map(ToString::to_string)
    }

    #[test]
    fn selects_the_entry_of_a_whole_host() {
        let names: Vec<RegistryName> = [
            "reg.example.com/team/app",
            "reg.example.com*",
            "other.example.com:5000",
            "reg.example.com",
        ]
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
        let pick = |host: &str| select_for_host(host, &names).map(RegistryName::as_str);
        assert_eq!(pick("reg.example.com"), Some("reg.example.com"));
        assert_eq!(pick("REG.example.com:443"), Some("reg.example.com"));
        assert_eq!(
            pick("other.example.com:5000"),
            Some("other.example.com:5000")
        );
        assert_eq!(pick("other.example.com"), None);
        assert_eq!(pick("unknown.example.com"), None);
        // Only a repository-scoped entry: it serves no whole host.
        let scoped: Vec<RegistryName> = vec!["reg.example.com/team/app".parse().unwrap()];
        assert_eq!(select_for_host("reg.example.com", &scoped), None);
        let wild: Vec<RegistryName> = vec!["reg.example.com*".parse().unwrap()];
        assert_eq!(
            select_for_host("reg.example.com", &wild).map(RegistryName::as_str),
            Some("reg.example.com*")
        );
        assert_eq!(EntryScope::of(&names[0]), EntryScope::Repository);
        assert_eq!(EntryScope::of(&names[1]), EntryScope::Wildcard);
        assert_eq!(EntryScope::of(&names[3]), EntryScope::Host);
    }

    #[test]
    fn selects_the_longest_matching_registry() {
        // Anchore's cases, and the repairs.
        let list = registries(&[
            "docker.io/library/*",
            "docker.io/*",
            "gcr.io/myproject/*",
            "quay.io/org/app",
            "quay.io",
            "reg.example.com:5000",
            "reg.example.com*",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app",
        ]);
        let cases: [(&str, Option<&str>); 16] = [
            ("alpine", Some("docker.io/library/*")),
            ("library/alpine:3", Some("docker.io/library/*")),
            ("myorg/app", Some("docker.io/*")),
            ("index.docker.io/myorg/app", Some("docker.io/*")),
            ("gcr.io/myproject/app:1", Some("gcr.io/myproject/*")),
            ("gcr.io/myprojectevil/app", None),
            ("gcr.io/other/app", None),
            ("quay.io/org/app:2", Some("quay.io/org/app")),
            ("quay.io/org/other", Some("quay.io")),
            (
                "reg.example.com:5000/team/app",
                Some("reg.example.com:5000"),
            ),
            ("reg.example.com/team/app", Some("reg.example.com*")),
            ("reg.example.com.evil.net/team/app", None),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app",
                Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app"),
            ),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/other",
                Some("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            ),
            ("ghcr.io/org/app", None),
            ("REG.EXAMPLE.COM:5000/x", Some("reg.example.com:5000")),
        ];
        for (image, want) in cases {
            assert_eq!(chosen(image, &list).as_deref(), want, "{image}");
        }
    }

    #[test]
    fn port_443_is_no_port() {
        let list = registries(&["reg.example.com:443"]);
        assert_eq!(
            chosen("reg.example.com/app", &list).as_deref(),
            Some("reg.example.com:443")
        );
        let list = registries(&["reg.example.com"]);
        assert_eq!(
            chosen("reg.example.com:443/app", &list).as_deref(),
            Some("reg.example.com")
        );
        assert_eq!(chosen("reg.example.com:5000/app", &list), None);
    }
}
