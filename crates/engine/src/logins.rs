//! Password logins that cannot be turned against the server (docs/design.md §3.8):
//! - verified credentials are remembered for a short time (keyed by an HMAC of the parsed user
//!   and password under a per-process key: never the password, never a hash to test guesses
//!   against), and wrong ones for a shorter time;
//! - one verification per distinct credential at a time: concurrent requests with the same
//!   credential wait for its result instead of each running Argon2id;
//! - failed logins are throttled per client address and per user; a user's throttle does not
//!   apply to addresses that logged in as that user before, and a remembered credential is served
//!   without touching either, so a correct password is not locked out by someone else's guesses;
//! - every change that must end a login (password change, user disabled or deleted, account
//!   disabled or deleted) bumps a generation: the caches are emptied, and a verification that
//!   started before the change cannot put its result back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use hmac::{Hmac, Mac};
use rand::RngCore;
use regkeep_domain::entities::ApiKeyRecord;
use regkeep_domain::{ApiKeyId, Secret, TtlMap, WhenFull};
use sha2::Sha256;

use crate::{Caller, EngineError};

/// Most entries of each map; past this a map is emptied rather than grown (a flood of distinct
/// credentials must not grow memory).
const MAX_ENTRIES: usize = 10_000;
/// How long a wrong credential is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// How long an address that logged in as a user stays exempt from that user's throttle.
const KNOWN_ADDRESS_TTL: Duration = Duration::from_secs(24 * 3600);

/// Throttling of failed logins.
#[derive(Clone, Copy, Debug)]
pub struct LoginLimits {
    /// Failures one client address may make in a burst, then one per `address_period`.
    pub address_burst: u32,
    pub address_period: Duration,
    /// Failures against one user name in a burst, then one per `user_period`.
    pub user_burst: u32,
    pub user_period: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            address_burst: 10,
            address_period: Duration::from_secs(2),
            user_burst: 10,
            user_period: Duration::from_secs(5),
        }
    }
}

type Fingerprint = [u8; 32];

struct Remembered {
    /// Verified credentials, until the login cache's time is up.
    valid: TtlMap<Fingerprint, Caller>,
    /// Wrong credentials, for [`NEGATIVE_TTL`].
    wrong: TtlMap<Fingerprint, ()>,
    /// (user, address) pairs that logged in, for [`KNOWN_ADDRESS_TTL`]. When full, a new pair is
    /// not kept (never everyone's exemption at once).
    known: TtlMap<(String, IpAddr), ()>,
    /// API keys looked up (their records and the callers they make), until the login cache's
    /// time is up; the secret is checked against the record on every request.
    keys: TtlMap<ApiKeyId, Arc<KnownKey>>,
    /// Bumped by every invalidation; a verification inserts only under the generation it began in.
    generation: u64,
}

impl Default for Remembered {
    fn default() -> Self {
        Remembered {
            valid: TtlMap::new(MAX_ENTRIES, WhenFull::Clear),
            wrong: TtlMap::new(MAX_ENTRIES, WhenFull::Clear),
            known: TtlMap::new(MAX_ENTRIES, WhenFull::Refuse),
            keys: TtlMap::new(MAX_ENTRIES, WhenFull::Clear),
            generation: 0,
        }
    }
}

/// What `Engine::login` keeps between requests.
pub struct Logins {
    key: [u8; 32],
    ttl: Duration,
    remembered: Mutex<Remembered>,
    /// One lock per credential being verified now (single-flight).
    in_flight: Mutex<HashMap<Fingerprint, Arc<tokio::sync::Mutex<()>>>>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_user: DefaultKeyedRateLimiter<String>,
    /// Until when an address or a user is refused without verifying (a std Mutex each: held
    /// only to read or write, never across an await).
    blocked_addresses: Mutex<TtlMap<IpAddr, ()>>,
    blocked_users: Mutex<TtlMap<String, ()>>,
    /// Unfinished checks per user and per address.
    in_progress: Mutex<HashMap<Running, usize>>,
    /// API keys whose last use was written in the last [`crate::api_keys::TOUCH_EVERY`].
    touched: Mutex<TtlMap<ApiKeyId, ()>>,
}

