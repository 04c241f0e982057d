//! Views: mutations in, frames out.
//!
//! For every entity `E`: `E/state`, `E/list`, `E/append`, plus the derived views of the stack file.
//! [`Views`] owns the entity caches (snapshots are served from them) and the sorted windows; it
//! turns each [`Mutation`] into [`Output`]s, each frame serialized once.
//!
//! Subscriptions are identified by a [`SubId`] chosen by the caller (the reactor that owns the
//! connection). Frames meant for every subscriber of a view go out as [`Output::Broadcast`];
//! frames meant for one subscription (its `subscribed` frame, its snapshot, its sorted window
//! deltas) go out as [`Output::To`].
//!
//! # The path of one mutation
//! ```text
//! Mutation ─► key rendered, big ints stringified, `_seq` injected
//!   ├─► entity cache of E (one LRU shared by E/state, E/list, E/append: they hold the same rows)
//!   ├─► one `patch` frame per base view that has a subscriber for this key: body serialized once,
//!   │   envelope written per view; Output::Broadcast (the reactor fans out by reference)
//!   └─► every derived view of E, fed the full merged entity:
//!         window views (Collection / Single): deltas per group of equal windows, Output::To
//!         keyed views: upsert/delete under the keyed value, Output::Broadcast
//! ```
//! Frames are built only for views (and keys) somebody listens to, so an unwatched view costs only
//! its cache update. Fan-out cost is per update; only window deltas are addressed per
//! subscription, and subscriptions with equal windows share the same frames.
//!
//! # Decisions
//! * **Empty snapshot.** A subscribe always sends at least one `snapshot` frame, after its
//!   `subscribed` frame: when there is nothing to send (empty view, unknown key, or
//!   `withSnapshot:false`) it is `{"mode":..,"entity":..,"op":"snapshot","data":[],"complete":true}`.
//!   The Rust SDK drops `subscribed` frames and becomes ready on its first parsable frame (it would
//!   otherwise wait its 5 s timeout); the TS client treats a snapshot with an empty `data` array
//!   as valid and stores nothing. Both become ready at once.
//! * **Duplicate subscribe.** The engine deduplicates by [`SubId`]; the reactor gives the same
//!   `SubId` to a repeated sub-key (`"{view}:{key}"`) of one connection. Subscribing with an
//!   active `SubId` replaces its registration (never two live registrations, never a killed
//!   stream) and sends `subscribed` and the snapshot again, which clients apply idempotently. On a
//!   window whose slice changed, keys of the old slice that are not in the new one get a `delete`
//!   first, so the client converges to exactly the new window.
//! * **Shards.** When several workers each hold part of a view's keys, the caller subscribes on
//!   each with [`Views::subscribe_shard`]: one `subscribed`, one final `complete:true`. Sorted
//!   windows, `Single` and `Keyed` views rank across all keys and must live on one shard.
//! * **Bounds.** The entity cache holds `max_entities_per_view` rows per entity (LRU, silent
//!   eviction); window and keyed views hold at most `max_entities_per_view` rows each (see
//!   [`window`] and [`keyed`]); arrays keep their newest `max_array_length` elements.

pub mod json;
pub mod keyed;
pub mod lru;
pub mod pipeline;
pub mod spec;
pub mod subscribe;
pub mod window;

mod emit;

pub use spec::ViewDef;
pub use subscribe::Subscription;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::config::EntityCacheConfig;
use crate::frame::envelope::write_json;
use crate::frame::{FrameWriter, Mode, SharedFrame};
use crate::mutation::{Mutation, Seq};
use emit::Emitter;
use json::{empty_object, merge, render_key, seq_of, stringify_big_ints};
use keyed::KeyedView;
use lru::Lru;
use pipeline::{Pipeline, PipelineError};
use spec::{SortOrder, ViewSource};
use window::WindowView;

/// Index of a view in its [`Views`]; stable for the life of a loaded stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewId(pub u32);

