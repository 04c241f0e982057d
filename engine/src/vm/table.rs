//! One entity type's bounded state: rows, indexes, pending queues, recency and dedup memory.
//!
//! Every structure is an LRU cache with a capacity from [`VmLimits`](super::VmLimits) or
//! [`StateTableConfig`]: whatever the input, memory stays bounded, and what falls out is counted.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

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

/// A bounded LRU map: every table, index and queue of the VM is one.
///
/// Adding to it allocates nothing once it has held as many entries as it ever will. Two things
/// make that so:
/// - its list nodes are never freed: a removed or evicted entry's node goes to a free list the
///   next new entry takes it from (`hashlink`'s linked map keeps one), so an entry removed and
///   another filed (a lookup value a changed PDA mapping takes back, a pending queue replayed)
///   costs no allocation;
/// - once full, [`Lru::file`] builds the new entry in the key and value it evicts: the evicted
///   entry stays here as the spare the next new entry is written into;
/// - the first time it is full, its hash table makes room for twice as many entries: a removed
///   entry can leave a tombstone in the table, and when tombstones have used up the free room
///   the table is rebuilt, in place if it is at most half full and otherwise into a new, larger
///   allocation. Without the room, when that happened depended on where keys hashed (seeded at
///   random), so a full map could still allocate once, at any time.
///
/// The method names and their meaning are those of the `lru` crate's `LruCache` (`get` marks an
/// entry used, `peek` does not; `iter` starts at the most recently used).
pub(crate) struct Lru<K: Hash + Eq, V> {
    map: hashlink::LinkedHashMap<K, V, Hasher>,
    capacity: usize,
    /// The entry evicted last (stale contents), handed to the next [`Lru::file`].
    pub spare: Option<(K, V)>,
    /// Whether the table has made room for twice its capacity (see above).
    roomy: bool,
}

impl<K: Hash + Eq, V> Lru<K, V> {
    /// An empty map holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self::with_hasher(capacity, Hasher::default())
    }

    /// [`Lru::new`] hashing with `hasher`: maps given clones of one hasher agree on every key's
    /// hash, so a key hashed once can be looked up in each ([`Lru::get_hashed`]).
    pub fn with_hasher(capacity: usize, hasher: Hasher) -> Self {
        Lru {
            map: hashlink::LinkedHashMap::with_hasher(hasher),
            capacity: capacity.max(1),
            spare: None,
            roomy: false,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_full(&self) -> bool {
        self.map.len() >= self.capacity
    }

    pub fn contains<Q: Hash + Eq + ?Sized>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.map.contains_key(k)
    }

    /// The value under `k`, marked as the most recently used.
    pub fn get<Q: Hash + Eq + ?Sized>(&mut self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.map.to_back(k).map(|v| &*v)
    }

    /// The value under `k`, marked as the most recently used.
    pub fn get_mut<Q: Hash + Eq + ?Sized>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.map.to_back(k)
    }

    /// Whether `k`, whose hash by this map's hasher is `hash`, is in the map.
    pub fn contains_hashed<Q: Hash + Eq + ?Sized>(&self, hash: u64, k: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.map
            .raw_entry()
            .from_key_hashed_nocheck(hash, k)
            .is_some()
    }

    /// The hash of `k` by this map's hasher, for the `_hashed` lookups.
    pub fn hash_of<Q: Hash + ?Sized>(&self, k: &Q) -> u64 {
        self.map.hasher().hash_one(k)
    }

    /// [`Lru::get_mut`] of `k`, whose hash by this map's hasher is `hash`.
    pub fn get_mut_hashed<Q: Hash + Eq + ?Sized>(&mut self, hash: u64, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        match self.map.raw_entry_mut().from_key_hashed_nocheck(hash, k) {
            hashlink::linked_hash_map::RawEntryMut::Occupied(mut e) => {
                e.to_back();
                Some(e.into_mut())
            }
            hashlink::linked_hash_map::RawEntryMut::Vacant(_) => None,
        }
    }

    /// [`Lru::peek_mut`] of `k`, whose hash by this map's hasher is `hash`.
    pub fn peek_mut_hashed<Q: Hash + Eq + ?Sized>(&mut self, hash: u64, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        match self.map.raw_entry_mut().from_key_hashed_nocheck(hash, k) {
            hashlink::linked_hash_map::RawEntryMut::Occupied(e) => Some(e.into_mut()),
            hashlink::linked_hash_map::RawEntryMut::Vacant(_) => None,
        }
    }

    /// [`Lru::get`] of `k`, whose hash by this map's hasher is `hash`.
    pub fn get_hashed<Q: Hash + Eq + ?Sized>(&mut self, hash: u64, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.get_mut_hashed(hash, k).map(|v| &*v)
    }

    /// The value under `k`, its place in the order left alone.
    pub fn peek<Q: Hash + Eq + ?Sized>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.map.get(k)
    }

    /// The value under `k`, its place in the order left alone.
    pub fn peek_mut<Q: Hash + Eq + ?Sized>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.map.get_mut(k)
    }

    /// The least recently used entry.
    pub fn peek_lru(&self) -> Option<(&K, &V)> {
        self.map.front()
    }

    /// Puts `v` under `k` as the most recently used entry; returns the value it replaced. A new
    /// key in a full map evicts the least recently used entry (dropped).
    pub fn put(&mut self, k: K, v: V) -> Option<V> {
        if let Some(old) = self.map.to_back(&k) {
            return Some(std::mem::replace(old, v));
        }
        self.insert_new(k, v);
        None
    }

    /// Like [`Lru::put`], but returns what left: the entry `k` had (with the key passed in), or
    /// the entry evicted to make room.
    pub fn push(&mut self, k: K, v: V) -> Option<(K, V)> {
        if let Some(old) = self.map.to_back(&k) {
            let old = std::mem::replace(old, v);
            return Some((k, old));
        }
        self.insert_new(k, v)
    }

    /// Inserts `k`, not in the map, as the most recently used entry; returns the entry evicted to
    /// make room. Evicted before the insert, so that the insert takes the evicted entry's node.
    fn insert_new(&mut self, k: K, v: V) -> Option<(K, V)> {
        let evicted = if self.is_full() {
            if !self.roomy {
                self.roomy = true;
                self.map.reserve(self.capacity + 2);
            }
            self.map.pop_front()
        } else {
            None
        };
        self.map.insert(k, v);
        evicted
    }

    /// Removes the entry under `k`; returns its value.
    pub fn pop<Q: Hash + Eq + ?Sized>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.map.remove(k)
    }

    /// Removes the entry under `k`; returns it.
    pub fn pop_entry<Q: Hash + Eq + ?Sized>(&mut self, k: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
    {
        self.map.remove_entry(k)
    }

    /// The entries from the most recently used to the least.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().rev()
    }

    /// Adds the entry `build` makes, as the most recently used, given the spare to build it in
    /// (`None` while the map has not evicted anything): `build` overwrites its stale key and
    /// value. The key must not be in the map. Returns the entry evicted to make room, if any: it
    /// is the spare now, for the caller to count or look at.
    pub fn file(&mut self, build: impl FnOnce(Option<(K, V)>) -> (K, V)) -> Option<&mut (K, V)> {
        let (k, v) = build(self.spare.take());
        self.spare = self.insert_new(k, v);
        self.spare.as_mut()
    }
}

