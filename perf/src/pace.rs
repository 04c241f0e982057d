//! A fixed-rate schedule: how many updates are due after a given elapsed time.
//!
//! Both servers are fed by the same loop ([`crate::feed::drive`]) with the same pacer, so "10,000
//! updates/s" means the same thing on both sides. The pacer catches up after a late wake-up (it
//! counts from the start, not from the last tick), so the long-run rate is exact while single ticks
//! may carry a small burst.

use std::time::Duration;

/// Updates due by an elapsed time at a fixed rate; a rate of 0 means "as fast as the sink takes
/// them" (saturation runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    per_sec: u64,
}

impl Pacer {
    pub fn new(per_sec: u64) -> Pacer {
        Pacer { per_sec }
    }

    /// `true` when the pacer never holds the feed back.
    pub fn is_unlimited(&self) -> bool {
        self.per_sec == 0
    }

    /// Updates due in total `elapsed` after the start (`u64::MAX` when unlimited).
    pub fn due(&self, elapsed: Duration) -> u64 {
        if self.is_unlimited() {
            return u64::MAX;
        }
        (elapsed.as_nanos() * self.per_sec as u128 / 1_000_000_000) as u64
    }

    /// How long after the start update number `n` (0-based) is due.
    pub fn time_of(&self, n: u64) -> Duration {
        if self.is_unlimited() {
            return Duration::ZERO;
        }
        Duration::from_nanos(((n as u128 + 1) * 1_000_000_000 / self.per_sec as u128) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_grows_linearly_with_elapsed_time() {
        let p = Pacer::new(10_000);
        assert_eq!(p.due(Duration::ZERO), 0);
        assert_eq!(p.due(Duration::from_micros(99)), 0);
        assert_eq!(p.due(Duration::from_micros(100)), 1);
        assert_eq!(p.due(Duration::from_millis(1)), 10);
        assert_eq!(p.due(Duration::from_secs(3)), 30_000);
    }

    #[test]
    fn time_of_is_when_that_update_becomes_due() {
        let p = Pacer::new(4);
        for n in 0..20 {
            let t = p.time_of(n);
            assert_eq!(p.due(t), n + 1, "update {n} due at {t:?}");
            assert_eq!(
                p.due(t - Duration::from_nanos(1)),
                n,
                "update {n} not yet due just before {t:?}"
            );
        }
    }

    #[test]
    fn rate_zero_never_holds_the_feed_back() {
        let p = Pacer::new(0);
        assert!(p.is_unlimited());
        assert_eq!(p.due(Duration::ZERO), u64::MAX);
        assert_eq!(p.time_of(1_000), Duration::ZERO);
    }
}
