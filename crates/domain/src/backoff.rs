//! [`Backoff`]: the one retry schedule regkeep uses (registry requests answered 429/5xx, ECR
//! token renewals that failed): exponential, capped, with ±50 % jitter so that many clients that
//! failed together do not retry together. The random draw is the caller's (`jitter`), so the
//! schedule itself is a pure function its tests can pin down.

use std::time::Duration;

/// Exponential backoff: `first × 2^(retry)`, times a factor (longer waits when throttled),
/// capped at `max`, then jittered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry, before jitter.
    pub first: Duration,
    /// The longest wait, before jitter.
    pub max: Duration,
}

/// The range jitter is drawn from: ±50 %.
pub const JITTER: std::ops::Range<f64> = 0.5..1.5;

impl Backoff {
    /// The wait before retry number `retry` (0 for the first), `factor` times longer (1 for
    /// none), scaled by `jitter` (drawn from [`JITTER`]; clamped to it).
    pub fn delay(&self, retry: u32, factor: u32, jitter: f64) -> Duration {
        let doublings = i32::try_from(retry.min(30)).unwrap_or(30);
        let base = self.first.as_secs_f64() * 2f64.powi(doublings) * f64::from(factor.max(1));
        let capped = base.min(self.max.as_secs_f64());
        let jitter = if jitter.is_finite() {
            jitter.clamp(JITTER.start, JITTER.end)
        } else {
            1.0
        };
        Duration::try_from_secs_f64(capped * jitter).unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        first: Duration::from_millis(250),
        max: Duration::from_secs(300),
    };

    #[test]
    fn doubles_per_retry_then_caps() {
        assert_eq!(B.delay(0, 1, 1.0), Duration::from_millis(250));
        assert_eq!(B.delay(1, 1, 1.0), Duration::from_millis(500));
        assert_eq!(B.delay(3, 1, 1.0), Duration::from_secs(2));
        assert_eq!(B.delay(30, 1, 1.0), Duration::from_secs(300));
        assert_eq!(B.delay(u32::MAX, 1, 1.0), Duration::from_secs(300));
    }

    #[test]
    fn a_factor_stretches_and_jitter_spreads_within_half() {
        assert_eq!(B.delay(1, 4, 1.0), Duration::from_secs(2));
        assert_eq!(B.delay(2, 1, 0.5), Duration::from_millis(500));
        assert_eq!(B.delay(2, 1, 1.5), Duration::from_millis(1500));
        assert_eq!(B.delay(2, 1, 9.0), Duration::from_millis(1500), "clamped");
        assert_eq!(B.delay(2, 1, f64::NAN), Duration::from_secs(1));
        assert_eq!(B.delay(2, 0, 1.0), Duration::from_secs(1), "factor 0 is 1");
    }
}
