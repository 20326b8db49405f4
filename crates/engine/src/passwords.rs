//! User passwords: Argon2id hashes (PHC strings), computed on a small pool of threads of its own.
//!
//! Argon2id costs ~19 MiB and tens of milliseconds per verification by design. Run on tokio's
//! blocking pool, a flood of wrong passwords ran one per request at once (hundreds of threads,
//! each leaving its 19 MiB in its own malloc arena: gigabytes held after the flood). Here one
//! worker thread per core (at most [`MAX_WORKERS`]) does all hashing: at most that many run at
//! once, the rest queue, and each worker verifies into one buffer of its own that it reuses, so
//! the memory for hashing is bounded by workers × the largest cost seen, and held steady.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use regkeep_domain::Secret;
use tokio::sync::oneshot;

use crate::EngineError;

/// Longest password accepted, in bytes (hashing cost grows with it).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Most hashing threads, whatever the core count.
pub const MAX_WORKERS: usize = 8;
/// The largest memory cost a stored hash may ask for (64 MiB, in KiB blocks); a hash asking for
/// more never matches instead of making regkeep allocate it.
const MAX_BLOCKS: usize = 64 * 1024;

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The hashing threads. Dropping the last handle ends them (their queue closes).
pub struct PasswordHashers {
    queue: Mutex<mpsc::Sender<Job>>,
    /// Verifications run (tests and benchmarks check single-flight with it).
    verifications: std::sync::atomic::AtomicU64,
    /// Jobs queued and not started; past [`MAX_QUEUED`] new ones are refused at once.
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

/// Most password jobs waiting for a thread: a flood cannot queue work without end (the rest are
/// answered "busy, retry" at once).
pub const MAX_QUEUED: usize = 64;

impl std::fmt::Debug for PasswordHashers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHashers").finish_non_exhaustive()
    }
}

impl PasswordHashers {
    /// Starts `workers` threads (at least 1, at most [`MAX_WORKERS`]).
    pub fn new(workers: usize) -> Arc<Self> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..workers.clamp(1, MAX_WORKERS) {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("regkeep-argon2-{n}"))
                .spawn(move || {
                    let mut memory: Vec<Block> = Vec::new();
                    loop {
                        // The lock is held only to take the next job.
                        let job = match receiver.lock() {
                            Ok(r) => r.recv(),
                            Err(p) => p.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Arc::new(PasswordHashers {
            queue: Mutex::new(sender),
            verifications: std::sync::atomic::AtomicU64::new(0),
            queued: Arc::default(),
        })
    }

    /// One per core.
    pub fn per_core() -> Arc<Self> {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, EngineError> {
        use std::sync::atomic::Ordering;
        if self.queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::Busy);
        }
        let (tx, rx) = oneshot::channel();
        let queued = self.queued.clone();
        let job: Job = Box::new(move |memory| {
            queued.fetch_sub(1, Ordering::AcqRel);
            // The caller went away (a dropped request): no work for nobody.
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(work(memory));
        });
        if self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .is_err()
        {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::internal(
                "the password hashing threads stopped",
            ));
        }
        rx.await
            .map_err(|_| EngineError::internal("a password hashing thread stopped"))
    }

    /// How many verifications ran since start.
    pub fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hashes a password with Argon2id and a random salt.
    ///
    /// # Errors
    /// [`EngineError::BadInput`] for an empty or over-long password.
    pub async fn hash(&self, password: &Secret) -> Result<String, EngineError> {
        check(password)?;
        let password = password.clone();
        self.run(move |_| {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| EngineError::internal(format!("password hashing failed: {e}")))
        })
        .await?
    }

    /// Whether `password` matches `hash` (compared in constant time). A malformed hash, or one
    /// asking for more than 64 MiB, never matches.
    ///
    /// # Errors
    /// [`EngineError::Busy`] when [`MAX_QUEUED`] checks wait already.
    pub async fn verify(&self, password: &Secret, hash: String) -> Result<bool, EngineError> {
        if password.expose().len() > MAX_PASSWORD_LEN {
            return Ok(false);
        }
        let password = password.clone();
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.run(move |memory| verify_with(password.expose().as_bytes(), &hash, memory))
            .await
    }
}

/// Recomputes `phc`'s hash of `password` into the worker's own `memory` (grown once to the cost
/// asked, then reused) and compares.
fn verify_with(password: &[u8], phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|actual| actual == expected)
}

/// A real Argon2id hash of a random password nobody knows, made once per process.
///
/// # Errors
/// [`EngineError::Internal`] when hashing fails.
pub async fn unmatchable_hash(hashers: &PasswordHashers) -> Result<String, EngineError> {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_try_init(|| async {
        let random: String = {
            use argon2::password_hash::rand_core::RngCore;
            let mut bytes = [0u8; 24];
            OsRng.fill_bytes(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        hashers.hash(&Secret::new(random)).await
    })
    .await
    .cloned()
}

/// Checks a new password's shape.
///
/// # Errors
/// [`EngineError::BadInput`] naming the problem.
pub fn check(password: &Secret) -> Result<(), EngineError> {
    if password.is_empty() {
        return Err(EngineError::BadInput(
            "password is empty: give a non-empty password".into(),
        ));
    }
    if password.expose().len() > MAX_PASSWORD_LEN {
        return Err(EngineError::BadInput(format!(
            "password is longer than {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let hashers = PasswordHashers::new(2);
        let h = hashers.hash(&Secret::new("correct horse")).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(hashers
            .verify(&Secret::new("correct horse"), h.clone())
            .await
            .unwrap());
        assert!(!hashers
            .verify(&Secret::new("wrong"), h.clone())
            .await
            .unwrap());
        assert!(!hashers
            .verify(&Secret::new("x"), "not a hash".into())
            .await
            .unwrap());
        assert!(hashers.hash(&Secret::new("")).await.is_err());
        // A hash made elsewhere (argon2's own verifier agrees) and other parameters verify too,
        // through the same reused buffer.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        assert!(hashers
            .verify(&Secret::new("pw"), small.clone())
            .await
            .unwrap());
        assert!(hashers
            .verify(&Secret::new("correct horse"), h)
            .await
            .unwrap());
        assert!(!hashers.verify(&Secret::new("pW"), small).await.unwrap());
        // A hash asking for 1 GiB is refused without allocating it.
        let huge = "$argon2id$v=19$m=1048576,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(!hashers
            .verify(&Secret::new("pw"), huge.into())
            .await
            .unwrap());
    }
}
