//! Time: [`Timestamp`] (whole seconds, UTC, shown as RFC 3339 `2026-11-29T01:02:03Z`) and the
//! injected [`Clock`], so that everything time decides can be driven by tests.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time, in whole seconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn from_unix(seconds: i64) -> Self {
        Timestamp(seconds)
    }

    pub fn unix(self) -> i64 {
        self.0
    }

    /// RFC 3339 in UTC with a `Z`, e.g. `2026-11-29T01:02:03Z`.
    pub fn to_rfc3339(self) -> String {
        match OffsetDateTime::from_unix_timestamp(self.0) {
            Ok(t) => {
                let d = t.date();
                let tm = t.time();
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                    d.year(),
                    u8::from(d.month()),
                    d.day(),
                    tm.hour(),
                    tm.minute(),
                    tm.second()
                )
            }
            // Out of range for a calendar date: cannot come from a clock; show the raw number.
            Err(_) => self.0.to_string(),
        }
    }

    /// Parses RFC 3339 (any offset).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .map(|t| Timestamp(t.unix_timestamp()))
    }

    /// Parses a time as Anchore's API takes it: RFC 3339 (any offset), or a date and time without
    /// an offset, read as UTC, with a space or a `T` between them and optional fractions of a
    /// second (`2026-12-01 04:38:13.262543`, Python's `str(datetime)`, which Anchore's clients
    /// send). Fractions are dropped: regkeep keeps times to the second.
    pub fn parse_api(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Some(t) = Self::parse_rfc3339(text) {
            return Some(t);
        }
        let naive = time::macros::format_description!(
            version = 2,
            "[year]-[month]-[day][first [ ][T]][hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        time::PrimitiveDateTime::parse(text, naive)
            .ok()
            .map(|t| Timestamp(t.assume_utc().unix_timestamp()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time")))
    }
}

/// In the OpenAPI document: an RFC 3339 text (what [`Serialize`] writes).
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("A time, RFC 3339, UTC, whole seconds"))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

/// The source of the current time. Injected wherever time decides behaviour.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock: the one place that reads it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned reading of the wall clock
    fn now(&self) -> Timestamp {
        Timestamp(OffsetDateTime::now_utc().unix_timestamp())
    }
}

/// A clock that is moved by hand: tests and simulations of days of token renewals and polls.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn at(t: Timestamp) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(t.0))
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the clock forward by whole seconds of `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let seconds = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.0
            .fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        let t = Timestamp::from_unix(1_795_914_123);
        assert_eq!(t.to_rfc3339(), "2026-11-29T01:02:03Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-29T01:02:03+01:00")
                .map(|t| t.to_rfc3339())
                .as_deref(),
            Some("2026-11-29T00:02:03Z")
        );
    }

    #[test]
    fn parses_the_times_anchore_clients_send() {
        let t = |s: &str| Timestamp::parse_api(s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2026-12-01 04:38:13.262543").as_deref(),
            Some("2026-12-01T04:38:13Z")
        );
        assert_eq!(
            t("2026-12-01T04:38:13").as_deref(),
            Some("2026-12-01T04:38:13Z")
        );
        assert_eq!(
            t("2026-12-01 04:38:13").as_deref(),
            Some("2026-12-01T04:38:13Z")
        );
        assert_eq!(
            t("2026-12-01T05:38:13+01:00").as_deref(),
            Some("2026-12-01T04:38:13Z")
        );
        assert_eq!(t("yesterday"), None);
        assert_eq!(t("2026-13-01 04:38:13"), None);
    }

    #[test]
    fn a_manual_clock_moves_by_hand() {
        let clock = ManualClock::at(Timestamp::from_unix(100));
        clock.advance(std::time::Duration::from_secs(60));
        assert_eq!(clock.now(), Timestamp::from_unix(160));
        clock.set(Timestamp::from_unix(7));
        assert_eq!(clock.now(), Timestamp::from_unix(7));
    }
}
