//! Shared by the hermetic and the peer test binaries (included with `#[path]`): the server's
//! logs captured in memory, and the check that no secret reached a text.

use std::sync::{Arc, Mutex, OnceLock};

/// Logs of this test process, captured at debug level.
pub fn captured_logs() -> String {
    let buffer = capture_logs();
    let bytes = buffer.lock().unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Installs the capturing subscriber (once per process) and gives its buffer.
pub fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = CaptureWriter(buffer.clone());
            let _ = tracing_subscriber::fmt()
                .with_env_filter("debug,hyper=info,h2=info,sqlx=info,rustls=info,reqwest=debug")
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .try_init();
            buffer
        })
        .clone()
}

#[derive(Clone)]
struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fails when any of `secrets` appears in `text`, naming where.
pub fn assert_no_secrets(place: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(!text.contains(secret), "a secret appeared in {place}");
    }
}
