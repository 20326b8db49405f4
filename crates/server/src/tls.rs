//! TLS on the listener (rustls): the certificate chain and key from `server_tls.cert_file` and
//! `server_tls.key_file`, read at start (a bad pair is a start-up error) and read again when
//! either file changes (checked every few seconds) or on SIGHUP, so a renewed certificate
//! (cert-manager, certbot) takes effect without a restart. A pair that fails to load on reload
//! is logged and the one in use is kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the files are looked at for changes.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// The certificate in use, replaced on reload.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

impl ReloadingCert {
    /// Reads the pair now and answers the TLS configuration that serves it.
    ///
    /// # Errors
    /// A message naming the file and what is wrong with it.
    pub fn server_config(
        cert_file: &Path,
        key_file: &Path,
    ) -> anyhow::Result<(Arc<rustls::ServerConfig>, Arc<ReloadingCert>)> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load(&provider, cert_file, key_file)?;
        let resolver = Arc::new(ReloadingCert {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(Arc::new(key)),
            provider: provider.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("cannot set up TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((Arc::new(config), resolver))
    }

    /// Loads the pair again; keeps the current one when that fails.
    pub fn reload(&self, why: &str) {
        match load(&self.provider, &self.cert_file, &self.key_file) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
                info!(cert_file = %self.cert_file.display(), why, "reloaded the TLS certificate");
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), why, "the TLS certificate could not be reloaded; the one in use is kept")
            }
        }
    }

    /// Reloads on SIGHUP and when either file's modification time or size changes, until
    /// `cancel`.
    pub async fn watch_until_stopped(self: Arc<Self>, cancel: CancellationToken) {
        use crate::reload::stamp;
        let mut seen = (stamp(&self.cert_file), stamp(&self.key_file));
        let mut hangups = crate::reload::Hangups::new();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = hangups.next() => self.reload("SIGHUP"),
                () = tokio::time::sleep(WATCH_EVERY) => {
                    let now = (stamp(&self.cert_file), stamp(&self.key_file));
                    if now != seen {
                        seen = now;
                        self.reload("the files changed");
                    }
                }
            }
        }
    }
}

fn load(
    provider: &rustls::crypto::CryptoProvider,
    cert_file: &Path,
    key_file: &Path,
) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "server_tls.cert_file {}: cannot read a PEM certificate chain: {e}",
                cert_file.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "server_tls.cert_file {} holds no certificate: give the PEM chain, server certificate first",
            cert_file.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        anyhow::anyhow!(
            "server_tls.key_file {}: cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            key_file.display()
        )
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        anyhow::anyhow!(
            "server_tls.cert_file {} and key_file {} do not make a usable pair: {e}",
            cert_file.display(),
            key_file.display()
        )
    })?;
    Ok(certified)
}