/// A subscription, named by the caller. The reactor encodes its own index in it so that a worker
/// can route [`Output::To`] frames back; the engine treats it as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId(pub u64);

/// A frame to deliver.
#[derive(Debug, Clone)]
pub enum Output {
    /// To every active subscription of `view` whose key filter admits `key`
    /// (list/append: no filter or an equal key; state: an equal key).
    Broadcast {
        view: ViewId,
        key: Arc<str>,
        frame: SharedFrame,
    },
    /// To one subscription only.
    To { sub: SubId, frame: SharedFrame },
}

/// Why a subscribe was refused. Sent to the client as a non-fatal error; the connection stays.
/// Nothing has been sent for the subscription and it is not registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("unknown view `{0}`")]
    UnknownView(String),
    #[error("snapshot of {rows} rows exceeds the limit of {limit}")]
    SnapshotLimitExceeded { rows: usize, limit: usize },
    /// The `after` cursor is not a `"{slot}:{index}"` seq; the client should resubscribe with a
    /// `_seq` it received, or without `after`.
    #[error("invalid cursor `{0}`")]
    InvalidCursor(String),
}

impl SubscribeError {
    /// The kebab-case code clients see in `error` / `code`.
    pub fn code(&self) -> &'static str {
        match self {
            SubscribeError::UnknownView(_) => "unknown-view",
            SubscribeError::SnapshotLimitExceeded { .. } => "snapshot-limit-exceeded",
            SubscribeError::InvalidCursor(_) => "invalid-cursor",
        }
    }
}

/// A derived view that could not be built. [`Views::new`] leaves such a view out (see
/// [`Views::skipped`]); [`Views::try_new`] refuses the whole set. Fix the stack file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("view `{view}`: unknown source `{from}`")]
    UnknownSource { view: String, from: String },
    #[error("view `{view}`: the id is already taken")]
    Duplicate { view: String },
    #[error("view `{view}`: its source chain is cyclic or deeper than 16")]
    SourceCycle { view: String },
    #[error("view `{view}`: {error}")]
    Pipeline { view: String, error: PipelineError },
}

/// Which subscriptions of a base or keyed view want which keys.
#[derive(Debug, Default)]
struct Audience {
    all: usize,
    by_key: HashMap<Arc<str>, usize>,
}

impl Audience {
    fn admits(&self, key: &str) -> bool {
        self.all > 0 || self.by_key.contains_key(key)
    }

    fn add(&mut self, key: Option<&Arc<str>>) {
        match key {
            None => self.all += 1,
            Some(k) => *self.by_key.entry(k.clone()).or_default() += 1,
        }
    }

    fn remove(&mut self, key: Option<&Arc<str>>) {
        match key {
            None => self.all = self.all.saturating_sub(1),
            Some(k) => {
                if let Some(n) = self.by_key.get_mut(k) {
                    *n -= 1;
                    if *n == 0 {
                        self.by_key.remove(k);
                    }
                }
            }
        }
    }
}

#[derive(Debug)]
enum Kind {
    Base { entity: usize },
    Window(WindowView),
    Keyed(KeyedView),
}

#[derive(Debug)]
struct Slot {
    name: Arc<str>,
    mode: Mode,
    kind: Kind,
    audience: Audience,
}

#[derive(Debug)]
struct EntityViews {
    /// `E/state`, `E/list`, `E/append`.
    base: [ViewId; 3],
    cache: Lru<Arc<Value>>,
    derived: Vec<ViewId>,
}

#[derive(Debug, Clone)]
struct SubEntry {
    view: ViewId,
    /// The audience key (base and keyed views); `None` = every key.
    key: Option<Arc<str>>,
}

/// The part one shard plays in a subscribe served by several shards
/// ([`Views::subscribe_shard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRole {
    /// Sends the `subscribed` frame.
    pub first: bool,
    /// Ends the snapshot with `complete:true`.
    pub last: bool,
}

impl ShardRole {
    /// The only shard: both first and last.
    pub const WHOLE: ShardRole = ShardRole {
        first: true,
        last: true,
    };
}

