//! Reconnection: when to try again, where to resume, and what to drop after resuming.
//!
//! Both types here are plain state machines driven with given times and keys, so the rules are
//! unit-tested without sockets.
//!
//! ## Backoff ([`Backoff`])
//! After a failed attempt or a lost stream, wait `delay`, then `delay = next_backoff(delay)`
//! (×multiplier, capped at `max_delay`). Unlike the reference, the delay goes back to
//! `initial_delay` once a connection was *healthy*: it delivered a message and stayed up for
//! `healthy_after`. `max_attempts` counts consecutive unhealthy attempts; when they are used up
//! the client gives up (the health monitor says Error, `/ready` answers 503).
//!
//! ## Resume and dedup ([`Resume`])
//! A slot's data arrives before its slot status (Yellowstone replays a slot as data first, then
//! its status), so the slot status is the marker "slot S is fully handed off". On reconnect the
//! client asks for `from_slot = S + 1` for the last marked S; the server sends again everything
//! since that marker. The keys handed off since the marker — `(pubkey, write_version)` for
//! accounts, `(signature, position in the transaction)` for instructions — are kept as a
//! multiset; after a reconnect, each re-sent update whose key is still in that multiset is
//! dropped once. Deliberate duplicates in the original stream therefore still get through, once
//! per original delivery. The next marker closes the window.
//!
//! The multiset is bounded (`capacity` keys). If a slot never ends within that many updates the
//! tracker stops recording and, on reconnect, resumes after the highest slot seen: it may lose
//! the rest of the open slot rather than double it (logged).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use stackcore_engine::{Pubkey, Signature, Update};

use crate::config::ReconnectionConfig;

/// The reconnection schedule.
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: ReconnectionConfig,
    healthy_after: Duration,
    delay: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(cfg: ReconnectionConfig, healthy_after: Duration) -> Self {
        Backoff {
            cfg,
            healthy_after,
            delay: cfg.initial_delay,
            failures: 0,
        }
    }

    /// A connection attempt ended (never established, or the stream was lost). `established` is
    /// when its first message arrived, if one did. Returns how long to wait before the next
    /// attempt, or `None` when `max_attempts` consecutive attempts failed: give up.
    pub fn attempt_ended(
        &mut self,
        established: Option<Instant>,
        now: Instant,
    ) -> Option<Duration> {
        if established.is_some_and(|t| now.saturating_duration_since(t) >= self.healthy_after) {
            self.delay = self.cfg.initial_delay;
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        if self
            .cfg
            .max_attempts
            .is_some_and(|max| self.failures >= max)
        {
            return None;
        }
        let d = self.delay;
        self.delay = self.cfg.next_backoff(d);
        Some(d)
    }

    /// Consecutive failed attempts so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// What identifies an update for dedup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Account(Pubkey, u64),
    Instruction(Signature, u32),
    Slot(u64),
}

impl Key {
    /// The key of the `position`-th update converted from one upstream message.
    pub fn of(update: &Update, position: usize) -> Key {
        match update {
            Update::Account(a) => Key::Account(a.pubkey, a.write_version),
            Update::Instruction(i) => Key::Instruction(i.signature, position as u32),
            Update::Slot { slot, .. } => Key::Slot(*slot),
        }
    }
}

/// Where to resume and what to drop after resuming.
#[derive(Debug)]
pub struct Resume {
    capacity: usize,
    /// Highest slot whose status was handed off.
    complete: Option<u64>,
    /// Lowest slot handed off since the marker (resume point before the first marker).
    open_from: Option<u64>,
    max_slot: Option<u64>,
    /// Keys handed off since the marker, with multiplicity.
    since_marker: HashMap<Key, u32>,
    recorded: usize,
    overflowed: bool,
    /// After a reconnect: keys still expected to be re-sent.
    window: HashMap<Key, u32>,
}

impl Resume {
    pub fn new(capacity: usize) -> Self {
        Resume {
            capacity,
            complete: None,
            open_from: None,
            max_slot: None,
            since_marker: HashMap::new(),
            recorded: 0,
            overflowed: false,
            window: HashMap::new(),
        }
    }

    /// `from_slot` for the next subscription; `None` subscribes live.
    pub fn from_slot(&self) -> Option<u64> {
        if self.overflowed {
            return self.max_slot.map(|s| s + 1);
        }
        match self.complete {
            Some(c) => Some(c + 1),
            None => self.open_from,
        }
    }

    /// A new stream starts from [`Resume::from_slot`]: open the dedup window.
    pub fn resumed(&mut self) {
        self.window = if self.overflowed {
            HashMap::new()
        } else {
            self.since_marker.clone()
        };
    }

    /// The server could not resume (history too short): subscribe live from now on.
    pub fn forget(&mut self) {
        self.complete = None;
        self.open_from = None;
        self.since_marker.clear();
        self.recorded = 0;
        self.overflowed = false;
        self.window.clear();
    }