/// An API key as remembered: its record (hash, expiry, revocation) and the caller it makes.
pub(crate) struct KnownKey {
    pub(crate) record: ApiKeyRecord,
    pub(crate) caller: Caller,
    /// Whether the user who made it still existed when it was looked up.
    pub(crate) maker_exists: bool,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logins")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn quota(burst: u32, period: Duration) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Logins {
    pub fn new(ttl: Duration, limits: LoginLimits) -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Logins {
            key,
            ttl,
            remembered: Mutex::default(),
            in_flight: Mutex::default(),
            by_address: governor::RateLimiter::keyed(quota(
                limits.address_burst,
                limits.address_period,
            )),
            by_user: governor::RateLimiter::keyed(quota(limits.user_burst, limits.user_period)),
            blocked_addresses: Mutex::new(TtlMap::new(MAX_ENTRIES, WhenFull::Clear)),
            blocked_users: Mutex::new(TtlMap::new(MAX_ENTRIES, WhenFull::Clear)),
            in_progress: Mutex::default(),
            touched: Mutex::new(TtlMap::new(MAX_ENTRIES, WhenFull::Clear)),
        }
    }

    fn fingerprint(&self, user: &str, password: &Secret) -> Fingerprint {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC-SHA256 takes a key of any length");
        mac.update(&(user.len() as u64).to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(password.expose().as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The remembered answer for a credential, if any: `Some(Ok)` verified, `Some(Err)` wrong.
    fn recall(&self, fp: &Fingerprint) -> Option<Result<Caller, EngineError>> {
        let r = self.remembered();
        let now = Instant::now();
        if let Some(caller) = r.valid.get(fp, now) {
            return Some(Ok(caller.clone()));
        }
        if r.wrong.get(fp, now).is_some() {
            return Some(Err(EngineError::Unauthorized));
        }
        None
    }

    /// Forgets every remembered login: the next request of every credential is verified again.
    pub fn invalidate(&self) {
        let mut r = self.remembered();
        r.generation += 1;
        r.valid.clear();
        r.wrong.clear();
        r.keys.clear();
    }

    /// Forgets every remembered API key (password logins stay): the next request of every key
    /// is checked against the database again, and a lookup under way is not remembered.
    pub(crate) fn forget_keys(&self) {
        let mut r = self.remembered();
        r.generation += 1;
        r.keys.clear();
    }

    /// The invalidation generation now (a lookup remembers its answer only under the generation
    /// it began in).
    pub(crate) fn generation(&self) -> u64 {
        self.remembered().generation
    }

    /// The remembered API key `id`, if any.
    pub(crate) fn known_key(&self, id: &ApiKeyId) -> Option<Arc<KnownKey>> {
        self.remembered().keys.get(id, Instant::now()).cloned()
    }

    /// Remembers a key looked up under `generation` (not when an invalidation came between);
    /// gives it back to use.
    pub(crate) fn remember_key(&self, key: KnownKey, generation: u64) -> Arc<KnownKey> {
        let key = Arc::new(key);
        let mut r = self.remembered();
        if r.generation == generation && !self.ttl.is_zero() {
            let now = Instant::now();
            let until = regkeep_domain::ttl_map::deadline(now, self.ttl);
            r.keys
                .insert(key.record.key_id.clone(), key.clone(), until, now);
        }
        key
    }

    /// Whether the key's last use is due to be written (then it is counted as written).
    pub(crate) fn touch_due(&self, id: &ApiKeyId, now: Instant) -> bool {
        let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        if touched.get(id, now).is_some() {
            return false;
        }
        touched.insert(id.clone(), (), now + crate::api_keys::TOUCH_EVERY, now);
        true
    }

    /// How long `address` (and `user`, unless `address` logged in as it before) must wait.
    fn blocked(&self, user: &str, address: Option<IpAddr>) -> Option<Duration> {
        if let Some(address) = address {
            if let Some(wait) = wait_of(&self.blocked_addresses, &address) {
                return Some(wait);
            }
            let known = self
                .remembered()
                .known
                .get(&(user.to_owned(), address), Instant::now())
                .is_some();
            if known {
                return None;
            }
        }
        wait_of(&self.blocked_users, &user.to_owned())
    }

    /// Counts a failure against `address` and `user`; past their quota they are blocked. An
    /// address that logged in as `user` before is not counted against the user.
    fn failed(&self, user: &str, address: Option<IpAddr>) {
        let clock = DefaultClock::default();
        let mut exempt = false;
        if let Some(address) = address {
            self.address_failed(address);
            exempt = self
                .remembered()
                .known
                .get(&(user.to_owned(), address), Instant::now())
                .is_some();
        }
        if !exempt {
            let key = user.to_owned();
            if let Err(not_until) = self.by_user.check_key(&key) {
                let until = Instant::now() + not_until.wait_time_from(clock.now());
                block(&self.blocked_users, key, until);
            }
        }
        if self.by_user.len() > MAX_ENTRIES {
            self.by_user.retain_recent();
        }
    }

    /// Counts a failure against `address`; past its quota it is blocked.
    fn address_failed(&self, address: IpAddr) {
        if let Err(not_until) = self.by_address.check_key(&address) {
            let until = Instant::now() + not_until.wait_time_from(DefaultClock::default().now());
            block(&self.blocked_addresses, address, until);
        }
        if self.by_address.len() > MAX_ENTRIES {
            self.by_address.retain_recent();
        }
    }

    /// How long `address` must wait before presenting the API key `name` again: never when
    /// the key was used from there lately (others' failures from a shared address, a NAT or an
    /// IPv6 /64, never lock out a working machine).
    pub(crate) fn blocked_address(
        &self,
        key: Option<&ApiKeyId>,
        address: Option<IpAddr>,
    ) -> Option<Duration> {
        let address = address?;
        let wait = wait_of(&self.blocked_addresses, &address)?;
        let known = key.is_some_and(|key| {
            self.remembered()
                .known
                .get(&(known_key_name(key), address), Instant::now())
                .is_some()
        });
        (!known).then_some(wait)
    }

    /// Remembers that the API key `key` was used from `address` (see
    /// [`Logins::blocked_address`]).
    pub(crate) fn key_used_from(&self, key: &ApiKeyId, address: Option<IpAddr>) {
        if let Some(address) = address {
            let now = Instant::now();
            self.remembered().known.insert(
                (known_key_name(key), address),
                (),
                now + KNOWN_ADDRESS_TTL,
                now,
            );
        }
    }

    /// Counts a failed API key against `address` only. Never against the key: its id is not
    /// secret, and a 256-bit secret is not guessed, so a per-key block would only let anyone who
    /// saw an id lock its machines out.
    pub(crate) fn failed_key(&self, address: Option<IpAddr>) {
        if let Some(address) = address {
            self.address_failed(address);
        }
    }

    /// Starts a check for `user` from `address`: at most [`MAX_IN_PROGRESS`] unfinished checks
    /// per address and per user, so guesses sent all at once cannot all run before the first
    /// failures block them. `Err` is the wait.
    fn begin(&self, user: &str, address: Option<IpAddr>) -> Result<Attempt<'_>, Duration> {
        let mut running = self.in_progress.lock().unwrap_or_else(|p| p.into_inner());
        let user_key = Running::User(user.to_owned());
        let address_key = address.map(Running::Address);
        let full = |k: &Running| running.get(k).is_some_and(|n| *n >= MAX_IN_PROGRESS);
        if full(&user_key) || address_key.as_ref().is_some_and(full) {
            return Err(Duration::from_secs(1));
        }
        for key in std::iter::once(user_key).chain(address_key) {
            *running.entry(key).or_default() += 1;
        }
        Ok(Attempt {
            logins: self,
            user: user.to_owned(),
            address,
            finished: false,
        })
    }
}

/// Unfinished checks are counted per user name and per client address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Running {
    User(String),
    Address(IpAddr),
}

