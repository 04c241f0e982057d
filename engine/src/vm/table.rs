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

/// A bounded LRU cache that, once full, builds every new entry in the allocations of the one it
/// evicts: the cache reuses the evicted entry's list node, and the evicted key and value stay here
/// as the spare the next new entry is written into. Adding to a full cache allocates nothing.
///
/// Everything else is the [`LruCache`] it dereferences to.
pub(crate) struct Lru<K: Hash + Eq, V> {
    cache: LruCache<K, V>,
    /// The entry evicted last (stale contents), handed to the next [`Lru::file`].
    pub spare: Option<(K, V)>,
}

impl<K: Hash + Eq, V> Lru<K, V> {
    pub fn new(capacity: usize) -> Self {
        Lru {
            cache: LruCache::new(cap(capacity)),
            spare: None,
        }
    }

    /// Adds the entry `build` makes, at the front, given the spare to build it in (`None` while
    /// the cache has not evicted anything): `build` overwrites its stale key and value. The key
    /// must not be in the cache. Returns the entry evicted to make room, if any: it is the
    /// spare now, for the caller to count or look at.
    pub fn file(&mut self, build: impl FnOnce(Option<(K, V)>) -> (K, V)) -> Option<&mut (K, V)> {
        let (k, v) = build(self.spare.take());
        self.spare = self.cache.push(k, v);
        self.spare.as_mut()
    }
}

impl<K: Hash + Eq, V> std::ops::Deref for Lru<K, V> {
    type Target = LruCache<K, V>;
    fn deref(&self) -> &LruCache<K, V> {
        &self.cache
    }
}

impl<K: Hash + Eq, V> std::ops::DerefMut for Lru<K, V> {
    fn deref_mut(&mut self) -> &mut LruCache<K, V> {
        &mut self.cache
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
    pub lookups: Vec<Lru<String, Json>>,
    pub temporal: Vec<LruCache<String, Vec<(i64, Json)>>>,
    pub pda: Lru<String, String>,
    pub pending: LruCache<Arc<str>, Vec<Pending>>,
    pub pending_ix: LruCache<String, Vec<PendingIx>>,
    /// The last update per account address, replayed when its PDA mapping changes (kept in
    /// the first entity's table only: that is where mappings live).
    pub last_data: LruCache<Arc<str>, Pending>,
    /// Last (slot, write_version) applied per (account address, event type).
    pub versions: Lru<(Arc<str>, EventId), (u64, u64)>,
    /// Instructions applied: (rendered key, event type, slot, transaction index).
    /// Keyed by ([`text_hash`] of the row key, type, slot, txn index); holds the key text.
    pub ix_seen: Lru<(u64, EventId, u64, u64), String>,
    pub recent_tx: Lru<SigKey, Vec<EventId>>,
    pub deferred: Lru<(SigKey, EventId), Vec<Deferred>>,
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
    /// rewritten in place; a new one, when the map is full, evicts the oldest (built in the text
    /// of the one evicted before, see [`Lru`]), and `evicted` is told the evicted PDA.
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
        let made_room = self.pda.file(|spare| {
            let (mut k, mut v) = spare.unwrap_or_default();
            k.clear();
            k.push_str(pda);
            v.clear();
            v.push_str(seed);
            (k, v)
        });
        if made_room.is_some() {
            let spare = self.pda.spare.take();
            if let Some((k, _)) = &spare {
                evicted(self, k);
            }
            self.pda.spare = spare;
        }
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
                .map(|_| Lru::new(lim.lookup_index_entries))
                .collect(),
            temporal: (0..n_temporal)
                .map(|_| LruCache::new(cap(lim.lookup_index_entries)))
                .collect(),
            pda: Lru::new(lim.pda_entries),
            pending: LruCache::new(cap(lim.pending_addresses)),
            pending_ix: LruCache::new(cap(lim.pending_addresses)),
            last_data: LruCache::new(cap(lim.pda_entries)),
            versions: Lru::new(lim.version_entries),
            ix_seen: Lru::new(lim.instruction_dedup_entries),
            recent_tx: Lru::new(lim.recent_transactions),
            deferred: Lru::new(lim.recent_transactions),
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

    /// Removes `value` from every lookup index. A removed entry becomes its index's spare (see
    /// [`Lru`]) when it has none, so the next new entry is written in its key and value.
    pub fn unmap(&mut self, value: &str) {
        for ix in &mut self.lookups {
            if let Some(entry) = ix.pop_entry(value) {
                ix.spare.get_or_insert(entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_lru_builds_the_new_entry_in_the_evicted_ones_allocations() {
        let mut lru: Lru<String, String> = Lru::new(1);
        // A fresh entry's buffers are 64 bytes, a reused one keeps what it had.
        let fill = |text: &'static str| {
            move |spare: Option<(String, String)>| {
                let (mut k, mut v) =
                    spare.unwrap_or_else(|| (String::with_capacity(64), String::with_capacity(64)));
                k.clear();
                k.push_str(text);
                v.clear();
                v.push_str(text);
                (k, v)
            }
        };
        assert!(
            lru.file(fill("first")).is_none(),
            "room left: nothing evicted"
        );
        lru.peek_mut("first").unwrap().reserve(1000);
        let evicted = lru
            .file(fill("second"))
            .expect("full: the oldest makes room");
        assert_eq!(evicted.0, "first");
        lru.file(fill("third"));
        let (k, v) = lru.peek_lru().unwrap();
        assert_eq!((k.as_str(), v.as_str()), ("third", "third"));
        assert_eq!(k.capacity(), 64);
        assert!(
            v.capacity() > 1000,
            "the value is written in the evicted one's buffer"
        );
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn an_unmapped_lookup_value_is_gone_and_its_allocations_go_to_the_next_entry() {
        let lim = VmLimits {
            lookup_index_entries: 2,
            ..VmLimits::default()
        };
        let mut t = Table::new(&StateTableConfig::default(), &lim, 1, 0);
        let put = |t: &mut Table, k: &'static str, v: Json| {
            t.lookups[0].file(|spare| {
                let (mut key, _) = spare.unwrap_or_default();
                key.clear();
                key.push_str(k);
                (key, v)
            });
        };
        put(&mut t, "a", json!(1));
        t.lookups[0].file(|_| {
            let mut key = String::with_capacity(64);
            key.push('b');
            (key, json!("row b"))
        });
        t.unmap("b");
        assert_eq!(t.find_in_indexes(Some(0), "b"), None);
        assert_eq!(t.find_in_indexes(None, "b"), None);
        put(&mut t, "c", json!(3));
        assert_eq!(
            t.find_in_indexes(None, "a"),
            Some(&json!(1)),
            "there was room: kept"
        );
        assert_eq!(t.find_in_indexes(Some(0), "c"), Some(&json!(3)));
        let c = t.lookups[0]
            .iter()
            .next()
            .map(|(k, _)| k.capacity())
            .unwrap();
        assert_eq!(c, 64, "the new key is written in the removed one's text");
        assert_eq!(t.lookups[0].len(), 2);
    }
}