    /// Whether `update` (the `position`-th of its upstream message) is new; if so it is recorded
    /// as handed off. `false`: a re-sent copy, drop it.
    pub fn admit(&mut self, update: &Update, position: usize) -> bool {
        let slot = update.slot();
        if let Update::Slot { slot, .. } = update {
            if self.complete.is_some_and(|c| *slot <= c) {
                return false;
            }
        }
        let key = Key::of(update, position);
        if let Some(n) = self.window.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.window.remove(&key);
            }
            return false;
        }
        self.max_slot = Some(self.max_slot.map_or(slot, |m| m.max(slot)));
        if let Update::Slot { slot, .. } = update {
            self.complete = Some(*slot);
            self.open_from = None;
            self.since_marker.clear();
            self.recorded = 0;
            self.overflowed = false;
            self.window.clear();
            return true;
        }
        self.open_from = Some(self.open_from.map_or(slot, |m| m.min(slot)));
        if self.recorded < self.capacity {
            *self.since_marker.entry(key).or_insert(0) += 1;
            self.recorded += 1;
        } else if !self.overflowed {
            self.overflowed = true;
            tracing::warn!(
                capacity = self.capacity,
                "dedup window full before the slot ended; a reconnect now resumes after slot {:?} and may lose the rest of it",
                self.max_slot
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackcore_engine::AccountUpdate;

    fn acct(slot: u64, wv: u64) -> Update {
        Update::Account(AccountUpdate {
            slot,
            write_version: wv,
            pubkey: [1; 32],
            owner: [2; 32],
            data: vec![],
            signature: None,
            timestamp: 0,
        })
    }

    fn slot(s: u64) -> Update {
        Update::Slot {
            slot: s,
            timestamp: 0,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_grows_then_resets_after_a_healthy_connection() {
        let cfg = ReconnectionConfig::new()
            .with_initial_delay(ms(100))
            .with_max_delay(ms(1000));
        let mut b = Backoff::new(cfg, Duration::from_secs(5));
        let t0 = Instant::now();
        let delays: Vec<_> = (0..5).map(|_| b.attempt_ended(None, t0).unwrap()).collect();
        assert_eq!(delays, vec![ms(100), ms(200), ms(400), ms(800), ms(1000)]);
        // Connected, but dropped before it was healthy: keeps growing from the cap.
        assert_eq!(b.attempt_ended(Some(t0), t0 + ms(10)), Some(ms(1000)));
        // Up for longer than healthy_after: back to the initial delay.
        assert_eq!(
            b.attempt_ended(Some(t0), t0 + Duration::from_secs(6)),
            Some(ms(100))
        );
        assert_eq!(b.attempt_ended(None, t0), Some(ms(200)));
    }

    #[test]
    fn max_attempts_counts_consecutive_failures_and_resets_when_healthy() {
        let cfg = ReconnectionConfig::new().with_max_attempts(3);
        let mut b = Backoff::new(cfg, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(b.attempt_ended(None, t0).is_some());
        assert!(b.attempt_ended(None, t0).is_some());
        assert!(b
            .attempt_ended(Some(t0), t0 + Duration::from_secs(2))
            .is_some());
        assert_eq!(b.failures(), 1);
        assert!(b.attempt_ended(None, t0).is_some());
        assert_eq!(b.attempt_ended(None, t0), None);
    }

    #[test]
    fn resume_starts_after_the_last_marked_slot_and_drops_each_resent_copy_once() {
        let mut r = Resume::new(100);
        assert_eq!(r.from_slot(), None);
        assert!(r.admit(&acct(5, 1), 0));
        assert_eq!(
            r.from_slot(),
            Some(5),
            "no marker yet: from the first open slot"
        );
        assert!(r.admit(&slot(5), 0));
        assert!(r.admit(&acct(6, 2), 0));
        assert!(
            r.admit(&acct(6, 2), 0),
            "a duplicate in the original stream gets through"
        );
        assert!(r.admit(&acct(6, 3), 0));
        assert_eq!(r.from_slot(), Some(6));
        r.resumed();
        // The server re-sends slot 6 from its start.
        assert!(!r.admit(&acct(6, 2), 0));
        assert!(!r.admit(&acct(6, 2), 0));
        assert!(!r.admit(&acct(6, 3), 0));
        assert!(r.admit(&acct(6, 4), 0), "new after the re-sent part");
        assert!(r.admit(&slot(6), 0));
        assert!(!r.admit(&slot(6), 0), "a slot status is handed off once");
        assert_eq!(r.from_slot(), Some(7));
    }

    #[test]
    fn a_second_reconnect_during_the_replay_still_drops_everything_handed_off() {
        let mut r = Resume::new(100);
        assert!(r.admit(&slot(1), 0));
        assert!(r.admit(&acct(2, 1), 0));
        assert!(r.admit(&acct(2, 2), 0));
        r.resumed();
        assert!(!r.admit(&acct(2, 1), 0));
        r.resumed();
        assert!(!r.admit(&acct(2, 1), 0));
        assert!(!r.admit(&acct(2, 2), 0));
        assert!(r.admit(&acct(2, 3), 0));
    }

    #[test]
    fn a_full_window_resumes_after_the_highest_slot_instead_of_doubling() {
        let mut r = Resume::new(2);
        assert!(r.admit(&slot(1), 0));
        for wv in 0..3 {
            assert!(r.admit(&acct(2, wv), 0));
        }
        assert_eq!(r.from_slot(), Some(3));
        r.resumed();
        assert!(r.admit(&acct(3, 9), 0));
    }
}