/// Most unfinished password checks per client address and per user name.
const MAX_IN_PROGRESS: usize = 4;

/// A check under way. Dropped unfinished (its request went away mid-check), it counts as a
/// failure: dropping requests is no way around the throttle.
struct Attempt<'a> {
    logins: &'a Logins,
    user: String,
    address: Option<IpAddr>,
    finished: bool,
}

impl Attempt<'_> {
    fn finish(mut self, failed: bool) {
        if failed {
            self.logins.failed(&self.user, self.address);
        }
        self.finished = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.logins.failed(&self.user, self.address);
        }
        let mut running = self
            .logins
            .in_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let keys = std::iter::once(Running::User(std::mem::take(&mut self.user)))
            .chain(self.address.map(Running::Address));
        for key in keys {
            if let Some(n) = running.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    running.remove(&key);
                }
            }
        }
    }
}

/// The name an API key is known under among the (user, address) pairs that logged in (apart
/// from every user name: those never hold a `:`).
fn known_key_name(key: &ApiKeyId) -> String {
    format!("apikey:{key}")
}

/// Whole seconds, rounded up (a `Retry-After` that is waited out must be enough), at least 1.
pub(crate) fn seconds_up(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The key a client address is throttled under: IPv4 as it is, IPv6 by its /64 (one host
/// usually holds a whole /64).
pub(crate) fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
        v4 => v4,
    }
}

