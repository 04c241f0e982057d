//! The feed both servers get: the same synthetic ORE updates, at the same rate, stamped on the same
//! [`SlotClock`] by the same loop.
//!
//! [`Feed`] produces raw [`Update`]s from the engine's synthetic chain over the stack's IDLs; for the
//! reference peer it also gives each update as the reference decodes it ([`ReferenceEvent`]: the
//! event type name and the JSON value its VM takes), so both sides see the very same events.
//! [`drive`] paces them with a [`Pacer`], stamps each slot on the clock the moment its first update
//! leaves, and hands them to a sink (our VM worker's queue, or the reference's parser channel).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use stackcore_engine::idl::{Decoded, IdlSet};
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::Update;

use crate::clock::SlotClock;
use crate::pace::Pacer;

/// Why a feed could not be built. The harness reports it and exits.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The stack file does not load; fix the file or the path.
    #[error("stack file: {0}")]
    Stack(String),
    /// The engine in this build cannot generate updates yet (its synthetic chain is missing).
    #[error("no synthetic source in this build: {0}")]
    Unavailable(&'static str),
}

/// One update as the reference VM takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceEvent {
    /// `"ore::RoundState"`, `"ore::DeployIxState"`, …
    pub event_type: String,
    /// Accounts: the flat field object plus `__account_address`; instructions: `{data, accounts}`.
    pub value: serde_json::Value,
    pub slot: u64,
    /// Base58 transaction signature (empty when the update has none).
    pub signature: String,
    /// `Some` for account updates.
    pub write_version: Option<u64>,
    /// `Some` for instructions.
    pub txn_index: Option<u64>,
    /// Unix seconds.
    pub timestamp: i64,
}

type NextFn = Box<dyn FnMut() -> Update + Send>;
type ReferenceFn = Box<dyn FnMut(&Update) -> Option<ReferenceEvent> + Send>;

/// The synthetic ORE chain.
pub struct Feed {
    next: NextFn,
    reference: ReferenceFn,
}

impl Feed {
    /// A feed over the stack file's IDLs (the engine's synthetic chain with its default shape:
    /// 4 updates per slot, 2 % duplicates, 2 % late writes), deterministic for a seed.
    pub fn from_stack_json(bytes: &[u8], seed: u64) -> Result<Feed, FeedError> {
        let stack: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| FeedError::Stack(e.to_string()))?;
        let idls =
            IdlSet::from_json(&stack["idls"]).map_err(|e| FeedError::Stack(e.to_string()))?;
        if idls.event_types().is_empty() {
            return Err(FeedError::Unavailable(
                "the stack's IDLs define no event types",
            ));
        }
        let mut generator = Generator::new(
            &idls,
            SynthConfig {
                seed,
                ..SynthConfig::default()
            },
        );
        let mut decoded = Decoded::default();
        let reference = move |u: &Update| reference_event(&idls, &mut decoded, u);
        Ok(Feed::from_fn(move || generator.next_update(), reference))
    }

    /// A feed from any update source (tests, recordings).
    pub fn from_fn(
        next: impl FnMut() -> Update + Send + 'static,
        reference: impl FnMut(&Update) -> Option<ReferenceEvent> + Send + 'static,
    ) -> Feed {
        Feed {
            next: Box::new(next),
            reference: Box::new(reference),
        }
    }

    pub fn next_update(&mut self) -> Update {
        (self.next)()
    }

    /// The update as the reference decodes it; `None` for updates the stack's IDLs do not know
    /// (and slot markers), which the reference's parsers would drop too.
    pub fn reference_event(&mut self, update: &Update) -> Option<ReferenceEvent> {
        (self.reference)(update)
    }
}

/// Decodes `u` with the stack's IDLs into the reference's event shape.
fn reference_event(idls: &IdlSet, decoded: &mut Decoded, u: &Update) -> Option<ReferenceEvent> {
    idls.decode(u, decoded).ok()?;
    let event_type = idls
        .event_types()
        .get(decoded.event_type as usize)?
        .name
        .to_string();
    let value = idls.to_reference_json(decoded);
    let b58 = |s: &[u8]| bs58::encode(s).into_string();
    Some(match u {
        Update::Account(a) => ReferenceEvent {
            event_type,
            value,
            slot: a.slot,
            signature: a.signature.as_ref().map(|s| b58(s)).unwrap_or_default(),
            write_version: Some(a.write_version),
            txn_index: None,
            timestamp: a.timestamp,
        },
        Update::Instruction(i) => ReferenceEvent {
            event_type,
            value,
            slot: i.slot,
            signature: b58(&i.signature),
            write_version: None,
            txn_index: Some(i.txn_index),
            timestamp: i.timestamp,
        },
        Update::Slot { .. } => return None,
    })
}

/// What a feed run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FeedStats {
    pub sent: u64,
    pub seconds: f64,
    pub per_sec: f64,
    /// `true` when the sink refused an update (the server went away).
    pub sink_closed: bool,
}

