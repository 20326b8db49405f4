//! [`Heartbeat`]: when a background loop last completed a pass, so `GET /v1/system` can say
//! whether the loop is alive and whether its last pass went well.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many missed passes make a loop count as stalled.
const MISSED_PASSES: u32 = 3;

/// The last pass of one background loop.
#[derive(Debug, Default)]
pub struct Heartbeat {
    last: Mutex<Option<Beat>>,
}

#[derive(Clone, Copy, Debug)]
struct Beat {
    at: Instant,
    /// How often the loop runs a pass.
    period: Duration,
    /// Whether that pass failed (`None`: the loop started and has not finished a pass yet).
    failed: Option<bool>,
}

/// What a [`Heartbeat`] says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopState {
    /// Running: a pass finished (or the loop started) within a few periods.
    pub alive: bool,
    /// One line for people: when the last pass ran and how it went.
    pub message: String,
}

impl Heartbeat {
    /// The loop started; it runs a pass every `period`.
    pub fn started(&self, period: Duration) {
        *self.lock() = Some(Beat {
            at: Instant::now(),
            period,
            failed: None,
        });
    }

    /// A pass finished (`failed`: whether any of its work failed).
    pub fn passed(&self, failed: bool) {
        let mut last = self.lock();
        let period = last.map_or(Duration::from_secs(60), |b| b.period);
        *last = Some(Beat {
            at: Instant::now(),
            period,
            failed: Some(failed),
        });
    }

    /// Whether the loop is alive, and a line about its last pass.
    pub fn state(&self) -> LoopState {
        let Some(beat) = *self.lock() else {
            return LoopState {
                alive: false,
                message: "not running".into(),
            };
        };
        let ago = beat.at.elapsed();
        let alive = ago <= beat.period.saturating_mul(MISSED_PASSES) + Duration::from_secs(10);
        let message = match (alive, beat.failed) {
            (false, _) => format!(
                "stalled: no pass for {} s (expected every {} s); the cause is in the server's log",
                ago.as_secs(),
                beat.period.as_secs()
            ),
            (true, None) => "started; first pass pending".into(),
            (true, Some(false)) => format!("last pass {} s ago: ok", ago.as_secs()),
            (true, Some(true)) => format!(
                "last pass {} s ago: some work failed (the causes are in the server's log)",
                ago.as_secs()
            ),
        };
        LoopState { alive, message }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Beat>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_is_alive_once_started_and_says_how_its_pass_went() {
        let beat = Heartbeat::default();
        assert!(!beat.state().alive, "never started");
        beat.started(Duration::from_secs(30));
        assert_eq!(beat.state().message, "started; first pass pending");
        assert!(beat.state().alive);
        beat.passed(true);
        let state = beat.state();
        assert!(state.alive);
        assert!(
            state.message.contains("some work failed"),
            "{}",
            state.message
        );
        beat.passed(false);
        assert!(beat.state().message.ends_with("ok"));
    }

    #[test]
    fn a_loop_silent_for_three_periods_is_stalled() {
        let beat = Heartbeat::default();
        *beat.lock() = Some(Beat {
            at: Instant::now() - Duration::from_secs(100),
            period: Duration::from_secs(20),
            failed: Some(false),
        });
        let state = beat.state();
        assert!(!state.alive);
        assert!(state.message.starts_with("stalled"), "{}", state.message);
    }
}