/// Removes the single-flight entry of a credential however its check ends (a dropped request
/// included).
struct FlightGuard<'a> {
    logins: &'a Logins,
    fp: Fingerprint,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.logins
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.fp);
    }
}

/// How long until `key` is no longer blocked, if it is.
fn wait_of<K: std::hash::Hash + Eq>(map: &Mutex<TtlMap<K, ()>>, key: &K) -> Option<Duration> {
    let map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.remaining(key, Instant::now())
}

fn block<K: std::hash::Hash + Eq>(map: &Mutex<TtlMap<K, ()>>, key: K, until: Instant) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.insert(key, (), until, Instant::now());
}

impl crate::accounts::Accounts {
    /// Logs in with a user name and password from `address` (the client, when known).
    ///
    /// # Errors
    /// [`EngineError::Unauthorized`] for a wrong credential; [`EngineError::Refused`] for the
    /// right one of a user whose account is disabled or being deleted;
    /// [`EngineError::Throttled`] while the address or user has failed too often.
    pub async fn login(
        &self,
        user: &str,
        password: &Secret,
        address: Option<IpAddr>,
    ) -> Result<Caller, EngineError> {
        let logins = &self.logins;
        // A name that cannot exist is refused without a check or a throttle entry (and keys stay
        // short: user names are bounded).
        if user.parse::<regkeep_domain::UserName>().is_err()
            || password.expose().len() > crate::passwords::MAX_PASSWORD_LEN
        {
            return Err(EngineError::Unauthorized);
        }
        let address = address.map(client_key);
        let fp = logins.fingerprint(user, password);
        if let Some(answer) = logins.recall(&fp) {
            return answer.and_then(enabled_only);
        }
        if let Some(wait) = logins.blocked(user, address) {
            return Err(EngineError::Throttled {
                retry_after: seconds_up(wait),
            });
        }
        // Single-flight: the first request verifies; the others wait for it, then find its answer.
        let flight = {
            let mut in_flight = logins.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.entry(fp).or_default().clone()
        };
        let _turn = flight.lock().await;
        let _flight = FlightGuard { logins, fp };
        if let Some(answer) = logins.recall(&fp) {
            return answer.and_then(enabled_only);
        }
        let attempt = logins
            .begin(user, address)
            .map_err(|wait| EngineError::Throttled {
                retry_after: seconds_up(wait),
            })?;
        let generation = logins.remembered().generation;
        let answer = self.authenticate(user, password).await;
        {
            let mut r = logins.remembered();
            if r.generation == generation {
                match &answer {
                    Ok(caller) => {
                        let now = Instant::now();
                        let until = regkeep_domain::ttl_map::deadline(now, logins.ttl);
                        r.valid.insert(fp, caller.clone(), until, now);
                        if let Some(address) = address {
                            let pair = (user.to_owned(), address);
                            r.known.insert(pair, (), now + KNOWN_ADDRESS_TTL, now);
                        }
                    }
                    Err(EngineError::Unauthorized) => {
                        let now = Instant::now();
                        r.wrong.insert(fp, (), now + NEGATIVE_TTL, now);
                    }
                    Err(_) => {}
                }
            }
        }
        attempt.finish(matches!(answer, Err(EngineError::Unauthorized)));
        answer.and_then(enabled_only)
    }
}