/// Feeds `next()` into `sink` at the pacer's rate for `duration` (or until `stop`), stamping each
/// update's slot on `clock` just before it is handed over. `sink` returns `false` to end the run.
pub fn drive(
    mut next: impl FnMut() -> Update,
    pacer: Pacer,
    duration: Duration,
    clock: &SlotClock,
    stop: &AtomicBool,
    mut sink: impl FnMut(Update) -> bool,
) -> FeedStats {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut sink_closed = false;
    'run: while !stop.load(Ordering::Relaxed) {
        let elapsed = start.elapsed();
        if elapsed >= duration {
            break;
        }
        let due = pacer.due(elapsed);
        // At most one slot-sized burst per turn keeps `stop` and the deadline responsive.
        let mut burst = 0;
        while sent < due && burst < 1024 {
            let update = next();
            clock.stamp(update.slot());
            if !sink(update) {
                sink_closed = true;
                break 'run;
            }
            sent += 1;
            burst += 1;
        }
        if !pacer.is_unlimited() && sent >= due {
            let wait = pacer.time_of(sent).saturating_sub(start.elapsed());
            // Sleeping below ~100 µs overshoots; spin the last stretch instead.
            if wait > Duration::from_micros(150) {
                std::thread::sleep(wait - Duration::from_micros(100));
            } else {
                std::hint::spin_loop();
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    FeedStats {
        sent,
        seconds,
        per_sec: sent as f64 / seconds.max(1e-9),
        sink_closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots_from(first: u64) -> impl FnMut() -> Update {
        let mut slot = first;
        move || {
            slot += 1;
            Update::Slot { slot, timestamp: 0 }
        }
    }

    #[test]
    fn drive_stamps_every_slot_before_the_sink_sees_it() {
        let clock = SlotClock::new(1024);
        let stop = AtomicBool::new(false);
        let mut seen = Vec::new();
        let stats = drive(
            slots_from(100),
            Pacer::new(0),
            Duration::from_secs(60),
            &clock,
            &stop,
            |u| {
                assert!(
                    clock.age_nanos(u.slot()).is_some(),
                    "slot {} not stamped before hand-over",
                    u.slot()
                );
                seen.push(u.slot());
                seen.len() < 50
            },
        );
        assert!(stats.sink_closed);
        assert_eq!(stats.sent, 49, "the refused update is not counted");
        assert_eq!(seen, (101..=150).collect::<Vec<_>>());
    }

    #[test]
    fn drive_ends_when_stop_is_set() {
        let clock = SlotClock::new(16);
        let stop = AtomicBool::new(false);
        let mut n = 0;
        let stats = drive(
            slots_from(0),
            Pacer::new(0),
            Duration::from_secs(60),
            &clock,
            &stop,
            |_| {
                n += 1;
                if n == 10 {
                    stop.store(true, Ordering::Relaxed);
                }
                true
            },
        );
        assert!(!stats.sink_closed);
        assert!(stats.sent >= 10);
    }

    #[test]
    fn the_ore_feed_gives_updates_the_reference_can_take() {
        let bytes = std::fs::read(crate::flags::DEFAULT_STACK).expect("ORE stack file");
        let mut feed = Feed::from_stack_json(&bytes, 7).expect("ORE feed");
        let mut last_slot = 0;
        let (mut accounts, mut instructions) = (0, 0);
        for _ in 0..500 {
            let u = feed.next_update();
            let ev = feed
                .reference_event(&u)
                .expect("every synthetic update decodes");
            assert_eq!(ev.slot, u.slot());
            assert!(ev.event_type.contains("::"), "{}", ev.event_type);
            match (ev.write_version, ev.txn_index) {
                (Some(_), None) => {
                    accounts += 1;
                    assert!(ev.value.get("__account_address").is_some(), "{}", ev.value);
                }
                (None, Some(_)) => {
                    instructions += 1;
                    assert!(ev.value.get("data").is_some() && ev.value.get("accounts").is_some());
                }
                other => panic!("context {other:?}"),
            }
            last_slot = last_slot.max(u.slot());
        }
        assert!(
            accounts > 0 && instructions > 0,
            "{accounts} accounts, {instructions} instructions"
        );
        assert!(last_slot > 0);
    }

    #[test]
    fn a_stack_file_that_is_not_json_is_a_stack_error() {
        assert!(matches!(
            Feed::from_stack_json(b"{nope", 1),
            Err(FeedError::Stack(_))
        ));
    }

    #[test]
    fn a_feed_from_fn_hands_out_its_updates_and_reference_events() {
        let mut feed = Feed::from_fn(slots_from(7), |u| match u {
            Update::Slot { .. } => None,
            _ => unreachable!(),
        });
        let u = feed.next_update();
        assert_eq!(u.slot(), 8);
        assert_eq!(feed.reference_event(&u), None);
    }
}
