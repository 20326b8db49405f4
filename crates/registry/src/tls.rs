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
        let mut parts: Vec<String> = match std::fs::read_dir(dir.join(authority)) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| {
                    let meta = e.metadata().ok();
                    let modified = meta
                        .as_ref()
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos());
                    format!(
                        "{}:{}:{}",
                        e.file_name().to_string_lossy(),
                        meta.map_or(0, |m| m.len()),
                        modified
                    )
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        parts.sort();
        parts.join("|")
    }

    /// Where a CA certificate for `authority` is read from, for messages: the real path (the
    /// certs folder holds public certificates only, its default place is documented, and the
    /// operator who reads the message needs the path), or the setting when there is no folder.
    pub(crate) fn ca_file_hint(&self, authority: &str) -> String {
        match &self.certs_dir {
            Some(dir) => dir.join(authority).join("ca.crt").display().to_string(),
            None => format!("tls.certs_dir/{authority}/ca.crt"),
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
        if let Some(dir) = &self.certs_dir {
            let folder = dir.join(authority);
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
