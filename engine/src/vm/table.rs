//! One entity type's bounded state: rows, indexes, pending queues, recency and dedup memory.
//!
//! Every structure is an LRU cache with a capacity from [`VmLimits`](super::VmLimits) or
//! [`StateTableConfig`]: whatever the input, memory stays bounded, and what falls out is counted.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use serde_json::Value as Json;

use super::program::EventId;
use super::{Ctx, SigKey, VmLimits};
use crate::config::StateTableConfig;

/// An account update waiting for its key to become resolvable (or cached for reprocessing).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub event: EventId,
    pub pda: Arc<str>,
    pub data: std::sync::Arc<super::Ev>,
    pub slot: u64,
    pub write_version: u64,
    pub signature: Option<super::Sig>,
    pub timestamp: i64,
    pub stale: bool,
}

impl Pending {
    /// An account update as it arrived (`c` is its context), to be queued or cached.
    pub fn new(event: EventId, pda: Arc<str>, data: Arc<super::Ev>, c: &Ctx) -> Pending {
        Pending {
            event,
            pda,
            data,
            slot: c.slot,
            write_version: c.write_version.unwrap_or(0),
            signature: c.signature.clone(),
            timestamp: c.timestamp,
            stale: false,
        }
    }
}

/// An instruction waiting for the PDA it names to be mapped.
#[derive(Debug, Clone)]
pub(crate) struct PendingIx {
    pub event: EventId,
    pub data: Arc<super::Ev>,
    pub ctx: Ctx,
}

/// A `when` mapping waiting for its instruction in the same transaction.
#[derive(Debug, Clone)]
pub(crate) struct Deferred {
    pub key: Json,
    pub target: super::row::Field,
    pub value: Json,
    pub emit: bool,
    pub slot: u64,
}

/// The entry a new key would evict from `lru`, taken out (`None` while it has room): a new entry
/// can then be built in its allocations.
pub(crate) fn take_oldest_if_full<K: Hash + Eq, V>(lru: &mut LruCache<K, V>) -> Option<(K, V)> {
    match lru.len() >= lru.cap().get() {
        true => lru.pop_lru(),
        false => None,
    }
}

/// A 64-bit hash of `text` (the same in every run).
pub(crate) fn text_hash(text: &str) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

fn cap(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n.max(1)).unwrap()
}

pub(crate) struct Table {
    /// The reference creates an entity's table on the first handler that reaches the state read;
    /// several behaviours (PDA hooks, queueing) depend on whether it exists yet.
    pub exists: bool,
    pub rows: LruCache<String, (Json, super::row::Row)>,
    pub lookups: Vec<LruCache<String, Json>>,
    pub temporal: Vec<LruCache<String, Vec<(i64, Json)>>>,
    pub pda: LruCache<String, String>,
    pub pending: LruCache<Arc<str>, Vec<Pending>>,
    pub pending_ix: LruCache<String, Vec<PendingIx>>,
    /// The last update per account address, replayed when its PDA mapping changes (kept in
    /// the first entity's table only: that is where mappings live).
    pub last_data: LruCache<Arc<str>, Pending>,
    /// Last (slot, write_version) applied per (account address, event type).
    pub versions: LruCache<(Arc<str>, EventId), (u64, u64)>,
    /// Instructions applied: (rendered key, event type, slot, transaction index).
    /// Keyed by ([`text_hash`] of the row key, type, slot, txn index); holds the key text.
    pub ix_seen: LruCache<(u64, EventId, u64, u64), String>,
    pub recent_tx: LruCache<SigKey, Vec<EventId>>,
    pub deferred: LruCache<(SigKey, EventId), Vec<Deferred>>,
}

/// What [`Table::set_pda`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PdaWrite {
    /// The PDA already mapped to this seed (it only moved to the front).
    Same,
    /// It mapped to another seed, now replaced.
    Changed,
    /// It was not mapped.
    Added,
}

impl Table {
    /// Maps `pda` to `seed` in the reverse lookup, at the front of its LRU. A changed mapping is
    /// rewritten in place; a new one, when the map is full, takes the place (and the text
    /// allocations) of the oldest, after `evicted` is told its PDA.
    pub fn set_pda(
        &mut self,
        pda: &str,
        seed: &str,
        evicted: impl FnOnce(&mut Table, &str),
    ) -> PdaWrite {
        match self.pda.get_mut(pda) {
            Some(old) if old == seed => return PdaWrite::Same,
            Some(old) => {
                old.clear();
                old.push_str(seed);
                return PdaWrite::Changed;
            }
            None => {}
        }
        let oldest = take_oldest_if_full(&mut self.pda);
        if let Some((k, _)) = &oldest {
            evicted(self, k);
        }
        let (mut k, mut v) = oldest.unwrap_or_default();
        k.clear();
        k.push_str(pda);
        v.clear();
        v.push_str(seed);
        self.pda.put(k, v);
        PdaWrite::Added
    }

    pub fn new(
        cfg: &StateTableConfig,
        lim: &VmLimits,
        n_lookup: usize,
        n_temporal: usize,
    ) -> Table {
        Table {
            exists: false,
            rows: LruCache::new(cap(cfg.max_entries)),
            lookups: (0..n_lookup)
                .map(|_| LruCache::new(cap(lim.lookup_index_entries)))
                .collect(),
            temporal: (0..n_temporal)
                .map(|_| LruCache::new(cap(lim.lookup_index_entries)))
                .collect(),
            pda: LruCache::new(cap(lim.pda_entries)),
            pending: LruCache::new(cap(lim.pending_addresses)),
            pending_ix: LruCache::new(cap(lim.pending_addresses)),
            last_data: LruCache::new(cap(lim.pda_entries)),
            versions: LruCache::new(cap(lim.version_entries)),
            ix_seen: LruCache::new(cap(lim.instruction_dedup_entries)),
            recent_tx: LruCache::new(cap(lim.recent_transactions)),
            deferred: LruCache::new(cap(lim.recent_transactions)),
        }
    }

    /// Looks `value` up in the named index first, then in every other one in declaration order.
    pub fn find_in_indexes(&mut self, first: Option<usize>, value: &str) -> Option<&Json> {
        // Each index is asked once, as the reference does (a hit moves to the front of its LRU).
        if let Some(i) = first {
            if self.lookups[i].contains(value) {
                return self.lookups[i].get(value);
            }
        }
        for (i, ix) in self.lookups.iter_mut().enumerate() {
            if Some(i) == first {
                continue;
            }
            if let Some(v) = ix.get(value) {
                return Some(v);
            }
        }
        None
    }
}
