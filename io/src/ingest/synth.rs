//! The synthetic source: a deterministic chain published through the embedded mock server.
//!
//! Updates come from [`SyntheticConfig::generator`](super::SyntheticConfig) (the stack's
//! generator, `stackcore_engine::synth`, see [`idl_generator`]) or, without one, from [`stand_in`]: a small
//! deterministic generator of opaque account and instruction updates for the stack's program
//! ids. Each update is converted to the wire message a Geyser server sends and published into
//! the mock, which the ingest client reads through the real gRPC path.
//!
//! Slot markers: when the chain moves to a higher slot, the source first publishes the status of
//! the slot it leaves, so a slot's status always follows its data (as on Yellowstone) and the
//! client's resume rule holds. Slot updates of the generator itself are not published.
//!
//! Pacing: `updates_per_sec > 0` publishes in 10 ms ticks (a fractional budget carries over);
//! `0` publishes as fast as the slowest subscriber reads (the mock's backpressure).

use std::time::Duration;

use stackcore_engine::idl::IdlSet;
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::{AccountUpdate, InstructionUpdate, Pubkey, Update};

use super::convert::to_proto;
use super::mock::MockPublisher;
use super::{Stop, SyntheticConfig};

/// A source of updates, built from a seed.
pub type UpdateFactory =
    std::sync::Arc<dyn Fn(u64) -> Box<dyn Iterator<Item = Update> + Send> + Send + Sync>;

/// The stack's synthetic chain: [`Generator`] over its IDLs, with `cfg` (its seed replaced by
/// the source's).
pub fn idl_generator(idls: IdlSet, cfg: SynthConfig) -> UpdateFactory {
    let idls = std::sync::Arc::new(idls);
    std::sync::Arc::new(move |seed| {
        let mut g = Generator::new(
            &idls,
            SynthConfig {
                seed,
                ..cfg.clone()
            },
        );
        Box::new(std::iter::repeat_with(move || g.next_update()))
    })
}

/// A generator that yields this many slot ticks in a row has nothing to publish; the chain ends.
const MAX_IDLE_TICKS: u32 = 10_000;

/// Publishes the synthetic chain until `stop` or the generator ends.
pub(crate) async fn run(
    cfg: SyntheticConfig,
    program_ids: Vec<Pubkey>,
    publisher: MockPublisher,
    stop: Stop,
) {
    let mut updates = match &cfg.generator {
        Some(f) => f(cfg.seed),
        None => Box::new(stand_in(cfg.seed, program_ids)),
    };
    // The chain starts with its first subscriber, so a run is reproducible from the seed.
    tokio::select! {
        _ = publisher.wait_for_subscriber() => {}
        _ = stop.wait() => return,
    }
    let mut max_slot: Option<u64> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let per_tick = f64::from(cfg.updates_per_sec) / 100.0;
    let mut budget = 0.0f64;
    let mut since_yield = 0u32;
    let mut idle = 0u32;
    loop {
        if stop.is_set() {
            return;
        }
        if cfg.updates_per_sec > 0 {
            while budget < 1.0 {
                tokio::select! {
                    _ = tick.tick() => budget += per_tick,
                    _ = stop.wait() => return,
                }
            }
            budget -= 1.0;
        } else {
            since_yield += 1;
            if since_yield >= 256 {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
        let Some(u) = updates.next() else {
            tracing::info!("synthetic chain ended");
            return;
        };
        if matches!(u, Update::Slot { .. }) {
            idle += 1;
            if idle >= MAX_IDLE_TICKS {
                tracing::warn!("the synthetic generator produces no account or instruction updates; chain ended");
                return;
            }
            continue;
        }
        idle = 0;
        let slot = u.slot();
        if let Some(m) = max_slot.filter(|m| slot > *m) {
            let marker = Update::Slot {
                slot: m,
                timestamp: u.timestamp(),
            };
            if let Ok(msg) = to_proto(&marker) {
                publisher.publish_wait(msg).await;
            }
        }
        if max_slot.is_none_or(|m| slot > m) {
            max_slot = Some(slot);
        }
        match to_proto(&u) {
            Ok(msg) => publisher.publish_wait(msg).await,
            Err(e) => tracing::debug!("synthetic update skipped: {e}"),
        }
    }
}

trait Timestamp {
    fn timestamp(&self) -> i64;
}

impl Timestamp for Update {
    fn timestamp(&self) -> i64 {
        match self {
            Update::Account(a) => a.timestamp,
            Update::Instruction(i) => i.timestamp,
            Update::Slot { timestamp, .. } => *timestamp,
        }
    }
}

/// A deterministic stand-in chain for `program_ids` (a fixed fake program when empty): per slot,
/// three account writes from a pool of eight addresses per program and one instruction, with
/// opaque data. Same seed, same updates.
pub fn stand_in(seed: u64, program_ids: Vec<Pubkey>) -> impl Iterator<Item = Update> + Send {
    let programs = if program_ids.is_empty() {
        vec![[0x5c; 32]]
    } else {
        program_ids
    };
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut n: u64 = 0;
    std::iter::from_fn(move || {
        let slot = 300_000_000 + n / 4;
        let program = programs[(n as usize / 4) % programs.len()];
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&(next() % 8).to_le_bytes());
        key[8..16].copy_from_slice(&program[..8]);
        let mut data = vec![0u8; 40];
        for chunk in data.chunks_mut(8) {
            chunk.copy_from_slice(&next().to_le_bytes());
        }
        let ts = 1_700_000_000 + (slot as i64 - 300_000_000) * 2 / 5;
        let u = if n % 4 == 3 {
            let mut sig = [0u8; 64];
            sig[..8].copy_from_slice(&n.to_le_bytes());
            sig[8..16].copy_from_slice(&next().to_le_bytes());
            Update::Instruction(InstructionUpdate {
                slot,
                txn_index: n % 4,
                signature: sig,
                program_id: program,
                accounts: vec![key],
                data,
                timestamp: ts,
            })
        } else {
            Update::Account(AccountUpdate {
                slot,
                write_version: n,
                pubkey: key,
                owner: program,
                data,
                signature: None,
                timestamp: ts,
            })
        };
        n += 1;
        Some(u)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stand_in_chain_is_deterministic_per_seed() {
        let a: Vec<_> = stand_in(7, vec![[1; 32]]).take(20).collect();
        let b: Vec<_> = stand_in(7, vec![[1; 32]]).take(20).collect();
        let c: Vec<_> = stand_in(8, vec![[1; 32]]).take(20).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[0].slot() <= w[1].slot()));
    }
}
