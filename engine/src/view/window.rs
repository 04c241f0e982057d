//! Sorted windows: the rows of a derived view in pipeline order, bounded, and the groups of
//! subscriptions that look at the same slice of them.
//!
//! Rows are ordered by `(sort value, entity key)`; `desc` reverses the whole comparison, strings
//! included (the reference leaves strings ascending). The row set is bounded by
//! `max_entities_per_view`: beyond it the row that sorts LAST is dropped, since windows read from
//! the front. A dropped row comes back with its next update (the projector feeds the full merged
//! entity from the entity cache), so only rows that are both far down the order and idle are lost.
//!
//! Subscriptions with the same effective `(start, count)` share one group: the window is
//! recomputed once per group per update and the resulting `delete`/`upsert` frames are built once
//! (see `emit::Emitter`) and handed to each member. Only deltas go out: `delete` for keys that left the
//! window, `upsert` for keys that entered it and for the updated key if it stayed.
//!
//! Rows hold no copy of their entity while the entity cache has it (see `Row`), so an update
//! merges in place instead of cloning the entity.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::emit::Emitter;
use super::json::SortValue;
use super::lru::Lru;
use super::pipeline::Pipeline;
use super::spec::SortOrder;
use super::SubId;

/// `take` when neither the subscription nor the pipeline gives one.
pub const DEFAULT_TAKE: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    val: SortValue,
    key: Arc<str>,
    desc: bool,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        let o = self
            .val
            .cmp(&other.val)
            .then_with(|| self.key.cmp(&other.key));
        if self.desc {
            o.reverse()
        } else {
            o
        }
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A row's position. Its entity is read from the entity cache (no copy, so the cache can merge
/// in place); only when the cache evicts the key does the row keep the evicted entity itself.
#[derive(Debug)]
struct Row {
    pos: Entry,
    detached: Option<Arc<Value>>,
}

/// Where rows read their entities: the entity cache of the view's entity.
pub type Source = Lru<Arc<Value>>;

fn entity<'a>(
    rows: &'a HashMap<Arc<str>, Row>,
    src: &'a Source,
    key: &str,
) -> Option<&'a Arc<Value>> {
    let r = rows.get(key)?;
    r.detached.as_ref().or_else(|| src.peek(key))
}

