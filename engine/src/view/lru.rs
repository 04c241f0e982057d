//! A bounded map with least-recently-used eviction, keyed by entity key.
//!
//! Every touch stamps the entry with a fresh counter; a `BTreeMap` from stamp to key gives the
//! eviction order and the "most recent first" iteration that snapshots use. Reads for snapshots
//! [`peek`](Lru::peek) (no bump); writes bump. Both are O(log n).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Lru<V> {
    map: HashMap<Arc<str>, (u64, V)>,
    order: BTreeMap<u64, Arc<str>>,
    next: u64,
    cap: usize,
}

impl<V> Lru<V> {
    /// An empty map holding at most `cap` entries (at least 1).
    pub fn new(cap: usize) -> Self {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The value of `key` without bumping it.
    pub fn peek(&self, key: &str) -> Option<&V> {
        self.map.get(key).map(|(_, v)| v)
    }

    /// The value of `key`, mutable, without bumping it.
    pub fn peek_mut(&mut self, key: &str) -> Option<&mut V> {
        self.map.get_mut(key).map(|(_, v)| v)
    }

    /// The entry of `key`, bumped to most recent; created with `init` when absent, evicting the
    /// least recent entry if the map is full. Returns the evicted entry too.
    pub fn touch_or_insert_with(
        &mut self,
        key: &Arc<str>,
        init: impl FnOnce() -> V,
    ) -> (&mut V, Option<(Arc<str>, V)>) {
        let stamp = self.next;
        self.next += 1;
        let mut evicted = None;
        if let Some((old, _)) = self.map.get(&**key) {
            self.order.remove(old);
        } else if self.map.len() >= self.cap {
            if let Some((_, k)) = self.order.pop_first() {
                evicted = self.map.remove(&k).map(|(_, v)| (k, v));
            }
        }
        self.order.insert(stamp, key.clone());
        let slot = self
            .map
            .entry(key.clone())
            .or_insert_with(|| (stamp, init()));
        slot.0 = stamp;
        (&mut slot.1, evicted)
    }

    /// Removes `key`; `None` if absent.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let (stamp, v) = self.map.remove(key)?;
        self.order.remove(&stamp);
        Some(v)
    }

    /// Entries, most recently touched first.
    pub fn iter_recent(&self) -> impl Iterator<Item = (&Arc<str>, &V)> + '_ {
        self.order
            .values()
            .rev()
            .filter_map(|k| self.map.get(k).map(|(_, v)| (k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_touched_and_peek_does_not_bump() {
        let mut l = Lru::new(2);
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        l.touch_or_insert_with(&a, || 1);
        l.touch_or_insert_with(&b, || 2);
        assert_eq!(l.peek("a"), Some(&1));
        let (_, ev) = l.touch_or_insert_with(&c, || 3);
        assert_eq!(ev, Some((a.clone(), 1)), "peek must not have protected `a`");
        l.touch_or_insert_with(&b, || 0);
        let (_, ev) = l.touch_or_insert_with(&a, || 4);
        assert_eq!(ev.map(|e| e.0), Some(c));
        let order: Vec<_> = l.iter_recent().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(order, vec![("a".to_string(), 4), ("b".to_string(), 2)]);
        assert_eq!(l.remove("b"), Some(2));
        assert_eq!(l.len(), 1);
    }
}