/// Counters of inputs the views could not use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Mutations for an entity the stack does not have.
    pub unknown_entity: u64,
    /// Mutations whose key is `null`.
    pub null_key: u64,
    /// Mutations whose patch is not a JSON object.
    pub non_object_patch: u64,
}

/// All views of one loaded stack, with their caches and subscriptions.
pub struct Views {
    cfg: EntityCacheConfig,
    slots: Vec<Slot>,
    /// The entity index of every view, by id.
    view_entity: Vec<usize>,
    by_name: HashMap<Arc<str>, ViewId>,
    entities: Vec<EntityViews>,
    entity_index: HashMap<Arc<str>, usize>,
    subs: HashMap<SubId, SubEntry>,
    writer: FrameWriter,
    scratch: Vec<u8>,
    skipped: Vec<ViewError>,
    stats: ApplyStats,
}

const BASE_MODES: [(&str, Mode); 3] = [
    ("state", Mode::State),
    ("list", Mode::List),
    ("append", Mode::Append),
];

impl Views {
    /// Registers `E/state`, `E/list`, `E/append` for every entity, then each derived view.
    /// Derived views that cannot be built are left out and listed by [`Views::skipped`].
    pub fn new<'a>(
        entities: impl IntoIterator<Item = (&'a str, &'a [ViewDef])>,
        cfg: EntityCacheConfig,
    ) -> Views {
        let mut v = Views {
            cfg,
            slots: Vec::new(),
            view_entity: Vec::new(),
            by_name: HashMap::new(),
            entities: Vec::new(),
            entity_index: HashMap::new(),
            subs: HashMap::new(),
            writer: FrameWriter::new(),
            scratch: Vec::with_capacity(1024),
            skipped: Vec::new(),
            stats: ApplyStats::default(),
        };
        let entities: Vec<(&str, &[ViewDef])> = entities.into_iter().collect();
        for (name, _) in &entities {
            if v.entity_index.contains_key(*name) {
                continue;
            }
            let ei = v.entities.len();
            let base = BASE_MODES.map(|(suffix, mode)| {
                v.push_slot(
                    format!("{name}/{suffix}"),
                    ei,
                    mode,
                    Kind::Base { entity: ei },
                )
                .unwrap_or(ViewId(u32::MAX))
            });
            v.entities.push(EntityViews {
                base,
                cache: Lru::new(cfg.max_entities_per_view),
                derived: Vec::new(),
            });
            v.entity_index.insert(Arc::from(*name), ei);
        }
        let defs: HashMap<&str, &ViewDef> = entities
            .iter()
            .flat_map(|(_, d)| d.iter())
            .map(|d| (d.id.as_str(), d))
            .collect();
        for def in entities.iter().flat_map(|(_, d)| d.iter()) {
            if let Err(e) = v.add_derived(def, &defs) {
                v.skipped.push(e);
            }
        }
        v
    }

    /// Like [`Views::new`], but refuses the set if any derived view cannot be built.
    pub fn try_new<'a>(
        entities: impl IntoIterator<Item = (&'a str, &'a [ViewDef])>,
        cfg: EntityCacheConfig,
    ) -> Result<Views, ViewError> {
        let mut v = Views::new(entities, cfg);
        if v.skipped.is_empty() {
            Ok(v)
        } else {
            Err(v.skipped.swap_remove(0))
        }
    }

    fn push_slot(&mut self, name: String, entity: usize, mode: Mode, kind: Kind) -> Option<ViewId> {
        if self.by_name.contains_key(name.as_str()) {
            return None;
        }
        let id = ViewId(self.slots.len() as u32);
        let name: Arc<str> = name.into();
        self.by_name.insert(name.clone(), id);
        self.slots.push(Slot {
            name,
            mode,
            kind,
            audience: Audience::default(),
        });
        self.view_entity.push(entity);
        Some(id)
    }

    fn add_derived(
        &mut self,
        def: &ViewDef,
        defs: &HashMap<&str, &ViewDef>,
    ) -> Result<(), ViewError> {
        if self.by_name.contains_key(def.id.as_str()) {
            return Err(ViewError::Duplicate {
                view: def.id.clone(),
            });
        }
        // Walk the source chain up to an entity; transforms apply root first.
        let mut chain = vec![def];
        let entity = loop {
            let cur = chain[chain.len() - 1];
            match &cur.source {
                ViewSource::Entity { name } => break name.clone(),
                ViewSource::View { id } => {
                    let base = id.rsplit_once('/').filter(|(e, s)| {
                        matches!(*s, "list" | "state" | "append")
                            && self.entity_index.contains_key(*e)
                    });
                    if let Some((e, _)) = base {
                        break e.to_string();
                    }
                    let parent = defs
                        .get(id.as_str())
                        .ok_or_else(|| ViewError::UnknownSource {
                            view: def.id.clone(),
                            from: id.clone(),
                        })?;
                    if chain.len() > 16 || chain.iter().any(|d| d.id == parent.id) {
                        return Err(ViewError::SourceCycle {
                            view: def.id.clone(),
                        });
                    }
                    chain.push(parent);
                }
            }
        };
        let Some(&ei) = self.entity_index.get(entity.as_str()) else {
            return Err(ViewError::UnknownSource {
                view: def.id.clone(),
                from: entity,
            });
        };
        let transforms = chain.iter().rev().flat_map(|d| d.pipeline.iter());
        let p =
            Pipeline::normalize(transforms, &def.output).map_err(|error| ViewError::Pipeline {
                view: def.id.clone(),
                error,
            })?;
        let cap = self.cfg.max_entities_per_view;
        let (mode, kind) = match p.keyed.clone() {
            Some(path) => (Mode::State, Kind::Keyed(KeyedView::new(p, path, cap))),
            None => (
                if p.single { Mode::State } else { Mode::List },
                Kind::Window(WindowView::new(p, cap)),
            ),
        };
        let id = self
            .push_slot(def.id.clone(), ei, mode, kind)
            .ok_or(ViewError::Duplicate {
                view: def.id.clone(),
            })?;
        self.entities[ei].derived.push(id);
        Ok(())
    }

    /// Derived views left out by [`Views::new`], with the reason.
    pub fn skipped(&self) -> &[ViewError] {
        &self.skipped
    }

    /// Inputs [`Views::apply`] ignored so far.
    pub fn stats(&self) -> ApplyStats {
        self.stats
    }

    /// The id of a view by name, `None` if the stack has no such view.
    pub fn view_id(&self, name: &str) -> Option<ViewId> {
        self.by_name.get(name).copied()
    }

    /// Every view name, in id order.
    pub fn names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| &*s.name).collect()
    }

    /// The streaming mode of a view.
    pub fn mode(&self, view: ViewId) -> Option<Mode> {
        self.slots.get(view.0 as usize).map(|s| s.mode)
    }

    /// Projects one mutation into every view of its entity. Mutations the views cannot use (unknown
    /// entity, `null` key, non-object patch) are skipped and counted in [`Views::stats`].
    pub fn apply(&mut self, m: &Mutation, out: &mut Vec<Output>) {
        let Some(&ei) = self.entity_index.get(&*m.entity) else {
            self.stats.unknown_entity += 1;
            return;
        };
        let Some(key) = render_key(&m.key) else {
            self.stats.null_key += 1;
            return;
        };
        let mut patch = m.patch.to_json();
        if !patch.is_object() {
            self.stats.non_object_patch += 1;
            return;
        }
        let key: Arc<str> = key.into();
        stringify_big_ints(&mut patch);
        if let Value::Object(o) = &mut patch {
            o.insert("_seq".to_string(), Value::String(m.seq.to_string()));
        }
        let Views {
            cfg,
            slots,
            entities,
            writer,
            scratch,
            ..
        } = self;
        let ent = &mut entities[ei];

        // Patch frames first (the body is serialized once, before the patch moves into the cache).
        let mut body = false;
        for id in ent.base {
            let Some(s) = slots.get(id.0 as usize) else {
                continue;
            };
            if !s.audience.admits(&key) {
                continue;
            }
            if !body {
                scratch.clear();
                write_json(scratch, &patch);
                body = true;
            }
            let frame = writer.patch(s.mode, &s.name, &key, scratch, &m.append, Some(m.seq));
            out.push(Output::Broadcast {
                view: id,
                key: key.clone(),
                frame,
            });
        }

        let (slot, evicted) = ent
            .cache
            .touch_or_insert_with(&key, || Arc::new(empty_object()));
        merge(Arc::make_mut(slot), patch, &m.append, cfg.max_array_length);
        if let Some((gone, e)) = evicted {
            for &id in &ent.derived {
                match &mut slots[id.0 as usize].kind {
                    Kind::Window(w) => w.adopt(&gone, &e),
                    Kind::Keyed(k) => k.adopt(&gone, &e),
                    Kind::Base { .. } => {}
                }
            }
        }
        for &id in &ent.derived {
            let Slot {
                name,
                mode,
                kind,
                audience,
            } = &mut slots[id.0 as usize];
            let mut em = Emitter::new(writer, scratch, id, name, *mode, out);
            match kind {
                Kind::Window(w) => w.update(&key, &ent.cache, &mut em),
                Kind::Keyed(k) => k.update(&key, &ent.cache, |k| audience.admits(k), &mut em),
                Kind::Base { .. } => {}
            }
        }
    }

    /// Starts a subscription: pushes its `subscribed` frame and snapshot as [`Output::To`].
    /// Subsequent live frames reach it through [`Output::Broadcast`] (or `To` for sorted windows).
    /// See the module docs for duplicate subscribes and empty snapshots.
    pub fn subscribe(
        &mut self,
        sub: SubId,
        req: &Subscription,
        out: &mut Vec<Output>,
    ) -> Result<ViewId, SubscribeError> {
        self.subscribe_limited(sub, req, None, out)
    }

    /// [`Views::subscribe`] with the connection's `max_snapshot_rows` limit: a snapshot larger than
    /// `max_rows` is refused with [`SubscribeError::SnapshotLimitExceeded`] and nothing is sent
    /// (a previous registration of `sub` stays as it was).
    pub fn subscribe_limited(
        &mut self,
        sub: SubId,
        req: &Subscription,
        max_rows: Option<usize>,
        out: &mut Vec<Output>,
    ) -> Result<ViewId, SubscribeError> {
        self.subscribe_shard(sub, req, max_rows, ShardRole::WHOLE, out)
    }

    /// [`Views::subscribe_limited`] on one of several shards that together serve a view (the
    /// caller subscribes on every shard, in order). Only the `first` shard sends `subscribed`;
    /// only the `last` marks its final snapshot batch `complete:true` (and sends the empty batch
    /// if it has no rows); the others send just their rows, if any. `max_rows` applies per shard.
    /// Sorted windows cannot be merged across shards: a derived view must live on one shard.
    pub fn subscribe_shard(
        &mut self,
        sub: SubId,
        req: &Subscription,
        max_rows: Option<usize>,
        role: ShardRole,
        out: &mut Vec<Output>,
    ) -> Result<ViewId, SubscribeError> {
        let id = self
            .view_id(&req.view)
            .ok_or_else(|| SubscribeError::UnknownView(req.view.clone()))?;
        let slot = &self.slots[id.0 as usize];
        let cursor = match (&slot.kind, req.after.as_deref()) {
            (Kind::Base { .. }, Some(a)) if slot.mode != Mode::State => {
                Some(Seq::parse(a).ok_or_else(|| SubscribeError::InvalidCursor(a.to_string()))?)
            }
            _ => None,
        };
        // Rows first (read-only), so that a refusal leaves everything as it was.
        let rows: Vec<(Arc<str>, Arc<Value>)> = match &slot.kind {
            Kind::Base { entity } => {
                let cache = &self.entities[*entity].cache;
                if req.with_snapshot == Some(false) {
                    Vec::new()
                } else if slot.mode == Mode::State {
                    let k = req.key.as_deref().unwrap_or("");
                    cache
                        .peek(k)
                        .map(|e| (Arc::from(k), e.clone()))
                        .into_iter()
                        .collect()
                } else {
                    list_rows(cache, req.key.as_deref(), cursor, req.snapshot_limit)
                }
            }
            Kind::Keyed(kv) => {
                let k = req.key.as_deref().unwrap_or("");
                if req.with_snapshot == Some(false) {
                    Vec::new()
                } else {
                    let src = &self.entities[self.view_entity[id.0 as usize]].cache;
                    kv.get(src, k)
                        .map(|e| (Arc::from(k), e.clone()))
                        .into_iter()
                        .collect()
                }
            }
            Kind::Window(w) => {
                let (start, count) = w.slice(req.skip, req.take);
                let src = &self.entities[self.view_entity[id.0 as usize]].cache;
                w.ordered_slice(src, start, count)
            }
        };
        let (name, mode) = (slot.name.clone(), slot.mode);
        if let Some(limit) = max_rows {
            if rows.len() > limit {
                return Err(SubscribeError::SnapshotLimitExceeded {
                    rows: rows.len(),
                    limit,
                });
            }
        }
        // Replace a previous registration of the same SubId.
        let old_window = self.unregister(sub, id);
        let sort: Option<(Vec<String>, SortOrder)> = match &self.slots[id.0 as usize].kind {
            Kind::Base { .. } if mode == Mode::List => {
                Some((vec!["_seq".to_string()], SortOrder::Desc))
            }
            Kind::Window(w) if mode == Mode::List => {
                Some((w.pipeline.order.path.clone(), w.pipeline.order.order))
            }
            _ => None,
        };
        if role.first {
            let sort = sort.as_ref().map(|(f, o)| (&f[..], *o));
            let frame = self.writer.subscribed(&name, mode, sort);
            out.push(Output::To { sub, frame });
        }

        let ei = self.derived_entity(id);
        let slot = &mut self.slots[id.0 as usize];
        let key = match &mut slot.kind {
            Kind::Window(w) => {
                let (start, count) = w.slice(req.skip, req.take);
                let now = w.subscribe(&self.entities[ei].cache, sub, start, count);
                for k in old_window
                    .iter()
                    .filter(|k| !now.iter().any(|(n, _)| n == *k))
                {
                    let frame = self.writer.delete(mode, &name, k);
                    out.push(Output::To { sub, frame });
                }
                None
            }
            Kind::Base { .. } if mode == Mode::State => {
                Some(Arc::from(req.key.as_deref().unwrap_or("")))
            }
            Kind::Keyed(_) => Some(Arc::from(req.key.as_deref().unwrap_or(""))),
            Kind::Base { .. } => req.key.as_deref().map(Arc::from),
        };
        if !matches!(slot.kind, Kind::Window(_)) {
            slot.audience.add(key.as_ref());
        }
        self.subs.insert(sub, SubEntry { view: id, key });
        if role.last || !rows.is_empty() {
            let cfg = &self.cfg;
            snapshot_frames(
                &mut self.writer,
                cfg,
                mode,
                &name,
                &rows,
                role.last,
                |frame| out.push(Output::To { sub, frame }),
            );
        }
        Ok(id)
    }

    /// Removes `sub`'s registration; returns the window keys it had if it was on window `view`.
    fn unregister(&mut self, sub: SubId, view: ViewId) -> Vec<Arc<str>> {
        let Some(e) = self.subs.remove(&sub) else {
            return Vec::new();
        };
        let slot = &mut self.slots[e.view.0 as usize];
        match &mut slot.kind {
            Kind::Window(w) => {
                let keys = w.unsubscribe(sub);
                if e.view == view {
                    keys
                } else {
                    Vec::new()
                }
            }
            _ => {
                slot.audience.remove(e.key.as_ref());
                Vec::new()
            }
        }
    }

    /// Ends a subscription; unknown ids are ignored.
    pub fn unsubscribe(&mut self, sub: SubId) {
        self.unregister(sub, ViewId(u32::MAX));
    }

    /// Active subscriptions (all views).
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// What the server holds for `view`, in snapshot order: the entity cache (most recent first)
    /// for base views, the ordered rows for window views, the rows for keyed views.
    pub fn rows(&self, view: ViewId) -> Vec<(Arc<str>, Arc<Value>)> {
        let Some(slot) = self.slots.get(view.0 as usize) else {
            return Vec::new();
        };
        let src = &self.entities[self.derived_entity(view)].cache;
        match &slot.kind {
            Kind::Base { .. } => src
                .iter_recent()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Kind::Window(w) => w.ordered(src),
            Kind::Keyed(k) => k.rows(src),
        }
    }

    /// The entity (index) whose mutations feed `view`.
    fn derived_entity(&self, view: ViewId) -> usize {
        self.view_entity[view.0 as usize]
    }

    /// The cached entity of `key` in `view` (base and keyed views), without bumping it.
    pub fn get(&self, view: ViewId, key: &str) -> Option<&Value> {
        let slot = self.slots.get(view.0 as usize)?;
        let src = &self.entities[self.derived_entity(view)].cache;
        match &slot.kind {
            Kind::Base { .. } => src.peek(key).map(|a| &**a),
            Kind::Keyed(k) => k.get(src, key).map(|a| &**a),
            Kind::Window(w) => w.get(src, key),
        }
    }
}

