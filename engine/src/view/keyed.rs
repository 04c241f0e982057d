//! `Keyed` derived views: the source's entities re-keyed by a field of their own, served like a
//! state view (`mode:"state"`, one row per key, subscribers name the key).
//!
//! Frames are full `upsert`s of the entity under its keyed value; when an entity's keyed value
//! changes, or it stops passing the filters, the old key gets a `delete` (only if that entity still
//! owns it: when two entities share a keyed value the last writer owns it). Rows are an LRU bounded
//! by `max_entities_per_view`; eviction is silent, as in the entity cache.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::emit::Emitter;
use super::json::{get_path, render_key};
use super::lru::Lru;
use super::pipeline::Pipeline;
use super::window::Source;

#[derive(Debug)]
pub struct KeyedView {
    pub pipeline: Pipeline,
    path: Vec<String>,
    /// keyed value → (owning entity key, the entity once the entity cache evicted it)
    rows: Lru<(Arc<str>, Option<Arc<Value>>)>,
    /// entity key → keyed value it owns; holds exactly the owners of `rows`.
    owner: HashMap<Arc<str>, Arc<str>>,
}

impl KeyedView {
    pub fn new(pipeline: Pipeline, path: Vec<String>, cap: usize) -> Self {
        KeyedView {
            pipeline,
            path,
            rows: Lru::new(cap),
            owner: HashMap::new(),
        }
    }

    pub fn get<'a>(&'a self, src: &'a Source, key: &str) -> Option<&'a Arc<Value>> {
        let (owner, detached) = self.rows.peek(key)?;
        detached.as_ref().or_else(|| src.peek(owner))
    }

    pub fn rows(&self, src: &Source) -> Vec<(Arc<str>, Arc<Value>)> {
        self.rows
            .iter_recent()
            .filter_map(|(k, (owner, d))| {
                Some((k.clone(), d.as_ref().or_else(|| src.peek(owner))?.clone()))
            })
            .collect()
    }

    /// The entity cache is evicting entity `ekey`: the row it owns keeps the entity from now on.
    pub fn adopt(&mut self, ekey: &str, e: &Arc<Value>) {
        let Some(k) = self.owner.get(ekey).cloned() else {
            return;
        };
        if let Some((owner, d)) = self.rows.peek_mut(&k) {
            if &**owner == ekey {
                *d = Some(e.clone());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Entity `ekey` has a new merged entity in `src`; `wanted(key)` says whether any subscriber
    /// listens to a keyed value (frames are built only then).
    pub(crate) fn update(
        &mut self,
        ekey: &Arc<str>,
        src: &Source,
        wanted: impl Fn(&str) -> bool,
        em: &mut Emitter<'_>,
    ) {
        let Some(entity) = src.peek(ekey) else { return };
        let new: Option<Arc<str>> = if self.pipeline.admits(entity) {
            get_path(entity, &self.path)
                .and_then(render_key)
                .map(Arc::from)
        } else {
            None
        };
        if let Some(old) = self.owner.get(ekey).cloned() {
            if Some(&old) != new.as_ref() {
                self.owner.remove(ekey);
                if self.rows.peek(&old).is_some_and(|(o, _)| o == ekey) {
                    self.rows.remove(&old);
                    if wanted(&old) {
                        let f = em.delete(&old);
                        em.broadcast(&old, f);
                    }
                }
            }
        }
        let Some(k) = new else { return };
        let (slot, evicted) = self.rows.touch_or_insert_with(&k, || (ekey.clone(), None));
        let previous_owner = std::mem::replace(slot, (ekey.clone(), None)).0;
        if previous_owner != *ekey && self.owner.get(&previous_owner) == Some(&k) {
            self.owner.remove(&previous_owner);
        }
        if let Some((ek, (owner, _))) = evicted {
            if self.owner.get(&owner) == Some(&ek) {
                self.owner.remove(&owner);
            }
        }
        self.owner.insert(ekey.clone(), k.clone());
        if wanted(&k) {
            let f = em.upsert(&k, entity);
            em.broadcast(&k, f);
        }
    }
}