/// The hasher of the VM's maps (seeded at random per process).
pub(crate) type Hasher = hashlink::DefaultHashBuilder;

/// A 64-bit hash of `text` (the same in every run).
pub(crate) fn text_hash(text: &str) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

pub(crate) struct Table {
    /// The reference creates an entity's table on the first handler that reaches the state read;
    /// several behaviours (PDA hooks, queueing) depend on whether it exists yet.
    pub exists: bool,
    pub rows: Lru<String, (Json, super::row::Row)>,
    /// An evicted row, emptied, that the next new row of this table is made in.
    pub spare_row: Option<super::row::Row>,
    pub lookups: Vec<Lru<String, Json>>,
    /// The hasher the lookup indexes and the pending queues share: a value is hashed once for
    /// all of them ([`Table::hash`]).
    lookup_hasher: Hasher,
    pub temporal: Vec<Lru<String, Vec<(i64, Json)>>>,
    pub pda: Lru<String, String>,
    pub pending: Lru<Arc<str>, Vec<Pending>>,
    pub pending_ix: Lru<String, Vec<PendingIx>>,
    /// The last update per account address, replayed when its PDA mapping changes (kept in
    /// the first entity's table only: that is where mappings live).
    pub last_data: Lru<Arc<str>, Pending>,
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
    /// A row to make a new row of this table in: the last evicted one, emptied
    /// (`VmContext::recycle_row`), or a new one.
    pub fn blank_row(&mut self, layout: &super::row::Layout) -> super::row::Row {
        self.spare_row
            .take()
            .unwrap_or_else(|| super::row::Row::new(layout))
    }

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
        let lookup_hasher = Hasher::default();
        Table {
            exists: false,
            rows: Lru::new(cfg.max_entries),
            spare_row: None,
            lookups: (0..n_lookup)
                .map(|_| Lru::with_hasher(lim.lookup_index_entries, lookup_hasher.clone()))
                .collect(),
            temporal: (0..n_temporal)
                .map(|_| Lru::new(lim.lookup_index_entries))
                .collect(),
            pda: Lru::new(lim.pda_entries),
            pending: Lru::with_hasher(lim.pending_addresses, lookup_hasher.clone()),
            pending_ix: Lru::new(lim.pending_addresses),
            last_data: Lru::new(lim.pda_entries),
            versions: Lru::new(lim.version_entries),
            ix_seen: Lru::new(lim.instruction_dedup_entries),
            recent_tx: Lru::new(lim.recent_transactions),
            deferred: Lru::new(lim.recent_transactions),
            lookup_hasher,
        }
    }

    /// The hash of `value` in the lookup indexes and the pending queues.
    pub fn hash(&self, value: &str) -> u64 {
        self.lookup_hasher.hash_one(value)
    }

    /// Looks `value` up in the named index first, then in every other one in declaration order.
    pub fn find_in_indexes(&mut self, first: Option<usize>, value: &str) -> Option<&Json> {
        // Each index is asked once, as the reference does (a hit moves to the front of its LRU).
        // They share a hasher: the value is hashed once.
        let hash = self.hash(value);
        if let Some(i) = first {
            if self.lookups[i].contains_hashed(hash, value) {
                return self.lookups[i].get_hashed(hash, value);
            }
        }
        for (i, ix) in self.lookups.iter_mut().enumerate() {
            if Some(i) == first {
                continue;
            }
            if let Some(v) = ix.get_hashed(hash, value) {
                return Some(v);
            }
        }
        None
    }

    /// Removes `value` from every lookup index. A removed entry becomes its index's spare (see
    /// [`Lru`]), so the next new entry is written in its key and value; the spare it replaces,
    /// if any, is handed to `keep`.
    pub fn unmap(&mut self, value: &str, mut keep: impl FnMut(Json)) {
        for ix in &mut self.lookups {
            if let Some(entry) = ix.pop_entry(value) {
                if let Some((k, v)) = ix.spare.replace(entry) {
                    keep(Json::String(k));
                    keep(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn get_and_put_mark_an_entry_used_peek_does_not_and_the_least_used_is_evicted() {
        let mut lru: Lru<&str, u32> = Lru::new(3);
        assert_eq!(lru.put("a", 1), None);
        assert_eq!(lru.put("b", 2), None);
        assert_eq!(lru.push("c", 3), None, "room left: nothing leaves");
        let order = |l: &Lru<&'static str, u32>| l.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        assert_eq!(order(&lru), ["c", "b", "a"], "most recently used first");
        assert_eq!(lru.peek("a"), Some(&1));
        assert_eq!(
            lru.peek_lru(),
            Some((&"a", &1)),
            "peek leaves the order alone"
        );
        assert_eq!(lru.get("a"), Some(&1));
        assert_eq!(lru.peek_lru(), Some((&"b", &2)), "get marks it used");
        assert_eq!(
            lru.put("b", 20),
            Some(2),
            "a put under a key replaces its value"
        );
        assert_eq!(order(&lru), ["b", "a", "c"]);
        assert_eq!(
            lru.push("d", 4),
            Some(("c", 3)),
            "full: the least used leaves"
        );
        assert_eq!(lru.pop("a"), Some(1));
        assert!(!lru.contains("a"));
        assert_eq!(lru.push("e", 5), None, "a removed entry left room");
        assert_eq!(lru.pop_entry("e"), Some(("e", 5)));
        assert_eq!(order(&lru), ["d", "b"]);
        lru.put("g", 7);
        assert_eq!(
            lru.put("h", 8),
            None,
            "a put that evicts hands nothing back"
        );
        assert_eq!(order(&lru), ["h", "g", "d"]);
    }

    #[test]
    fn maps_sharing_a_hasher_find_a_key_hashed_once() {
        let hasher = Hasher::default();
        let (mut a, mut b): (Lru<String, u32>, Lru<String, u32>) = (
            Lru::with_hasher(2, hasher.clone()),
            Lru::with_hasher(2, hasher.clone()),
        );
        a.put("x".into(), 1);
        a.put("y".into(), 2);
        b.put("y".into(), 3);
        let (hx, hy) = (hasher.hash_one("x"), hasher.hash_one("y"));
        assert!(a.contains_hashed(hx, "x") && !b.contains_hashed(hx, "x"));
        assert_eq!(b.get_hashed(hy, "y"), Some(&3));
        assert_eq!(a.get_hashed(hx, "x"), Some(&1));
        assert_eq!(
            a.peek_lru(),
            Some((&"y".to_string(), &2)),
            "a hashed get marks it used"
        );
        assert_eq!(b.get_hashed(hx, "x"), None);
    }

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
        t.unmap("b", drop);
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