/// Membership test over a window's keys: a scan for small windows, a hash set for large ones.
enum Members<'a> {
    Scan(&'a [Arc<str>]),
    Set(HashSet<&'a str>),
}

impl<'a> Members<'a> {
    fn of(keys: &'a [Arc<str>]) -> Self {
        if keys.len() <= 16 {
            Members::Scan(keys)
        } else {
            Members::Set(keys.iter().map(|k| &**k).collect())
        }
    }

    fn has(&self, k: &str) -> bool {
        match self {
            Members::Scan(keys) => keys.iter().any(|x| &**x == k),
            Members::Set(set) => set.contains(k),
        }
    }
}

/// Subscriptions sharing one slice `[start, start + count)` of the rows.
#[derive(Debug)]
struct Group {
    start: usize,
    count: usize,
    keys: Vec<Arc<str>>,
    subs: Vec<SubId>,
}

#[derive(Debug)]
pub struct WindowView {
    pub pipeline: Pipeline,
    set: BTreeSet<Entry>,
    rows: HashMap<Arc<str>, Row>,
    cap: usize,
    groups: Vec<Group>,
}

impl WindowView {
    pub fn new(pipeline: Pipeline, cap: usize) -> Self {
        WindowView {
            pipeline,
            set: BTreeSet::new(),
            rows: HashMap::new(),
            cap: cap.max(1),
            groups: Vec::new(),
        }
    }

    fn desc(&self) -> bool {
        self.pipeline.order.order == SortOrder::Desc
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The effective slice of a subscription's `skip`/`take` within the pipeline's own.
    pub fn slice(&self, skip: Option<usize>, take: Option<usize>) -> (usize, usize) {
        let skip = skip.unwrap_or(0);
        let start = self.pipeline.offset.saturating_add(skip);
        let count = match self.pipeline.limit {
            Some(l) => take.unwrap_or(l).min(l.saturating_sub(skip)),
            None => take.unwrap_or(DEFAULT_TAKE),
        };
        (start, count)
    }

    fn compute(&self, start: usize, count: usize) -> Vec<Arc<str>> {
        self.set
            .iter()
            .skip(start)
            .take(count)
            .map(|e| e.key.clone())
            .collect()
    }

    /// Every row of the view in order, after the pipeline's skip/take (for tests and tools).
    pub fn ordered(&self, src: &Source) -> Vec<(Arc<str>, Arc<Value>)> {
        let count = self.pipeline.limit.unwrap_or(usize::MAX);
        self.ordered_slice(src, self.pipeline.offset, count)
    }

    /// The rows of the slice `[start, start + count)`.
    pub fn ordered_slice(
        &self,
        src: &Source,
        start: usize,
        count: usize,
    ) -> Vec<(Arc<str>, Arc<Value>)> {
        let keys = self.set.iter().skip(start).take(count).map(|e| &e.key);
        keys.filter_map(|k| Some((k.clone(), entity(&self.rows, src, k)?.clone())))
            .collect()
    }

    /// The row of `key`, if the view holds it.
    pub fn get<'a>(&'a self, src: &'a Source, key: &str) -> Option<&'a Value> {
        entity(&self.rows, src, key).map(|e| &**e)
    }

    /// The entity cache is evicting `key`: a row of it keeps the entity from now on.
    pub fn adopt(&mut self, key: &str, e: &Arc<Value>) {
        if let Some(r) = self.rows.get_mut(key) {
            r.detached = Some(e.clone());
        }
    }

    /// Adds `sub` to the group of its slice; returns the rows it should get as its snapshot.
    pub fn subscribe(
        &mut self,
        src: &Source,
        sub: SubId,
        start: usize,
        count: usize,
    ) -> Vec<(Arc<str>, Arc<Value>)> {
        let gi = match self
            .groups
            .iter()
            .position(|g| g.start == start && g.count == count)
        {
            Some(i) => i,
            None => {
                let keys = self.compute(start, count);
                self.groups.push(Group {
                    start,
                    count,
                    keys,
                    subs: Vec::new(),
                });
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[gi];
        g.subs.push(sub);
        let rows = &self.rows;
        g.keys
            .iter()
            .filter_map(|k| Some((k.clone(), entity(rows, src, k)?.clone())))
            .collect()
    }

    /// Removes `sub`; returns the keys of the window it had.
    pub fn unsubscribe(&mut self, sub: SubId) -> Vec<Arc<str>> {
        let Some(gi) = self.groups.iter().position(|g| g.subs.contains(&sub)) else {
            return Vec::new();
        };
        let g = &mut self.groups[gi];
        g.subs.retain(|s| *s != sub);
        if g.subs.is_empty() {
            self.groups.swap_remove(gi).keys
        } else {
            g.keys.clone()
        }
    }

    /// `key` has a new merged entity in `src`: reposition it and send each group its deltas.
    pub(crate) fn update(&mut self, key: &Arc<str>, src: &Source, em: &mut Emitter<'_>) {
        let Some(current) = src.peek(key) else {
            return;
        };
        let old = self.rows.get(key).map(|r| r.pos.clone());
        let new = self.pipeline.admits(current).then(|| Entry {
            val: SortValue::of(current, &self.pipeline.order.path),
            key: key.clone(),
            desc: self.desc(),
        });
        if let Some(o) = &old {
            self.set.remove(o);
        }
        match &new {
            Some(n) => {
                self.set.insert(n.clone());
                let row = Row {
                    pos: n.clone(),
                    detached: None,
                };
                self.rows.insert(key.clone(), row);
            }
            None => {
                self.rows.remove(key);
            }
        }
        while self.set.len() > self.cap {
            if let Some(last) = self.set.pop_last() {
                self.rows.remove(&last.key);
            }
        }
        for g in &mut self.groups {
            if g.keys.len() == g.count && !g.keys.contains(key) {
                // Untouched if the key sorts after the window both before and after the update.
                if let Some(last) = g.keys.last().and_then(|k| self.rows.get(k)) {
                    let after = |e: &Option<Entry>| e.as_ref().is_none_or(|e| *e > last.pos);
                    if after(&old) && after(&new) {
                        continue;
                    }
                }
            }
            let keys: Vec<Arc<str>> = self
                .set
                .iter()
                .skip(g.start)
                .take(g.count)
                .map(|e| e.key.clone())
                .collect();
            let mut frames = Vec::new();
            let (in_old, in_new) = (Members::of(&g.keys), Members::of(&keys));
            for k in &g.keys {
                if !in_new.has(k) {
                    frames.push(em.delete(k));
                }
            }
            for k in &keys {
                if !in_old.has(k) || k == key {
                    if let Some(e) = entity(&self.rows, src, k) {
                        frames.push(em.upsert(k, e));
                    }
                }
            }
            g.keys = keys;
            for s in &g.subs {
                for f in &frames {
                    em.out.push(super::Output::To {
                        sub: *s,
                        frame: f.clone(),
                    });
                }
            }
        }
    }
}
