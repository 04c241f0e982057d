//! Slot → send time, shared between the upstream publisher and the load generator.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A fixed ring of `(slot, nanos since origin)`; the publisher stamps a slot when its first update is
/// sent, readers look it up when a frame with that slot arrives. Old slots are overwritten.
pub struct SlotClock {
    origin: Instant,
    slots: Box<[AtomicU64]>,
    times: Box<[AtomicU64]>,
}

impl SlotClock {
    pub fn new(capacity: usize) -> SlotClock {
        let capacity = capacity.max(1);
        SlotClock {
            origin: Instant::now(),
            slots: (0..capacity).map(|_| AtomicU64::new(u64::MAX)).collect(),
            times: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn now_nanos(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Records that `slot` was sent now (first stamp wins).
    pub fn stamp(&self, slot: u64) {
        let i = (slot % self.slots.len() as u64) as usize;
        if self.slots[i].load(Ordering::Acquire) == slot {
            return;
        }
        self.times[i].store(self.now_nanos(), Ordering::Release);
        self.slots[i].store(slot, Ordering::Release);
    }

    /// Nanoseconds since `slot` was sent, if it is still in the ring.
    pub fn age_nanos(&self, slot: u64) -> Option<u64> {
        let i = (slot % self.slots.len() as u64) as usize;
        if self.slots[i].load(Ordering::Acquire) != slot {
            return None;
        }
        let sent = self.times[i].load(Ordering::Acquire);
        Some(self.now_nanos().saturating_sub(sent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_slots_have_an_age_and_overwritten_ones_do_not() {
        let c = SlotClock::new(4);
        c.stamp(10);
        assert!(c.age_nanos(10).is_some());
        assert!(c.age_nanos(11).is_none());
        c.stamp(14); // same ring position as 10
        assert!(c.age_nanos(10).is_none());
        assert!(c.age_nanos(14).is_some());
    }
}
