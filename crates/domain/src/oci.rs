//! OCI image types (image-spec / distribution-spec, and Docker schema 2 which has the same shape):
//! platforms, descriptors, manifests and indexes, media types, digests and the image layout's
//! fixed files. Pure data and rules: the registry client, the server and the CLI's pull all read
//! manifests with these.

use serde::{Deserialize, Serialize};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// What regkeep asks registries for, most specific first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
/// Largest manifest accepted (the distribution spec's recommended limit).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// An operating system / architecture / variant, e.g. `linux/arm64/v8`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    ///
    /// # Errors
    /// A message saying the form when it does not fit.
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok = |s: &&str| platform_part_ok(s);
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*variant).into()),
            }),
            _ => Err(format!(
                "platform `{text}` is not `os/arch[/variant]`, e.g. `linux/amd64` or `linux/arm64/v8`"
            )),
        }
    }

    /// linux/amd64.
    pub fn default_linux() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    /// Whether an index entry's platform serves this one (a variant asked for must match; none
    /// asked for takes any).
    pub fn served_by(&self, candidate: &Platform) -> bool {
        candidate.os == self.os
            && candidate.architecture == self.architecture
            && (self.variant.is_none() || candidate.variant == self.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image manifest or an index / manifest list (the fields regkeep reads of either).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

impl Manifest {
    /// Checks what a registry put in the manifest that regkeep shows or uses as text: every
    /// digest is `sha256:<64 hex>`, platforms are short words, the media type is a media type.
    /// A manifest that fails is refused (nothing of it reaches an answer, a record or a log).
    ///
    /// # Errors
    /// What is wrong, without repeating the offending text.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.media_type {
            if !media_type_ok(t) {
                return Err("its mediaType is not a media type".into());
            }
        }
        for d in self
            .config
            .iter()
            .chain(&self.layers)
            .chain(&self.manifests)
        {
            if !is_sha256_digest(&d.digest) {
                return Err("it names a digest that is not sha256:<64 hex digits>".into());
            }
            if !d.media_type.is_empty() && !media_type_ok(&d.media_type) {
                return Err("it names a mediaType that is not a media type".into());
            }
            if let Some(p) = &d.platform {
                let parts = [Some(&p.os), Some(&p.architecture), p.variant.as_ref()];
                if !parts.into_iter().flatten().all(|s| platform_part_ok(s)) {
                    return Err(
                        "it names a platform that is not os/arch[/variant] of short words".into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// Whether this is an index / manifest list.
    pub fn is_index(&self) -> bool {
        !self.manifests.is_empty()
            || matches!(self.media_type.as_deref(), Some(OCI_INDEX | DOCKER_LIST))
    }

    /// The entry serving `platform`, or a message listing the platforms there are.
    ///
    /// # Errors
    /// No entry for the platform.
    pub fn entry_for(&self, platform: &Platform) -> Result<&Descriptor, String> {
        self.manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| platform.served_by(p)))
            .ok_or_else(|| {
                let there: Vec<String> = self
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                    .collect();
                format!(
                    "the index has no manifest for {platform}; it has {}",
                    if there.is_empty() {
                        "none with a platform".to_owned()
                    } else {
                        there.join(", ")
                    }
                )
            })
    }
}

/// The fields regkeep reads of an image config.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
}

impl ImageConfig {
    /// The fields with anything that is not what they should be dropped: platform words, and a
    /// `created` time made of the characters of RFC 3339.
    pub fn cleaned(self) -> ImageConfig {
        let word = |v: Option<String>| v.filter(|s| platform_part_ok(s));
        ImageConfig {
            created: self.created.filter(|c| {
                c.len() <= 40
                    && c.chars()
                        .all(|ch| ch.is_ascii_digit() || "-:T.Z+tz ".contains(ch))
            }),
            architecture: word(self.architecture),
            os: word(self.os),
            variant: word(self.variant),
        }
    }
}

/// A platform's os, architecture or variant: 1 to 32 of `[A-Za-z0-9._-]`.
pub fn platform_part_ok(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `type/subtype[+suffix]` of visible characters, at most 255.
pub fn media_type_ok(s: &str) -> bool {
    s.len() <= 255
        && s.contains('/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '/' | '_' | '-'))
}

/// `sha256:<64 lower-case hex digits>` of a finished SHA-256 hash: the form registries, layouts
/// and regkeep's answers use.
pub fn sha256_digest_text(hash: [u8; 32]) -> String {
    crate::Digest::of_sha256(hash).to_string()
}

/// Whether `digest` is `sha256:` and 64 lower-case hex digits (the only algorithm regkeep
/// verifies, and what every registry uses).
pub fn is_sha256_digest(digest: &str) -> bool {
    crate::Digest::parse(digest).is_ok_and(|d| d.is_sha256())
}

/// A Docker schema 2 image manifest rewritten with the OCI media types (manifest, config,
/// layers), the content descriptors unchanged, as an OCI image layout needs it (readers such as
/// skopeo's `oci:` transport take only OCI manifests from a layout). The bytes change, so the
/// manifest's digest does; config and layers keep theirs.
///
/// # Errors
/// Not a Docker schema 2 manifest, or a layer type with no OCI equivalent.
pub fn docker_manifest_to_oci(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    if value.get("mediaType").and_then(|v| v.as_str()) != Some(DOCKER_MANIFEST) {
        return Err("not a Docker schema 2 image manifest".into());
    }
    value["mediaType"] = OCI_MANIFEST.into();
    if let Some(config) = value.get_mut("config") {
        config["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    }
    if let Some(layers) = value.get_mut("layers").and_then(|l| l.as_array_mut()) {
        for layer in layers {
            let docker = layer
                .get("mediaType")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let oci = match docker {
                "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                    "application/vnd.oci.image.layer.v1.tar+gzip"
                }
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
                }
                "application/vnd.docker.image.rootfs.diff.tar" => {
                    "application/vnd.oci.image.layer.v1.tar"
                }
                other if other.starts_with("application/vnd.oci.") => continue,
                other => return Err(format!("layer type `{other}` has no OCI equivalent")),
            };
            layer["mediaType"] = oci.into();
        }
    }
    serde_json::to_vec(&value).map_err(|e| e.to_string())
}

/// The `oci-layout` file of an image layout.
pub const OCI_LAYOUT_FILE: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
/// The annotation naming a manifest's tag in an image layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/amd64").unwrap(),
            Platform::default_linux()
        );
        assert!(Platform::parse("linux").unwrap_err().contains("os/arch"));
        assert!(Platform::parse("linux//x").is_err());
        assert!(Platform::parse("linux/amd 64").is_err());
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        assert!(Platform::parse("linux/arm64").unwrap().served_by(&arm));
        assert!(!Platform::parse("linux/arm64/v7").unwrap().served_by(&arm));
        assert!(!Platform::default_linux().served_by(&arm));
    }

    #[test]
    fn index_entries() {
        let index: Manifest = serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"platform":{"os":"linux","architecture":"amd64"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":2,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#,
        )
        .unwrap();
        assert!(index.is_index());
        assert_eq!(
            index
                .entry_for(&Platform::parse("linux/arm64").unwrap())
                .unwrap()
                .digest,
            "sha256:bb"
        );
        let missing = index
            .entry_for(&Platform::parse("linux/s390x").unwrap())
            .unwrap_err();
        assert!(missing.contains("linux/amd64, linux/arm64/v8"), "{missing}");
    }

    #[test]
    fn docker_manifests_become_oci() {
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:cc","size":3},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:ll","size":9}]}"#;
        let oci: Manifest =
            serde_json::from_slice(&docker_manifest_to_oci(docker).unwrap()).unwrap();
        assert_eq!(oci.media_type.as_deref(), Some(OCI_MANIFEST));
        let config = oci.config.unwrap();
        assert_eq!(
            config.media_type,
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!((config.digest.as_str(), config.size), ("sha256:cc", 3));
        assert_eq!(
            oci.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(oci.layers[0].digest, "sha256:ll");
        assert!(docker_manifest_to_oci(
            br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#
        )
        .is_err());
        let odd = br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","layers":[{"mediaType":"x/y","digest":"sha256:a","size":1}]}"#;
        assert!(docker_manifest_to_oci(odd).unwrap_err().contains("x/y"));
    }

    #[test]
    fn digests() {
        let text = sha256_digest_text([0xab; 32]);
        assert_eq!(text, format!("sha256:{}", "ab".repeat(32)));
        assert!(is_sha256_digest(&text));
        assert!(is_sha256_digest(
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ));
        assert!(!is_sha256_digest("sha256:E3B0"));
        assert!(!is_sha256_digest(
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ));
        assert!(!is_sha256_digest(
            "sha256:../c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ));
    }
}
