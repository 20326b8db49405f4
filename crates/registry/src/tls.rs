//! TLS settings for registries: the built-in web roots, plus a global CA bundle, plus
//! per-registry CA certificates in a `certs.d`-style folder (`<certs_dir>/<host[:port]>/*.crt`,
//! the layout Docker and containers/image use), or no verification at all for registries
//! registered with `registry_verify: false`.

use std::path::{Path, PathBuf};

/// A CA file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA certificates from {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path} holds no PEM certificate: give a PEM file with one or more `-----BEGIN CERTIFICATE-----` blocks")]
    NoCertificate { path: PathBuf },
}

/// How registries' certificates are checked.
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// Extra roots trusted for every registry.
    global_roots: Vec<reqwest::Certificate>,
    /// Where per-registry CA folders live.
    certs_dir: Option<PathBuf>,
}

impl TlsSettings {
    /// Loads the global bundle now (a bad file is a start-up error); per-registry folders are read
    /// when a registry is first contacted.
    ///
    /// # Errors
    /// [`TlsError`] when the bundle cannot be read or holds no certificate.
    pub fn new(ca_bundle: Option<&Path>, certs_dir: Option<PathBuf>) -> Result<Self, TlsError> {
        let global_roots = match ca_bundle {
            Some(path) => read_pem(path)?,
            None => Vec::new(),
        };
        Ok(TlsSettings {
            global_roots,
            certs_dir,
        })
    }

    /// What the per-registry CA folder holds now (names, sizes, modification times): part of the
    /// client cache key, so that changing the folder makes a new client.
    pub(crate) fn fingerprint(&self, authority: &str, verify: bool) -> String {
        if !verify {
            return String::new();
        }
        let Some(dir) = &self.certs_dir else {
            return String::new();
        };
        let mut parts: Vec<String> = Vec::new();
        for folder in folders(authority) {
            let Ok(entries) = std::fs::read_dir(dir.join(&folder)) else {
                continue;
            };
            parts.extend(entries.filter_map(Result::ok).map(|e| {
                let meta = e.metadata().ok();
                let modified = meta
                    .as_ref()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!(
                    "{folder}/{}:{}:{}",
                    e.file_name().to_string_lossy(),
                    meta.map_or(0, |m| m.len()),
                    modified
                )
            }));
        }
        parts.sort();
        parts.join("|")
    }

    /// Where a CA certificate for `authority` is read from, for messages: the real path (the
    /// certs folder holds public certificates only, its default place is documented, and the
    /// operator who reads the message needs the path), or the setting when there is no folder.
    pub(crate) fn ca_file_hint(&self, authority: &str) -> String {
        let folder = folders(authority).swap_remove(0);
        match &self.certs_dir {
            Some(dir) => dir.join(folder).join("ca.crt").display().to_string(),
            None => format!("tls.certs_dir/{folder}/ca.crt"),
        }
    }

    pub(crate) fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
        authority: &str,
        verify: bool,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        if !verify {
            return Ok(builder.danger_accept_invalid_certs(true));
        }
        for cert in &self.global_roots {
            builder = builder.add_root_certificate(cert.clone());
        }
        let dirs = self.certs_dir.iter();
        for folder in dirs.flat_map(|dir| folders(authority).into_iter().map(|f| dir.join(f))) {
            if let Ok(entries) = std::fs::read_dir(&folder) {
                let mut files: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "crt" || x == "pem"))
                    .collect();
                files.sort();
                for file in files {
                    for cert in read_pem(&file)? {
                        builder = builder.add_root_certificate(cert);
                    }
                }
            }
        }
        Ok(builder)
    }
}

/// The folders of `certs_dir` a registry's CAs are read from, the one to name first. The
/// default HTTPS port's folder is named without it, as in Docker's layout (`certs.d/host/`), and
/// `host:443/` is read too: an image reference drops `:443`, a registry entry may keep it, and
/// both must find the same CA.
fn folders(authority: &str) -> Vec<String> {
    // The part after an IPv6 literal's `]` holds the port, if any.
    let has_port = authority
        .rsplit(']')
        .next()
        .is_some_and(|s| s.contains(':'));
    match authority.strip_suffix(":443") {
        Some(host) => vec![host.to_owned(), authority.to_owned()],
        None if !has_port => vec![authority.to_owned(), format!("{authority}:443")],
        None => vec![authority.to_owned()],
    }
}

fn read_pem(path: &Path) -> Result<Vec<reqwest::Certificate>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&bytes).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image reference drops `:443` and a registry entry may keep it: both read the CAs of
    /// `certs.d/host/` and `certs.d/host:443/`, and messages name Docker's `host/`.
    #[test]
    fn the_default_port_reads_both_folders_and_names_the_portless_one() {
        let certs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(certs.path().join("reg.example.com")).unwrap();
        std::fs::write(certs.path().join("reg.example.com/ca.crt"), "x").unwrap();
        let tls = TlsSettings::new(None, Some(certs.path().to_owned())).unwrap();
        let with_port = tls.fingerprint("reg.example.com:443", true);
        assert!(with_port.contains("reg.example.com/ca.crt"), "{with_port}");
        assert_eq!(with_port, tls.fingerprint("reg.example.com", true));
        // A file in the `:443` folder changes what both read.
        std::fs::create_dir_all(certs.path().join("reg.example.com:443")).unwrap();
        std::fs::write(certs.path().join("reg.example.com:443/extra.crt"), "y").unwrap();
        let both = tls.fingerprint("reg.example.com:443", true);
        assert!(both.contains("reg.example.com:443/extra.crt"), "{both}");
        assert_ne!(both, with_port);
        assert_eq!(
            both,
            tls.fingerprint("reg.example.com", true),
            "the same CAs either way"
        );
        // Another port is its own folder only.
        assert_eq!(tls.fingerprint("reg.example.com:5000", true), "");
        assert_eq!(folders("[::1]"), ["[::1]", "[::1]:443"]);
        assert_eq!(folders("[::1]:5000"), ["[::1]:5000"]);
        assert_eq!(
            tls.ca_file_hint("reg.example.com:443"),
            certs
                .path()
                .join("reg.example.com/ca.crt")
                .display()
                .to_string()
        );
        assert_eq!(
            TlsSettings::default().ca_file_hint("reg.example.com:5000"),
            "tls.certs_dir/reg.example.com:5000/ca.crt"
        );
    }
}