/// A right password of a user whose account is not enabled is refused with 403, as Anchore
/// does (the credential is right; the account's state refuses it). It is not a failed login:
/// it is remembered like any verified one, so repeating it costs no hash check.
pub(crate) fn enabled_only(caller: Caller) -> Result<Caller, EngineError> {
    use regkeep_domain::AccountState;
    let account = &caller.account;
    match caller.account_state {
        AccountState::Enabled => Ok(caller),
        state @ (AccountState::Disabled | AccountState::Deleting) => {
            Err(EngineError::Refused(crate::Refusal::AccountNotEnabled {
                account: account.clone(),
                state,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_separate_user_and_password() {
        let l = Logins::new(Duration::from_secs(30), LoginLimits::default());
        let a = l.fingerprint("ab", &Secret::new("c"));
        assert_ne!(a, l.fingerprint("a", &Secret::new("bc")));
        assert_eq!(a, l.fingerprint("ab", &Secret::new("c")));
    }

    #[test]
    fn failures_block_the_address_then_the_user_but_not_known_addresses() {
        let limits = LoginLimits {
            address_burst: 2,
            address_period: Duration::from_secs(3600),
            user_burst: 3,
            user_period: Duration::from_secs(3600),
        };
        let l = Logins::new(Duration::from_secs(30), limits);
        let attacker: IpAddr = "198.51.100.1".parse().unwrap();
        let other: IpAddr = "198.51.100.2".parse().unwrap();
        let friend: IpAddr = "198.51.100.3".parse().unwrap();
        let now = Instant::now();
        l.remembered()
            .known
            .insert(("alice".into(), friend), (), now + KNOWN_ADDRESS_TTL, now);
        assert!(l.blocked("alice", Some(attacker)).is_none());
        for _ in 0..3 {
            l.failed("alice", Some(attacker));
        }
        assert!(
            l.blocked("alice", Some(attacker)).is_some(),
            "address over its quota"
        );
        assert!(
            l.blocked("bob", Some(attacker)).is_some(),
            "the address, whatever the user"
        );
        l.failed("alice", Some(other));
        assert!(
            l.blocked("alice", Some(other)).is_some(),
            "the user over its quota"
        );
        assert!(
            l.blocked("alice", Some(friend)).is_none(),
            "an address alice used is exempt"
        );
        assert!(l.blocked("carol", Some(other)).is_none());
    }

    #[test]
    fn invalidation_empties_and_bumps() {
        let l = Logins::new(Duration::from_secs(30), LoginLimits::default());
        let fp = l.fingerprint("u", &Secret::new("p"));
        let now = Instant::now();
        l.remembered().wrong.insert(fp, (), now + NEGATIVE_TTL, now);
        assert!(matches!(
            l.recall(&fp),
            Some(Err(EngineError::Unauthorized))
        ));
        let g = l.remembered().generation;
        l.invalidate();
        assert!(l.recall(&fp).is_none());
        assert_eq!(l.remembered().generation, g + 1);
    }
}