/// A snapshot row: key and entity.
type Row = (Arc<str>, Arc<Value>);

/// Snapshot rows of a list/append view (`protocol.md` §2.1, key filter first, §7.7).
fn list_rows(
    cache: &Lru<Arc<Value>>,
    key: Option<&str>,
    cursor: Option<Seq>,
    limit: Option<usize>,
) -> Vec<(Arc<str>, Arc<Value>)> {
    let mut rows: Vec<(Arc<str>, Arc<Value>)> = match key {
        Some(k) => cache
            .peek(k)
            .map(|e| (Arc::from(k), e.clone()))
            .into_iter()
            .collect(),
        None => cache
            .iter_recent()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect(),
    };
    if let Some(c) = cursor {
        let mut with: Vec<(Seq, Row)> = rows
            .into_iter()
            .filter_map(|r| seq_of(&r.1).filter(|s| *s > c).map(|s| (s, r)))
            .collect();
        with.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1 .0.cmp(&b.1 .0)));
        rows = with.into_iter().map(|(_, r)| r).collect();
    } else if limit.is_some() {
        rows.sort_by(|a, b| seq_of(&b.1).cmp(&seq_of(&a.1)).then_with(|| a.0.cmp(&b.0)));
    }
    if let Some(l) = limit {
        rows.truncate(l);
    }
    rows
}

/// Pushes the snapshot of `rows` in batches (first `initial_snapshot_batch_size`, then
/// `subsequent_snapshot_batch_size`), `complete:true` on the last if `complete`; one empty batch
/// if there are no rows.
pub(crate) fn snapshot_frames(
    writer: &mut FrameWriter,
    cfg: &EntityCacheConfig,
    mode: Mode,
    view: &str,
    rows: &[(Arc<str>, Arc<Value>)],
    complete: bool,
    mut push: impl FnMut(SharedFrame),
) {
    let first = cfg.initial_snapshot_batch_size.max(1);
    let next = cfg.subsequent_snapshot_batch_size.max(1);
    let mut at = 0;
    loop {
        let n = if at == 0 { first } else { next };
        let end = (at + n).min(rows.len());
        let batch = rows[at..end].iter().map(|(k, v)| (&**k, &**v));
        push(writer.snapshot(mode, view, batch, complete && end == rows.len()));
        at = end;
        if at >= rows.len() {
            break;
        }
    }
}
