//! The VM: compiled handlers run over decoded events against bounded state tables.
//!
//! ```text
//! event (type id, record, EventContext)
//!   ├─ account with a PDA reverse-lookup hook: key known? set __resolved_primary_key : queue, stop
//!   ├─ instruction that a `when` waits for: flush deferred writes of that transaction
//!   ├─ for each entity handling the type (file order): run its Handler
//!   │     key plan → null key on an account? stop → recency / dedup gate → steps → store → emit
//!   │     nothing emitted and a lookup missed? queue (account or instruction) under the missed address
//!   │     an index learnt an address? replay what was queued under it
//!   └─ instruction with RegisterPdaMapping hooks: map pda → seed, replay what waited for it
//! ```
//!
//! The semantics are the reference interpreter's (`../shared/protocol.md` §3, §8.1), including its
//! hook glue, with these deliberate corrections (the differential test names each):
//! - time comes only from events: replayed updates keep their own timestamp and whole-account
//!   captures carry the event's, never a wall clock;
//! - duplicate instructions are dropped against a bounded set of recent `(key, type, slot,
//!   txn_index)`, not only against the last one seen;
//! - a queued instruction replays with its own context (the reference replays it under the account
//!   update that resolved it, so a second queued instruction for the same entity looks stale);
//! - instructions whose key cannot be resolved are queued without creating a null-keyed row, also
//!   when their entity has seen nothing yet (the reference loses those).
//!
//! Representation: an entity's state is a row of slots (module `row`): every path the file can
//! write is known at load time, so each becomes a slot index and a write is an index, not a walk
//! through nested maps. Slot values are JSON values in the reference's form (integer vs float
//! numbers, byte arrays as number arrays), so patches, comparisons and aggregations agree with it
//! bit for bit; the rows answer every read as the reference's nested state would (tested against
//! it in `row`). A decoded update is read through a record (module `record`) that renders only the
//! fields a handler maps. Paths, index names, event types and emit flags are resolved at load time
//! (module `program`), so no spec lookups happen per event. What else keeps an event cheap
//! (allocations are counted in `tests/vm_alloc.rs`):
//! - slot values are shared (`capture::Stored`): a mutation's [`Patch`] takes the changed fields
//!   without copying them, and a write copies a value only while a patch still holds it;
//! - a captured update stays its decoded record in the slot (module `capture`) and is rendered to
//!   JSON where JSON is read (the views, once per patch);
//! - an update is shared (`Arc`) once it enters the VM, so captures, queues and the replay cache
//!   keep it without copying;
//! - a row is worked on in place (taken out of its table and put back), with an undo log
//!   (`Undo`: a slot and its old value) instead of a copy, so a handler that fails part-way leaves
//!   the row as it was; a whole-slot write reuses the slot's allocation when nothing shares it;
//! - mapped values move into the row, and a replaced value moves into the undo log;
//! - a computed field is evaluated only when something it reads may have changed: statically
//!   (`program::Handler::computed_mask`: the handler writes a path it reads) and then at run time
//!   (one of the slots it reads changed value, as the undo log shows), and compared in place;
//! - a computed field made of scalar operations (arithmetic, comparisons, casts, amounts scaled
//!   by decimals) runs as a typed stack program (module `scalar`), the general JSON evaluator
//!   (module `expr`) only where a value is not a scalar;
//! - keys and signatures are rendered to base58 by fixed-size encoders (module `b58`), and the
//!   per-transaction tables key a signature by its bytes (`SigKey`), never rendering it;
//! - what is done with gives its allocation back for the next of its kind, each pool bounded by a
//!   [`VmLimits`] field: mutations the caller hands back ([`VmContext::recycle_mutations`]), the
//!   text and the shared allocation of replaced values (`spare_texts`, `spare_boxes`), emptied
//!   groups of deferred writes (`spare_groups`), a replaced capture (`spare_capture`), the record
//!   of an update nothing holds any more (`spares`), the entry a full LRU evicts and the list
//!   node of any entry removed (`table::Lru`).

pub(crate) mod capture;
mod computed;
mod expr;
pub(crate) mod json;
mod number;
mod program;
mod record;
mod row;
mod scalar;
mod table;

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{json, Value as Json};

use crate::config::StateTableConfig;
use crate::event::Update;
use crate::mutation::{Mutation, Patch, Seq};
use crate::spec::Transformation;
use crate::stack::Stack;

use capture::{Capture, Stored};
use json::{Path, StepError};
pub(crate) use program::Program;
pub use program::ResolverKind;
use program::{Due, EventId, KeyHook, KeyPlan, Src, Step, Store};
pub(crate) use record::Shape;
use record::{Ev, EvPath, Rec};
use row::{Field, Row};
use table::{Deferred, Pending, PendingIx, Table};

/// Why an update produced nothing. The caller counts it and goes on; the update is skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The bytes do not match the IDL (unknown discriminator, short or trailing data).
    #[error("decode: {0}")]
    Decode(String),
    /// The stack has no handler, hook or `when` for this event type.
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    /// The decoded event lacks what its kind needs (`__account_address`, an object body).
    #[error("malformed event: {0}")]
    BadEvent(String),
    /// A handler step failed on this event's values (a transform of a wrong type, a non-numeric
    /// `Sum`...). The reference drops the event the same way; its index updates stay applied.
    #[error("{entity}: {message}")]
    Handler { entity: String, message: String },
}

/// Where an event sits in the chain, and when. Time is part of the event: the VM has no clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventContext {
    pub slot: u64,
    /// `write_version` for account updates, `txn_index` for instructions.
    pub index: u64,
    /// Base58 transaction signature, when known.
    pub signature: Option<String>,
    /// Unix seconds.
    pub timestamp: i64,
    pub is_account: bool,
}

/// Bounds of the VM's bookkeeping besides the entity rows ([`StateTableConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmLimits {
    /// Entries per lookup / temporal index. Default 2,500.
    pub lookup_index_entries: usize,
    /// PDA reverse-lookup entries (and cached last account data) per entity. Default 2,500.
    pub pda_entries: usize,
    /// `(account, event type)` recency entries per entity. Default 2,500.
    pub version_entries: usize,
    /// Recent `(key, type, slot, txn_index)` remembered to drop duplicate instructions. Default 2,500.
    pub instruction_dedup_entries: usize,
    /// Transactions whose instruction types are remembered for `when`, and deferred-write groups.
    /// Default 1,000.
    pub recent_transactions: usize,
    /// A deferred `when` write older than this many slots is dropped instead of applied. Default 150.
    pub when_ttl_slots: u64,
    /// Addresses with queued updates per entity. Default 2,500.
    pub pending_addresses: usize,
    /// Queued updates per address (oldest dropped). Default 50.
    pub pending_per_address: usize,
    /// Queued account updates in total. Default 2,500.
    pub pending_total: usize,
    /// Resolver requests and scheduled callbacks held until taken. Default 10,000.
    pub resolver_requests: usize,
    /// Slot hashes remembered for `slot_hash` expressions. Default 1,000.
    pub slot_hashes: usize,
    /// Mutations handed back with [`VmContext::recycle_mutations`] whose allocations are kept
    /// for the next ones. Default 256.
    pub spare_mutations: usize,
    /// Text buffers, and apart from them array buffers and the shared allocations of row
    /// values, of replaced values kept for the next text, array or shared value a write
    /// produces (each up to this many). Default 256.
    pub spare_texts: usize,
    /// Records of updates nothing holds any more, kept per event type for the next update of
    /// that type to be decoded into; also the emptied groups of deferred `when` writes kept for
    /// the next groups. Default 8 (a replay or a replaced capture can give several back at
    /// once; with 4, the ORE mix still decoded one update in 600 into new allocations).
    pub spare_records: usize,
}

impl VmLimits {
    /// Every bound must be at least 1 (`when_ttl_slots` may be 0: deferred writes then apply only
    /// within their own slot).
    pub fn validate(&self) -> Result<(), crate::ConfigError> {
        for (field, v) in [
            ("vm_limits.lookup_index_entries", self.lookup_index_entries),
            ("vm_limits.pda_entries", self.pda_entries),
            ("vm_limits.version_entries", self.version_entries),
            (
                "vm_limits.instruction_dedup_entries",
                self.instruction_dedup_entries,
            ),
            ("vm_limits.recent_transactions", self.recent_transactions),
            ("vm_limits.pending_addresses", self.pending_addresses),
            ("vm_limits.pending_per_address", self.pending_per_address),
            ("vm_limits.pending_total", self.pending_total),
            ("vm_limits.resolver_requests", self.resolver_requests),
            ("vm_limits.slot_hashes", self.slot_hashes),
            ("vm_limits.spare_mutations", self.spare_mutations),
            ("vm_limits.spare_texts", self.spare_texts),
            ("vm_limits.spare_records", self.spare_records),
        ] {
            if v == 0 {
                return Err(crate::ConfigError::new(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

impl Default for VmLimits {
    fn default() -> Self {
        VmLimits {
            lookup_index_entries: 2_500,
            pda_entries: 2_500,
            version_entries: 2_500,
            instruction_dedup_entries: 2_500,
            recent_transactions: 1_000,
            when_ttl_slots: 150,
            pending_addresses: 2_500,
            pending_per_address: 50,
            pending_total: 2_500,
            resolver_requests: 10_000,
            slot_hashes: 1_000,
            spare_mutations: 256,
            spare_texts: 256,
            spare_records: 8,
        }
    }
}

/// Counters the worker reads (monotonic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmStats {
    pub events: u64,
    pub mutations: u64,
    /// Updates the stack's IDLs could not decode: an unknown discriminator, or short or trailing
    /// data in a type some handler reads.
    pub decode_errors: u64,
    /// Updates of a type no handler reads (not decoded), or a known type with no handler.
    pub unknown_events: u64,
    pub handler_errors: u64,
    pub skipped_stale: u64,
    pub skipped_duplicate: u64,
    pub queued_pending: u64,
    pub replayed: u64,
    pub dropped_pending: u64,
    pub deferred_when: u64,
    pub expired_when: u64,
    pub resolver_requests: u64,
    pub dropped_resolver_requests: u64,
    pub evicted_rows: u64,
}

/// What the VM holds right now, each figure the largest over the entity tables (every bound in
/// [`VmLimits`] and [`StateTableConfig`] is per table). For `/status` and for tests that pin the
/// bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmFootprint {
    pub rows: usize,
    /// Entries in the largest lookup or temporal index.
    pub index_entries: usize,
    /// Longest temporal-index list.
    pub temporal_list: usize,
    pub pda_entries: usize,
    /// Cached last account data (for replays after a PDA remap).
    pub last_data: usize,
    /// Addresses with queued account updates / instructions.
    pub pending_addresses: usize,
    /// Longest queue under one address.
    pub pending_per_address: usize,
    /// Queued account updates in all tables (bounded by `pending_total`).
    pub pending_total: usize,
    pub versions: usize,
    pub instruction_dedup: usize,
    pub recent_transactions: usize,
    pub deferred_groups: usize,
    /// Resolver requests not yet taken, and slot-scheduled ones.
    pub resolver_requests: usize,
    pub scheduled_requests: usize,
    /// Emptied mutations kept for reuse ([`VmContext::recycle_mutations`]).
    pub spare_mutations: usize,
    /// Text buffers kept for reuse.
    pub spare_texts: usize,
    /// Array buffers kept for reuse.
    pub spare_arrays: usize,
    /// Allocations of shared row values kept for reuse.
    pub spare_boxes: usize,
    /// Update records kept for reuse, for the event type with the most.
    pub spare_records: usize,
    /// Groups of deferred writes kept for reuse.
    pub spare_groups: usize,
}

/// An enrichment the engine wants fetched; `io/` fetches it and feeds the result back with
/// [`VmContext::apply_resolver_result`].
#[derive(Debug, Clone, PartialEq)]
pub struct ResolverRequest {
    pub entity: Arc<str>,
    pub key: Json,
    pub kind: ResolverKind,
    /// The mint (token) or URL.
    pub input: Json,
    /// What to write from the result, and where (shared by every request of the same spec).
    pub extracts: Arc<[ResolverExtract]>,
    /// For slot-scheduled resolvers: the slot at which to fetch.
    pub at_slot: Option<u64>,
    /// The spec's strategy is `SetOnce` (only fill nulls); pass it back to
    /// [`VmContext::apply_resolver_result`].
    pub set_once: bool,
}

/// One value a resolver result feeds into the entity (a resolver spec's `extracts[]` entry).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolverExtract {
    /// Dotted path written in the entity state.
    pub target: String,
    /// Dotted path read from the result; the whole result when `None`.
    pub source: Option<String>,
    /// Applied to the value before it is written (the reference's extract transform).
    pub transform: Option<crate::spec::Transformation>,
    /// Whether a change of `target` is sent to clients (`emit: false` fields are stored only).
    pub emit: bool,
}

/// A transaction signature, rendered to base58 only when something reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sig {
    raw: Option<[u8; 64]>,
    /// Shared once rendered: queued and cached updates copy their context's signature.
    text: std::cell::OnceCell<Arc<str>>,
}

/// A signature as the per-transaction tables key it: its 64 bytes where it has them (an update's
/// signature, or a text that is the base58 of 64 bytes), so that looking one up renders nothing;
/// any other text as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum SigKey {
    Raw([u8; 64]),
    Text(Arc<str>),
}

impl Sig {
    /// A signature given as text; one that is the base58 of 64 bytes is also held as those.
    fn text(s: String) -> Sig {
        let mut raw = [0u8; 64];
        let raw = matches!(bs58::decode(&s).onto(&mut raw[..]), Ok(64)).then_some(raw);
        Sig {
            raw,
            text: std::cell::OnceCell::from(Arc::from(s)),
        }
    }
    fn key(&self) -> SigKey {
        match self.raw {
            Some(r) => SigKey::Raw(r),
            None => SigKey::Text(self.text.get().cloned().unwrap_or_else(|| Arc::from(""))),
        }
    }
    /// Given as an empty text (no signature at all, for `when`).
    fn is_empty(&self) -> bool {
        self.raw.is_none() && self.text.get().is_none_or(|t| t.is_empty())
    }
    fn raw(r: &[u8; 64]) -> Sig {
        Sig {
            raw: Some(*r),
            text: std::cell::OnceCell::new(),
        }
    }
    fn as_str(&self) -> &str {
        self.text.get_or_init(|| match self.raw {
            Some(r) => Arc::from(crate::b58::encode(&r)),
            None => Arc::from(""),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ctx {
    slot: u64,
    signature: Option<Sig>,
    timestamp: i64,
    write_version: Option<u64>,
    txn_index: Option<u64>,
    skip_resolvers: bool,
}

impl Ctx {
    fn from_event(c: &EventContext) -> Ctx {
        Ctx {
            slot: c.slot,
            signature: c.signature.clone().map(Sig::text),
            timestamp: c.timestamp,
            write_version: c.is_account.then_some(c.index),
            txn_index: (!c.is_account).then_some(c.index),
            skip_resolvers: false,
        }
    }
    fn is_account(&self) -> bool {
        self.write_version.is_some() && self.txn_index.is_none()
    }
    fn is_instruction(&self) -> bool {
        self.txn_index.is_some() && self.write_version.is_none()
    }
    fn seq(&self) -> Seq {
        Seq::new(
            self.slot,
            self.write_version.or(self.txn_index).unwrap_or(0),
        )
    }
    fn to_json(&self) -> Json {
        let mut m = serde_json::Map::new();
        m.insert("slot".into(), json!(self.slot));
        if let Some(s) = &self.signature {
            m.insert("signature".into(), json!(s.as_str()));
        }
        m.insert("timestamp".into(), json!(self.timestamp));
        Json::Object(m)
    }
    /// One field of [`Ctx::to_json`] without building the map (`None` where the map has none).
    fn field(&self, name: &str) -> Option<Json> {
        match name {
            "slot" => Some(json!(self.slot)),
            "signature" => self.signature.as_ref().map(|s| json!(s.as_str())),
            "timestamp" => Some(json!(self.timestamp)),
            _ => None,
        }
    }
    fn of_pending(p: &Pending) -> Ctx {
        Ctx {
            slot: p.slot,
            signature: if p.stale { None } else { p.signature.clone() },
            timestamp: p.timestamp,
            write_version: Some(p.write_version),
            txn_index: None,
            skip_resolvers: p.stale,
        }
    }
}

/// Fields changed by one handler run; appended arrays keep only their new elements.
/// Fields are borrowed from the program where they come from it, so marking one allocates nothing.
#[derive(Default)]
struct Dirty<'a>(Vec<(Cow<'a, Field>, Option<Vec<Json>>)>);

/// An empty [`Dirty`] list's allocation, kept between handler runs.
type DirtyBuf = Vec<(Cow<'static, Field>, Option<Vec<Json>>)>;

impl<'a> Dirty<'a> {
    fn replaced(&mut self, p: &'a Field) {
        self.replaced_cow(Cow::Borrowed(p));
    }
    fn replaced_cow(&mut self, p: Cow<'a, Field>) {
        match self.0.iter_mut().find(|(q, _)| q.same(&p)) {
            Some(e) => e.1 = None,
            None => self.0.push((p, None)),
        }
    }
    /// The patch these changes make of `state`, nested by path (appended arrays hold only their
    /// new elements), and the appended paths.
    fn take_patch(&mut self, state: &Row, patch: &mut Patch, append: &mut Vec<String>) {
        patch.reserve(self.0.len());
        for (f, change) in self.0.drain(..) {
            match change {
                None => {
                    if let Some(v) = state.share(&f) {
                        patch.push(f.path.segs.clone(), v);
                    }
                }
                Some(vals) => {
                    patch.push(f.path.segs.clone(), Stored::new(Json::Array(vals)));
                    append.push(f.path.dotted.to_string());
                }
            }
        }
    }

    /// A list with the allocation of `buf` (empty), for one handler run.
    fn reuse(mut buf: DirtyBuf, room: usize) -> Dirty<'a> {
        buf.clear();
        buf.reserve(room);
        Dirty(buf)
    }

    /// This list's allocation, emptied, to keep until the next handler run. (Emptied, it holds no
    /// borrow: the in-place `collect` of an empty list only changes its type, reusing the buffer.)
    fn recycle(mut self) -> DirtyBuf {
        self.0.clear();
        self.0
            .into_iter()
            .map(|_| -> (Cow<'static, Field>, Option<Vec<Json>>) { unreachable!("emptied") })
            .collect()
    }

    fn appended(&mut self, p: &'a Field, v: Json) {
        match self.0.iter_mut().find(|(q, _)| q.same(p)) {
            Some((_, Some(vals))) => vals.push(v),
            Some((_, None)) => {}
            None => self.0.push((Cow::Borrowed(p), Some(vec![v]))),
        }
    }
}

/// How to take back one write to an entity's row: the slot's value before it (`None`: absent).
/// A handler that fails part-way restores its row from these (newest first) instead of working
/// on a copy of the whole row.
struct Undo {
    slot: usize,
    old: row::Old,
}

impl Undo {
    /// Records what a write at `f` can change: its slot (a write is always inside one).
    fn point(state: &Row, f: &Field) -> Option<Undo> {
        state.undo_point(f).map(|(slot, old)| Undo { slot, old })
    }

    fn restore(self, state: &mut Row) {
        state.restore(self.slot, self.old);
    }
}

/// The state of one VM: entity tables, indexes, pending queues. One per worker; not shared.
pub struct VmContext {
    cfg: StateTableConfig,
    limits: VmLimits,
    tables: Vec<Table>,
    stats: VmStats,
    pending_total: usize,
    // Per-handler signals, as the reference's (the lookup miss and registered PDA deliberately
    // outlive the handler that set them until the next handler that takes them).
    pda_miss: Option<String>,
    lookup_miss: Option<String>,
    pda_registered: Option<String>,
    lookup_keys: Vec<String>,
    /// Updates a new PDA mapping replays (a reused buffer).
    replay: Vec<Pending>,
    requests: Vec<ResolverRequest>,
    scheduled: Vec<(u64, ResolverRequest)>,
    slot_hashes: table::Lru<u64, [u8; 32]>,
    /// Counts slot hashes recorded: a row evaluated at an older count has `SlotHash` readers due.
    slot_hash_gen: u64,
    env: expr::Env,
    /// Which `computed_paths` the last [`VmContext::eval_computed`] changed (reused buffer).
    computed_changed: Vec<bool>,
    /// Per slot of the row being updated: changed value during this update (reused buffer).
    slots_changed: Vec<bool>,
    /// The running handler's row key as text (reused buffer).
    key_text: String,
    /// The running handler's undo log (a reused buffer, empty between handlers).
    undo: Vec<Undo>,
    /// An index value's text (a reused buffer).
    value_text: String,
    /// The running handler's changed fields (a reused buffer, empty between handlers).
    dirty: DirtyBuf,
    /// Per event type, update records nothing else holds, whose allocations the next updates
    /// of that type reuse (at most `limits.spare_records` per type of the stack's IDLs).
    spares: Vec<Vec<Arc<Ev>>>,
    /// Emptied mutations handed back by the caller, whose allocations the next mutations reuse
    /// (at most `limits.spare_mutations`).
    spare_mutations: Vec<Mutation>,
    /// Emptied text buffers of values that were replaced and that nothing holds any more (at
    /// most `limits.spare_texts`), reused for the text of the next values written.
    spare_texts: Vec<String>,
    /// Emptied element buffers of arrays nothing holds any more, reused likewise for the next
    /// array a write renders (at most `limits.spare_texts`).
    spare_arrays: Vec<Vec<Json>>,
    /// Emptied allocations of shared row values nothing holds any more (`Stored::Json`), reused
    /// for the next value a row shares with a patch (at most `limits.spare_texts`).
    spare_boxes: Vec<Arc<Json>>,
    /// Emptied groups of deferred `when` writes, for the next group filed besides the one a
    /// full list hands over (at most `limits.spare_records`).
    spare_groups: Vec<Vec<Deferred>>,
    /// An emptied capture nothing else holds, whose allocation the next capture reuses, and an
    /// emptied buffer for a capture's transformed fields.
    spare_capture: Option<Arc<Capture>>,
    spare_rewritten: Vec<(json::Path, Json)>,
    decoded: crate::idl::Decoded,
}

impl VmContext {
    pub fn new() -> Self {
        Self::new_with_config(StateTableConfig::default())
    }

    pub fn new_with_config(cfg: StateTableConfig) -> Self {
        Self::new_with_limits(cfg, VmLimits::default())
    }

    pub fn new_with_limits(cfg: StateTableConfig, limits: VmLimits) -> Self {
        VmContext {
            cfg,
            limits,
            tables: Vec::new(),
            stats: VmStats::default(),
            pending_total: 0,
            pda_miss: None,
            lookup_miss: None,
            pda_registered: None,
            lookup_keys: Vec::new(),
            replay: Vec::new(),
            requests: Vec::new(),
            scheduled: Vec::new(),
            slot_hash_gen: 0,
            slot_hashes: table::Lru::new(limits.slot_hashes),
            env: expr::Env::new(limits.spare_texts),
            computed_changed: Vec::new(),
            slots_changed: Vec::new(),
            key_text: String::new(),
            undo: Vec::new(),
            value_text: String::new(),
            dirty: Vec::new(),
            spares: Vec::new(),
            spare_mutations: Vec::new(),
            spare_texts: Vec::new(),
            spare_arrays: Vec::new(),
            spare_boxes: Vec::new(),
            spare_groups: Vec::new(),
            spare_capture: None,
            spare_rewritten: Vec::new(),
            decoded: Default::default(),
        }
    }

    pub fn stats(&self) -> &VmStats {
        &self.stats
    }

    /// What the VM holds now ([`VmFootprint`]).
    pub fn footprint(&self) -> VmFootprint {
        let mut f = VmFootprint {
            pending_total: self.pending_total,
            resolver_requests: self.requests.len(),
            scheduled_requests: self.scheduled.len(),
            spare_mutations: self.spare_mutations.len(),
            spare_texts: self.spare_texts.len(),
            spare_arrays: self.spare_arrays.len(),
            spare_boxes: self.spare_boxes.len(),
            spare_records: self.spares.iter().map(Vec::len).max().unwrap_or(0),
            spare_groups: self.spare_groups.len(),
            ..VmFootprint::default()
        };
        for t in &self.tables {
            let max = |a: &mut usize, b: usize| *a = (*a).max(b);
            max(&mut f.rows, t.rows.len());
            for ix in &t.lookups {
                max(&mut f.index_entries, ix.len());
            }
            for ix in &t.temporal {
                max(&mut f.index_entries, ix.len());
                for (_, list) in ix.iter() {
                    max(&mut f.temporal_list, list.len());
                }
            }
            max(&mut f.pda_entries, t.pda.len());
            max(&mut f.last_data, t.last_data.len());
            max(
                &mut f.pending_addresses,
                t.pending.len().max(t.pending_ix.len()),
            );
            for (_, l) in t.pending.iter() {
                max(&mut f.pending_per_address, l.len());
            }
            for (_, l) in t.pending_ix.iter() {
                max(&mut f.pending_per_address, l.len());
            }
            max(&mut f.versions, t.versions.len());
            max(&mut f.instruction_dedup, t.ix_seen.len());
            max(&mut f.recent_transactions, t.recent_tx.len());
            max(&mut f.deferred_groups, t.deferred.len());
        }
        f
    }

    /// Resolver requests produced since the last call.
    pub fn take_resolver_requests(&mut self) -> Vec<ResolverRequest> {
        std::mem::take(&mut self.requests)
    }

    /// [`VmContext::take_resolver_requests`] without taking the buffer: the VM keeps it for the
    /// next requests (dropping the iterator drops what was not taken). What a worker calls after
    /// every update, so that an update that asks something allocates nothing for it.
    pub fn drain_resolver_requests(&mut self) -> std::vec::Drain<'_, ResolverRequest> {
        self.requests.drain(..)
    }

    /// Takes back mutations the caller is done with (`done` is left empty): the next mutations
    /// are built in their allocations (patch, appended paths, key text) instead of new ones.
    /// Optional: a mutation dropped instead only costs its allocations again. At most
    /// [`VmLimits::spare_mutations`] are kept; the rest are dropped.
    pub fn recycle_mutations(&mut self, done: &mut Vec<Mutation>) {
        let room = self.limits.spare_mutations
            - self.spare_mutations.len().min(self.limits.spare_mutations);
        for (i, mut m) in done.drain(..).enumerate() {
            // A value only this patch still held (its slot has moved on) gives its text back.
            for v in m.patch.drain_values() {
                self.keep_stored(v);
            }
            if i < room {
                m.append.clear();
                self.spare_mutations.push(m);
            }
        }
    }

    /// A mutation to fill: a spare one ([`VmContext::recycle_mutations`]) or a new one.
    fn blank_mutation(&mut self) -> Mutation {
        self.spare_mutations.pop().unwrap_or_default()
    }

    /// Names a mutation whose patch is filled: its entity, key (written into the text it already
    /// has, or a spare one) and position.
    fn finish_mutation(
        &mut self,
        mut m: Mutation,
        entity: &Arc<str>,
        key: &Json,
        seq: Seq,
    ) -> Mutation {
        m.entity.clone_from(entity);
        // The key's text is written into the mutation's (or a spare one); a text the key no
        // longer needs goes back.
        match (key.is_string(), m.key.is_string()) {
            (true, false) => m.key = Json::String(self.text_buf()),
            (false, true) => {
                let old = std::mem::take(&mut m.key);
                self.keep_text(old);
            }
            _ => {}
        }
        json::assign(&mut m.key, key);
        m.seq = seq;
        m
    }

    /// An empty text buffer: a spare one (see `spare_texts`) or a new one.
    fn text_buf(&mut self) -> String {
        self.spare_texts.pop().unwrap_or_default()
    }

    /// [`VmContext::load`] of `path` (`default` where absent), then `transform`. A decoded field
    /// is found once and rendered from that value; a key's, string's or bytes' text is written
    /// into a spare buffer ([`json::text_in`]).
    fn load_transformed(
        &mut self,
        ev: &Ev,
        path: &EvPath,
        default: Option<&Json>,
        transform: Option<Transformation>,
        c: &Ctx,
    ) -> Result<Json, StepError> {
        let v = match ev.value_ref(path) {
            Some(v) => match json::text_in(v, transform, &mut self.spare_texts) {
                Some(text) => return Ok(text),
                None => self.render(v),
            },
            // An instruction account's text goes into a spare buffer too (it is a string, which
            // the encoding transforms leave as it is).
            None => match (ev.account_at(path), transform) {
                (
                    Some(key),
                    None | Some(Transformation::HexEncode | Transformation::Base58Encode),
                ) => {
                    let v = crate::value::Value::Pubkey(*key);
                    return Ok(
                        json::text_in(&v, None, &mut self.spare_texts).expect("a key's text")
                    );
                }
                _ => Self::load(ev, path, default, c),
            },
        };
        match transform {
            Some(t) => json::transform(&v, t),
            None => Ok(v),
        }
    }

    /// Keeps the text buffer of a value nothing holds any more, or its array's element buffer, if
    /// there is room and it is not large (at most 1 KiB of text or 1,024 elements).
    fn keep_text(&mut self, v: Json) {
        match v {
            Json::Array(a) => keep_array_in(&mut self.spare_arrays, self.limits.spare_texts, a),
            v => keep_text_in(&mut self.spare_texts, self.limits.spare_texts, v),
        }
    }

    /// Takes apart a stored value that left its row or patch: if nothing else holds it, its
    /// text or array buffer and its allocation are kept for the next ones (`spare_boxes`), and a
    /// capture gives its record back.
    fn keep_stored(&mut self, v: Stored) {
        match v {
            Stored::Json(mut a) => {
                if let Some(v) = Arc::get_mut(&mut a) {
                    let v = std::mem::take(v);
                    self.keep_text(v);
                    if self.spare_boxes.len() < self.limits.spare_texts {
                        self.spare_boxes.push(a);
                    }
                }
            }
            Stored::Capture(c) => self.recycle_capture(c),
            Stored::Own(v) => json::discard(v),
        }
    }

    /// `v` as JSON, an array's elements written into a spare array buffer.
    fn render(&mut self, v: &crate::value::Value) -> Json {
        use crate::value::Value;
        match v {
            Value::Bytes(b) => {
                json::array_in(b.iter().map(|x| Json::from(*x)), &mut self.spare_arrays)
            }
            Value::Array(items) => {
                json::array_in(items.iter().map(Value::to_json), &mut self.spare_arrays)
            }
            v => v.to_json(),
        }
    }

    /// Remembers a slot hash for `SlotHash.slot_hash` expressions.
    pub fn record_slot_hash(&mut self, slot: u64, hash: [u8; 32]) {
        self.slot_hashes.put(slot, hash);
        self.slot_hash_gen += 1;
    }

    /// Entity rows currently held for `entity` (by index in the stack).
    pub fn entity_count(&self, entity: usize) -> usize {
        self.tables.get(entity).map(|t| t.rows.len()).unwrap_or(0)
    }

    /// The stored state of one entity (including non-emitted fields).
    pub fn entity_state(&self, stack: &Stack, entity: &str, key: &Json) -> Option<Json> {
        let i = stack
            .program()
            .entities
            .iter()
            .position(|e| &*e.name == entity)?;
        self.tables
            .get(i)?
            .rows
            .peek(&key.to_string())
            .map(|(_, s)| s.to_json(&stack.program().entities[i].layout))
    }

    fn ensure_tables(&mut self, p: &Program) {
        if self.tables.len() != p.entities.len() {
            self.tables = p
                .entities
                .iter()
                .map(|e| {
                    Table::new(
                        &self.cfg,
                        &self.limits,
                        e.index_names.len(),
                        e.temporal_names.len(),
                    )
                })
                .collect();
            // The reference creates the first entity's table up front (the PDA hooks use it).
            if let Some(t) = self.tables.first_mut() {
                t.exists = true;
            }
        }
    }

    /// Decodes one update with the stack's IDLs and runs its handlers; pushes the mutations. An
    /// update of a type no handler reads is counted and skipped without being decoded.
    pub fn apply(
        &mut self,
        stack: &Stack,
        update: &Update,
        out: &mut Vec<Mutation>,
    ) -> Result<(), ApplyError> {
        let (slot, index, signature, timestamp, is_account) = match update {
            Update::Slot { slot, .. } => {
                self.fire_scheduled(*slot);
                return Ok(());
            }
            Update::Account(a) => (
                a.slot,
                a.write_version,
                a.signature.as_ref(),
                a.timestamp,
                true,
            ),
            Update::Instruction(i) => (i.slot, i.txn_index, Some(&i.signature), i.timestamp, false),
        };
        let et = match stack.idls().event_type_of(update) {
            Ok(et) => et,
            Err(err) => {
                self.stats.events += 1;
                self.stats.decode_errors += 1;
                return Err(ApplyError::Decode(err.to_string()));
            }
        };
        // A type no handler reads is not decoded at all (counted with the unknown events).
        let Some(e) = stack.vm_event(et) else {
            self.stats.events += 1;
            self.stats.unknown_events += 1;
            return Ok(());
        };
        // A record of the same type that nothing holds any more lends this one its allocation
        // and its field buffers, which the decoder fills in place (`IdlSet::decode_typed`).
        let mut d = std::mem::take(&mut self.decoded);
        let mut spare = self.spares.get_mut(et as usize).and_then(Vec::pop);
        if let Some(Ev::Rec(r)) = spare.as_mut().and_then(Arc::get_mut) {
            if d.fields.capacity() == 0 {
                d.fields = std::mem::take(&mut r.fields);
            }
            if d.accounts.capacity() == 0 {
                d.accounts = std::mem::take(&mut r.accounts);
            }
        }
        if let Err(err) = stack.idls().decode_typed(et, update, &mut d) {
            self.decoded = d;
            self.stats.events += 1;
            self.stats.decode_errors += 1;
            return Err(ApplyError::Decode(err.to_string()));
        }
        let event = match stack.shape(d.event_type) {
            Some(shape) => Ev::Rec(Rec::take(shape, &mut d)),
            None => Ev::Json(Json::Null),
        };
        self.decoded = d;
        // Shared from here on: queues, replay caches and captures keep it without a copy.
        let event = match spare {
            Some(mut s) => {
                *Arc::get_mut(&mut s).expect("a spare record is held by nothing else") = event;
                s
            }
            None => Arc::new(event),
        };
        let c = Ctx {
            slot,
            signature: signature.map(Sig::raw),
            timestamp,
            write_version: is_account.then_some(index),
            txn_index: (!is_account).then_some(index),
            skip_resolvers: false,
        };
        let p = stack.program();
        self.ensure_tables(p);
        self.stats.events += 1;
        self.run(p, e, event, c, out)
    }

    /// Applies a fetched resolver result to the entity that asked for it: each extract's value
    /// (`source_path` inside `result`, or all of it) is written to its target (`SetOnce` resolvers
    /// only fill nulls), computed fields are re-evaluated, and a mutation is pushed if an emitted
    /// field changed. An entity that has since been evicted is left alone (`Ok`).
    pub fn apply_resolver_result(
        &mut self,
        stack: &Stack,
        request: &ResolverRequest,
        set_once: bool,
        result: &Json,
        ctx: &EventContext,
        out: &mut Vec<Mutation>,
    ) -> Result<(), ApplyError> {
        let p = stack.program();
        self.ensure_tables(p);
        let Some(ent) = p.entities.iter().position(|e| e.name == request.entity) else {
            return Err(ApplyError::UnknownEventType(format!(
                "resolver result for {}",
                request.entity
            )));
        };
        // Worked on in a copy (shared values are not copied), so that a failing extract leaves
        // the row as it was. (An error leaves the key buffer empty: only its reuse is lost.)
        let mut kstr = std::mem::take(&mut self.key_text);
        json::key_text_into(&request.key, &mut kstr);
        let row = self.tables[ent]
            .rows
            .get(kstr.as_str())
            .map(|(_, r)| r.clone());
        let Some(mut state) = row else {
            self.key_text = kstr;
            return Ok(());
        };
        let c = Ctx::from_event(ctx);
        let ep = &p.entities[ent];
        let mut dirty = Dirty::default();
        for x in request.extracts.iter() {
            let mut v = match &x.source {
                Some(sp) => json::get(result, &Path::dotted(sp).segs)
                    .cloned()
                    .unwrap_or(Json::Null),
                None => result.clone(),
            };
            if let (Some(t), false) = (x.transform, v.is_null()) {
                v = json::transform(&v, t).map_err(|e| ApplyError::Handler {
                    entity: request.entity.to_string(),
                    message: e.0,
                })?;
            }
            let target = ep.layout.dotted(&x.target);
            let slot = state.slot_mut(&target).map_err(|e| ApplyError::Handler {
                entity: request.entity.to_string(),
                message: e.0,
            })?;
            if v.is_null() || (set_once && !slot.is_null()) {
                continue;
            }
            *slot = v;
            if x.emit {
                dirty.replaced_cow(Cow::Owned(target));
            }
        }
        if self
            .eval_computed(p, ent, &mut state, &c, None, None, None)
            .is_ok()
        {
            for ((path, emit), &changed) in ep.computed_paths.iter().zip(&self.computed_changed) {
                if *emit && changed {
                    dirty.replaced(path);
                }
            }
        }
        let mutation = (!dirty.0.is_empty()).then(|| {
            let mut m = self.blank_mutation();
            dirty.take_patch(&state, &mut m.patch, &mut m.append);
            m
        });
        if let Some((_, row)) = self.tables[ent].rows.get_mut(kstr.as_str()) {
            *row = state;
        }
        self.key_text = kstr;
        if let Some(m) = mutation {
            out.push(self.finish_mutation(m, &ep.name, &request.key, c.seq()));
            self.stats.mutations += 1;
        }
        Ok(())
    }

    /// Moves slot-scheduled resolver requests whose slot has come into the request queue.
    fn fire_scheduled(&mut self, slot: u64) {
        let mut i = 0;
        while i < self.scheduled.len() {
            if self.scheduled[i].0 <= slot {
                let (_, r) = self.scheduled.swap_remove(i);
                self.push_request(r);
            } else {
                i += 1;
            }
        }
    }

    fn push_request(&mut self, r: ResolverRequest) {
        if self.requests.len() >= self.limits.resolver_requests {
            self.stats.dropped_resolver_requests += 1;
            return;
        }
        self.stats.resolver_requests += 1;
        self.requests.push(r);
    }

    /// Runs one decoded event in the reference interpreter's shape (`../shared/protocol.md` §8.1):
    /// accounts are a flat object of fields plus `__account_address`; instructions are
    /// `{"data": {args}, "accounts": {name: address}}`.
    pub fn apply_json(
        &mut self,
        stack: &Stack,
        event_type: &str,
        event: &Json,
        ctx: &EventContext,
        out: &mut Vec<Mutation>,
    ) -> Result<(), ApplyError> {
        let p = stack.program();
        self.ensure_tables(p);
        self.stats.events += 1;
        let Some(&e) = p.event_ids.get(event_type) else {
            self.stats.unknown_events += 1;
            return Err(ApplyError::UnknownEventType(event_type.to_string()));
        };
        if !event.is_object() {
            return Err(ApplyError::BadEvent("expected an object".into()));
        }
        let event = Arc::new(Ev::Json(event.clone()));
        self.run(p, e, event, Ctx::from_event(ctx), out)
    }

    fn run(
        &mut self,
        p: &Program,
        e: EventId,
        event: Arc<Ev>,
        c: Ctx,
        out: &mut Vec<Mutation>,
    ) -> Result<(), ApplyError> {
        let start = out.len();
        let r = self.apply_event(p, e, event, &c, out);
        if r.is_err() {
            out.truncate(start);
            self.stats.handler_errors += 1;
        }
        self.stats.mutations += (out.len() - start) as u64;
        r
    }

    fn apply_event(
        &mut self,
        p: &Program,
        e: EventId,
        mut ev: Arc<Ev>,
        c: &Ctx,
        out: &mut Vec<Mutation>,
    ) -> Result<(), ApplyError> {
        let info = &p.events[e];
        if c.is_account() {
            let addr = match ev.address_arc() {
                Some(s) => s,
                _ => {
                    return Err(ApplyError::BadEvent(
                        "account event without a string __account_address".into(),
                    ))
                }
            };
            if let Some(hook) = &info.resolver_hook {
                if !self.tables.is_empty() && self.tables[0].exists {
                    match hook {
                        KeyHook::PdaReverseLookup => {
                            // The key's text goes into a spare buffer.
                            let mut k = self.text_buf();
                            match self.tables[0].pda.get(&*addr) {
                                Some(seed) => {
                                    k.push_str(seed);
                                    Arc::make_mut(&mut ev).set_resolved(k);
                                }
                                None => {
                                    self.keep_text(Json::String(k));
                                    let pending = Pending::new(e, addr, ev, c);
                                    self.queue_update(0, pending);
                                    return Ok(());
                                }
                            }
                        }
                        KeyHook::DirectField(path) => {
                            if let Some(Json::String(k)) = ev.get(path).map(Cow::into_owned) {
                                if !k.is_empty() {
                                    Arc::make_mut(&mut ev).set_resolved(k);
                                }
                            }
                        }
                    }
                }
            }
            self.process(p, &ev, e, c, out)?;
            // The last update per address is kept where it can be replayed: in the first entity's
            // table (the one PDA mappings live in), when the stack maps PDAs at all (`map_pda`).
            let replayable = p.maps_pdas && info.routes.iter().any(|&(ent, _)| ent == 0);
            if replayable && self.tables[0].exists {
                let cached = Pending::new(e, addr.clone(), ev, c);
                if let Some(old) = self.tables[0].last_data.put(addr, cached) {
                    self.recycle(old.data);
                }
            } else {
                self.recycle(ev);
            }
        } else {
            self.process(p, &ev, e, c, out)?;
            if !info.pda_mappings.is_empty() {
                // The addresses' text and the list of updates to replay are reused buffers.
                let mut replay = std::mem::take(&mut self.replay);
                let (mut pda, mut seed) = (self.text_buf(), self.text_buf());
                for (pda_names, seed_names) in &info.pda_mappings {
                    pda.clear();
                    seed.clear();
                    if ev.account_into(pda_names, &mut pda)
                        && ev.account_into(seed_names, &mut seed)
                    {
                        self.map_pda(&pda, &seed, &mut replay);
                    }
                }
                self.keep_text(Json::String(pda));
                self.keep_text(Json::String(seed));
                for u in replay.drain(..) {
                    self.stats.replayed += 1;
                    let ctx = Ctx::of_pending(&u);
                    // The queue held the update; now only this replay does (no copy to resolve).
                    let mut data = u.data;
                    if let Some(k) = self.chained_lookup(&u.pda) {
                        Arc::make_mut(&mut data).set_resolved(k);
                    }
                    let mark = out.len();
                    if self.process(p, &data, u.event, &ctx, out).is_err() {
                        out.truncate(mark);
                        self.stats.handler_errors += 1;
                    }
                    self.recycle(data);
                }
                self.replay = replay;
            }
            self.recycle(ev);
        }
        Ok(())
    }

    /// Takes a capture apart if nothing else holds it: its record, its texts and its allocation
    /// hold the next ones (`spares`, `spare_texts`, `spare_capture`).
    fn recycle_capture(&mut self, mut c: Arc<Capture>) {
        if let Some(cap) = Arc::get_mut(&mut c) {
            let (ev, mut rewritten) = cap.take_parts();
            if let Some(ev) = ev {
                self.recycle(ev);
            }
            for (_, v) in rewritten.drain(..) {
                self.keep_text(v);
            }
            if rewritten.capacity() > 0 {
                self.spare_rewritten = rewritten;
            }
            self.spare_capture = Some(c);
        }
    }

    /// Takes apart a row its table evicted: its key texts and values give their buffers back,
    /// its captures their records, and the emptied row is its table's next new row.
    fn recycle_row(&mut self, ent: usize, (k, (key, mut row)): (String, (Json, Row))) {
        self.keep_text(Json::String(k));
        self.keep_text(key);
        for v in row.drain() {
            self.keep_stored(v);
        }
        self.tables[ent].spare_row = Some(row);
    }

    /// Files `state` as the row of `kstr`, which it was not taken from (a new row, or one made
    /// while the handler ran): the key text goes into a spare buffer, and a row the full table
    /// evicts, or the one `kstr` had, is taken apart for the next ones ([`Self::recycle_row`]).
    fn file_row(&mut self, ent: usize, kstr: &str, key: Json, state: Row) {
        let t = &mut self.tables[ent];
        if t.rows.is_full() && !t.rows.contains(kstr) {
            self.stats.evicted_rows += 1;
        }
        let k = json::owned_text_in(kstr, &mut self.spare_texts);
        if let Some(left) = t.rows.push(k, (key, state)) {
            self.recycle_row(ent, left);
        }
    }

    /// Keeps an update that nothing else holds as one of its type's spares (see `spares`).
    fn recycle(&mut self, mut ev: Arc<Ev>) {
        if let Some(Ev::Rec(r)) = Arc::get_mut(&mut ev) {
            let et = r.event_type as usize;
            if let Some(k) = r.resolved.take() {
                self.keep_text(k);
            }
            if self.spares.len() <= et {
                self.spares.resize_with(et + 1, Vec::new);
            }
            if self.spares[et].len() < self.limits.spare_records {
                self.spares[et].push(ev);
            }
        }
    }

    /// Registers `pda → seed` in the first entity's reverse lookup; appends the updates to replay
    /// to `replay`.
    fn map_pda(&mut self, pda: &str, seed: &str, replay: &mut Vec<Pending>) {
        if self.tables.is_empty() || !self.tables[0].exists {
            return;
        }
        let (pending_total, stats) = (&mut self.pending_total, &mut self.stats);
        let written = self.tables[0].set_pda(pda, seed, |t, evicted| {
            // Updates queued for the evicted PDA can no longer be resolved.
            if let Some(list) = t.pending.pop(evicted) {
                *pending_total -= list.len();
                stats.dropped_pending += list.len() as u64;
            }
        });
        let changed = written == table::PdaWrite::Changed;
        replay.append(&mut self.flush_updates(0, pda));
        if changed {
            let t = &mut self.tables[0];
            let (texts, limit) = (&mut self.spare_texts, self.limits.spare_texts);
            t.unmap(pda, |v| keep_text_in(texts, limit, v));
            if let Some(mut cached) = t.last_data.pop(pda) {
                cached.stale = true;
                replay.push(cached);
            }
        }
    }

    /// The key `pda` resolves to: its seed, or the primary key a lookup index maps the seed to
    /// (in a spare text buffer).
    fn chained_lookup(&mut self, pda: &str) -> Option<String> {
        let t = self.tables.first_mut()?;
        let seed = t.pda.get(pda)?;
        let mut key = self.spare_texts.pop().unwrap_or_default();
        key.push_str(seed);
        match t.find_in_indexes(None, &key) {
            None => Some(key),
            Some(Json::String(r)) => {
                key.clear();
                key.push_str(r);
                Some(key)
            }
            Some(_) => {
                keep_text_in(
                    &mut self.spare_texts,
                    self.limits.spare_texts,
                    Json::String(key),
                );
                None
            }
        }
    }

    fn queue_update(&mut self, ent: usize, p: Pending) {
        let lim = self.limits;
        let t = &mut self.tables[ent];
        if !t.exists {
            self.stats.dropped_pending += 1;
            return;
        }
        if self.pending_total >= lim.pending_total {
            // Make room: the least recently queued address loses its oldest update.
            if let Some(k) = t.pending.peek_lru().map(|(k, _)| k.clone()) {
                if let Some(list) = t.pending.peek_mut(&k) {
                    if !list.is_empty() {
                        list.remove(0);
                        self.pending_total -= 1;
                        self.stats.dropped_pending += 1;
                    }
                }
            } else {
                self.stats.dropped_pending += 1;
                return;
            }
        }
        if !t.pending.contains(&p.pda) {
            if let Some((_, evicted)) = t.pending.push(p.pda.clone(), Vec::new()) {
                self.pending_total -= evicted.len();
                self.stats.dropped_pending += evicted.len() as u64;
            }
        }
        let list = t.pending.get_mut(&p.pda).expect("just inserted");
        let before = list.len();
        list.retain(|x| x.slot > p.slot);
        self.pending_total -= before - list.len();
        if list.len() >= lim.pending_per_address {
            list.remove(0);
            self.pending_total -= 1;
            self.stats.dropped_pending += 1;
        }
        list.push(p);
        self.pending_total += 1;
        self.stats.queued_pending += 1;
    }

    fn flush_updates(&mut self, ent: usize, pda: &str) -> Vec<Pending> {
        match self.tables[ent].pending.pop(pda) {
            Some(list) => {
                self.pending_total -= list.len();
                list
            }
            None => Vec::new(),
        }
    }

    fn process(
        &mut self,
        p: &Program,
        ev: &Arc<Ev>,
        e: EventId,
        c: &Ctx,
        out: &mut Vec<Mutation>,
    ) -> Result<(), ApplyError> {
        let info = &p.events[e];
        if info.is_tx && info.is_when {
            if let Some(sig) = &c.signature {
                for ent in 0..self.tables.len() {
                    if self.tables[ent].exists {
                        self.note_instruction(p, ent, &sig.key(), e, c, out);
                    }
                }
            }
        }
        for &(ent, hi) in &info.routes {
            let before = out.len();
            if let Err(err) = self.exec(p, ent, hi, ev, c, out) {
                return Err(ApplyError::Handler {
                    entity: p.entities[ent].name.to_string(),
                    message: err.0,
                });
            }
            if out.len() == before {
                if let Some(pda) = self.pda_miss.take() {
                    if info.is_tx {
                        self.queue_ix(
                            ent,
                            pda,
                            PendingIx {
                                event: e,
                                data: ev.clone(),
                                ctx: c.clone(),
                            },
                        );
                    } else if c.write_version.is_some() {
                        let pending = Pending::new(e, pda.into(), ev.clone(), c);
                        self.queue_update(ent, pending);
                    }
                }
                if let Some(miss) = self.lookup_miss.take() {
                    if !info.is_tx && c.write_version.is_some() {
                        let pending = Pending::new(e, miss.into(), ev.clone(), c);
                        self.queue_update(ent, pending);
                    }
                }
            }
            // Only instructions some `when` waits for are worth remembering per transaction.
            if info.is_tx && info.is_when {
                if let Some(sig) = &c.signature {
                    self.note_instruction(p, ent, &sig.key(), e, c, out);
                }
            }
            if let Some(reg) = self.pda_registered.take() {
                if let Some(list) = self.tables[ent].pending_ix.pop(&reg) {
                    for ix in list {
                        if let Some(&h) = p.entities[ent].handler_by_event.get(&ix.event) {
                            self.stats.replayed += 1;
                            let mark = out.len();
                            if self.exec(p, ent, h, &ix.data, &ix.ctx, out).is_err() {
                                out.truncate(mark);
                                self.stats.handler_errors += 1;
                            }
                        }
                    }
                }
            }
            let mut keys = std::mem::take(&mut self.lookup_keys);
            for k in keys.drain(..) {
                for u in self.flush_updates(ent, &k) {
                    if let Some(&h) = p.entities[ent].handler_by_event.get(&u.event) {
                        self.stats.replayed += 1;
                        let mark = out.len();
                        if self
                            .exec(p, ent, h, &u.data, &Ctx::of_pending(&u), out)
                            .is_err()
                        {
                            out.truncate(mark);
                            self.stats.handler_errors += 1;
                        }
                    }
                }
            }
            // The buffer goes back unless the replays above noted keys of their own.
            if self.lookup_keys.is_empty() {
                self.lookup_keys = keys;
            }
        }
        Ok(())
    }

    fn queue_ix(&mut self, ent: usize, pda: String, ix: PendingIx) {
        let per = self.limits.pending_per_address;
        let t = &mut self.tables[ent];
        if !t.pending_ix.contains(&pda) {
            if let Some((_, evicted)) = t.pending_ix.push(pda.clone(), Vec::new()) {
                self.stats.dropped_pending += evicted.len() as u64;
            }
        }
        let list = t.pending_ix.get_mut(&pda).expect("just inserted");
        if list.len() >= per {
            list.remove(0);
            self.stats.dropped_pending += 1;
        }
        list.push(ix);
        self.stats.queued_pending += 1;
    }

    /// Records that instruction `e` ran in transaction `sig` and applies writes waiting for it.
    fn note_instruction(
        &mut self,
        p: &Program,
        ent: usize,
        sig: &SigKey,
        e: EventId,
        c: &Ctx,
        out: &mut Vec<Mutation>,
    ) {
        let t = &mut self.tables[ent];
        match t.recent_tx.get_mut(sig) {
            Some(v) => {
                if !v.contains(&e) {
                    v.push(e)
                }
            }
            None => {
                t.recent_tx.file(|spare| {
                    let mut v = spare.map(|(_, v)| v).unwrap_or_default();
                    v.clear();
                    v.push(e);
                    (sig.clone(), v)
                });
            }
        }
        let Some((k, mut ops)) = t.deferred.pop_entry(&(sig.clone(), e)) else {
            return;
        };
        for d in ops.drain(..) {
            if d.slot.saturating_add(self.limits.when_ttl_slots) < c.slot {
                self.stats.expired_when += 1;
                let limit = self.limits.spare_texts;
                keep_deferred_texts(&mut self.spare_texts, &mut self.spare_arrays, limit, d);
                continue;
            }
            self.apply_deferred(p, ent, d, c, out);
        }
        // The emptied group holds the next group filed.
        match &mut self.tables[ent].deferred.spare {
            spare @ None => *spare = Some((k, ops)),
            Some(_) if self.spare_groups.len() < self.limits.spare_records => {
                self.spare_groups.push(ops)
            }
            Some(_) => {}
        }
    }

    fn apply_deferred(
        &mut self,
        p: &Program,
        ent: usize,
        d: Deferred,
        c: &Ctx,
        out: &mut Vec<Mutation>,
    ) {
        if d.key.is_null() {
            self.keep_text(d.value);
            return;
        }
        let ep = &p.entities[ent];
        // The row is worked on in place (taken out and put back), as `exec_row` does.
        let mut kstr = std::mem::take(&mut self.key_text);
        json::key_text_into(&d.key, &mut kstr);
        let t = &mut self.tables[ent];
        let existing = t
            .rows
            .get_mut(kstr.as_str())
            .map(|(_, s)| std::mem::take(s));
        let new_row = existing.is_none();
        let mut state = existing.unwrap_or_else(|| t.blank_row(&ep.layout));
        // Into a whole slot the value is stored once, shared with the patch.
        let value = match d.target.whole_slot() {
            Some(_) => {
                let v = Stored::new_in(d.value, &mut self.spare_boxes);
                if let row::Old::Slot(Some(old)) = state.replace_stored(&d.target, v.clone()) {
                    self.keep_stored(old);
                }
                v
            }
            None => {
                state.set_nested(&d.target, d.value.clone());
                Stored::new_in(d.value, &mut self.spare_boxes)
            }
        };
        let _ = self.eval_computed(p, ent, &mut state, c, None, None, None);
        let mut patch = None;
        if d.emit {
            let mut m = self.blank_mutation();
            m.patch.push(d.target.path.segs.clone(), value);
            for ((f, _), &changed) in ep.computed_paths.iter().zip(&self.computed_changed) {
                if let (true, Some(new)) = (changed, state.share(f)) {
                    m.patch.push(f.path.segs.clone(), new);
                }
            }
            patch = Some(m);
        }
        if let Some(m) = patch {
            out.push(self.finish_mutation(m, &ep.name, &d.key, c.seq()));
        }
        match self.tables[ent].rows.peek_mut(kstr.as_str()) {
            Some((_, row)) if !new_row => {
                *row = state;
                self.keep_text(d.key);
            }
            _ => self.file_row(ent, &kstr, d.key, state),
        }
        self.key_text = kstr;
    }

    /// Evaluates the entity's computed fields in dependency order (all of them, or those `mask`
    /// allows) and leaves in `self.computed_changed` which of `computed_paths` changed. A write
    /// that fails (a non-object on the way) stops the evaluation and reports no change.
    #[allow(clippy::too_many_arguments)]
    fn eval_computed(
        &mut self,
        p: &Program,
        ent: usize,
        state: &mut Row,
        c: &Ctx,
        mask: Option<&[Due]>,
        mut undo: Option<&mut Vec<Undo>>,
        mut inputs: Option<&mut Vec<bool>>,
    ) -> Result<(), StepError> {
        let ep = &p.entities[ent];
        let mut changed = std::mem::take(&mut self.computed_changed);
        changed.clear();
        changed.resize(ep.computed_paths.len(), false);
        let old: Vec<Option<Json>> = if ep.computed_in_place {
            Vec::new()
        } else {
            ep.computed_paths
                .iter()
                .map(|(f, _)| state.get(f).map(Cow::into_owned))
                .collect()
        };
        let new_hashes = state.slot_hashes_seen != self.slot_hash_gen;
        state.slot_hashes_seen = self.slot_hash_gen;
        let hashes = &self.slot_hashes;
        let lookup = |s: u64| hashes.peek(&s).copied();
        let cx = expr::EvalCtx {
            slot: Some(c.slot),
            timestamp: c.timestamp,
            slot_hashes: &lookup,
        };
        // The expressions build their arrays in the spare array buffers.
        let mut env = std::mem::take(&mut self.env);
        env.arrays = std::mem::take(&mut self.spare_arrays);
        let mut r = Ok(());
        for (i, f) in ep.computed.iter().enumerate() {
            let due = match mask.map(|m| m[i]) {
                None => true,
                // Reading what the handler writes: evaluated if a slot it reads changed value (or,
                // with no input list, because it reads the event's context or its own target).
                Some(Due::Always) => match (&ep.computed_inputs[i], inputs.as_deref()) {
                    (Some(read), Some(changed)) => read.iter().any(|&s| changed[s as usize]),
                    _ => true,
                },
                Some(Due::OnNewSlotHashes) => new_hashes,
                Some(Due::Never) => false,
            };
            if !due {
                continue;
            }
            env.clear();
            let Ok(v) = computed::eval_field(f, state, &mut env, &cx) else {
                continue;
            };
            if ep.computed_in_place && state.get(&f.target).as_deref() == Some(&v) {
                env.keep(v);
                continue;
            }
            // Written from here on: fields after it that read its slot are due.
            if let (Some(changed), Some(slot)) = (inputs.as_deref_mut(), f.target.slot()) {
                changed[slot] = true;
            }
            match (f.target.whole_slot(), undo.as_deref_mut()) {
                // The old value moves into the undo log (a whole slot is replaced outright).
                (Some(slot), Some(u)) => {
                    let old = state.replace(&f.target, v, &mut self.spare_boxes);
                    u.push(Undo { slot, old });
                    if let (true, Some(k)) = (ep.computed_in_place, ep.computed_slot[i]) {
                        changed[k] = true;
                    }
                    continue;
                }
                (_, Some(u)) => u.extend(Undo::point(state, &f.target)),
                (_, None) => {}
            }
            if let Err(e) = state.set_forcing(&f.target, v) {
                r = Err(e);
                break;
            }
            if let (true, Some(k)) = (ep.computed_in_place, ep.computed_slot[i]) {
                changed[k] = true;
            }
        }
        match &r {
            Err(_) => changed.iter_mut().for_each(|x| *x = false),
            Ok(()) if !ep.computed_in_place => {
                for (k, ((f, _), old)) in ep.computed_paths.iter().zip(old).enumerate() {
                    changed[k] = state.get(f).as_deref() != old.as_ref();
                }
            }
            Ok(()) => {}
        }
        self.spare_arrays = std::mem::take(&mut env.arrays);
        self.env = env;
        self.computed_changed = changed;
        r
    }

    /// Whether a mapping's condition holds for `ev`: the field it names, compared with its
    /// literal. An (in)equality on a decoded field compares the field as decoded
    /// ([`crate::value::Value::eq_json`]) instead of rendering it first (a 32-byte key or hash
    /// tested against zero on every update).
    fn holds(ev: &Ev, cond: &program::Cond, c: &Ctx) -> Result<bool, StepError> {
        use crate::spec::ComparisonOp::{Equal, NotEqual};
        if let (Equal | NotEqual, Some(v)) = (cond.op, ev.value_ref(&cond.field)) {
            return Ok(v.eq_json(&cond.value) == (cond.op == Equal));
        }
        json::compare(&Self::load(ev, &cond.field, None, c), cond.op, &cond.value)
    }

    fn load(ev: &Ev, path: &EvPath, default: Option<&Json>, c: &Ctx) -> Json {
        // A located path starts at a record field: neither the whole record nor the context.
        if !path.is_located() {
            if path.is_empty() {
                return ev.public_fields();
            }
            if &*path.segs[0] == "__update_context" {
                if path.segs.len() == 2 {
                    return c
                        .field(&path.segs[1])
                        .or_else(|| default.cloned())
                        .unwrap_or(Json::Null);
                }
                let cj = c.to_json();
                return json::get(&cj, &path.segs[1..])
                    .cloned()
                    .or_else(|| default.cloned())
                    .unwrap_or(Json::Null);
            }
        }
        ev.get(path)
            .map(Cow::into_owned)
            .or_else(|| default.cloned())
            .unwrap_or(Json::Null)
    }

    /// [`json::cache_key`] of what [`VmContext::load`] gives for `path`, written to `out`: a
    /// decoded key or string is written as it is, without building its JSON. Returns whether the
    /// value is a string.
    fn load_key_text(ev: &Ev, path: &EvPath, c: &Ctx, out: &mut String) -> bool {
        out.clear();
        match ev.value_ref(path) {
            Some(crate::value::Value::Pubkey(k)) => {
                crate::b58::with_key(k, |s| out.push_str(s));
                true
            }
            Some(crate::value::Value::Str(s)) => {
                out.push_str(s);
                true
            }
            // An integer key (a round id): its digits, as `cache_key` of its JSON number.
            Some(crate::value::Value::U64(n)) => {
                out.push_str(itoa::Buffer::new().format(*n));
                false
            }
            Some(crate::value::Value::I64(n)) => {
                out.push_str(itoa::Buffer::new().format(*n));
                false
            }
            _ => match ev.address_at(path) {
                Some(a) => {
                    out.push_str(a);
                    true
                }
                None => {
                    let v = Self::load(ev, path, None, c);
                    out.push_str(&json::cache_key(&v));
                    v.is_string()
                }
            },
        }
    }

    fn lookup_chain(&mut self, ent: usize, named: Option<usize>, start: &Json) -> Json {
        let t = &mut self.tables[ent];
        if !t.exists {
            // Nothing is known yet. (The reference returns null without noting the miss, so an
            // instruction arriving before its entity's first update is lost; we queue it.)
            if let Some(s) = start.as_str() {
                self.pda_miss = Some(s.to_string());
            }
            return Json::Null;
        }
        // The start is read where it is; only what the indexes answer is copied.
        let mut cur = Cow::Borrowed(start);
        for iter in 1..=5 {
            let mut resolved = t
                .find_in_indexes(named, &json::cache_key(&cur))
                .cloned()
                .unwrap_or(Json::Null);
            let mut from_pda = false;
            if resolved.is_null() {
                if let Some(s) = cur.as_str() {
                    from_pda = true;
                    resolved = t
                        .pda
                        .get(s)
                        .map(|v| Json::String(v.clone()))
                        .unwrap_or(Json::Null);
                }
            }
            if resolved.is_null() {
                if iter == 1 {
                    if let Some(s) = cur.as_str() {
                        self.pda_miss = Some(s.to_string());
                    }
                }
                return Json::Null;
            }
            let ck = json::cache_key(&resolved);
            let further = t.find_in_indexes(named, &ck).is_some()
                || resolved
                    .as_str()
                    .map(|s| t.pda.contains(s))
                    .unwrap_or(false);
            if !further {
                if from_pda {
                    if let Some(s) = resolved.as_str() {
                        self.lookup_miss = Some(s.to_string());
                    }
                    return Json::Null;
                }
                return resolved;
            }
            cur = Cow::Owned(resolved);
        }
        cur.into_owned()
    }

    fn exec(
        &mut self,
        p: &Program,
        ent: usize,
        hi: usize,
        ev: &Arc<Ev>,
        c: &Ctx,
        out: &mut Vec<Mutation>,
    ) -> Result<(), StepError> {
        self.pda_miss = None;
        let ep = &p.entities[ent];
        let h = &ep.handlers[hi];
        // A key a hook resolved is borrowed from the update, not copied.
        let resolved: Cow<'_, Json> = match ev.resolved() {
            Some(k) => Cow::Borrowed(k),
            None => Cow::Owned(Json::Null),
        };
        let key: Cow<'_, Json> = match &h.key {
            KeyPlan::Embedded { path, transform } => {
                let mut key = resolved;
                if let Some(path) = path {
                    // Loaded even when the key is known: its transform can still fail the update.
                    if key.is_null() || transform.is_some() {
                        let v = self.load_transformed(ev, path, None, *transform, c)?;
                        if key.is_null() {
                            key = Cow::Owned(v);
                        } else {
                            self.keep_text(v);
                        }
                    }
                }
                key
            }
            KeyPlan::Lookup { path, index } => {
                let lk = if resolved.is_null() {
                    Cow::Owned(self.load_transformed(ev, path, None, None, c)?)
                } else {
                    resolved
                };
                let found = self.lookup_chain(ent, *index, &lk);
                if let Cow::Owned(lk) = lk {
                    self.keep_text(lk);
                }
                Cow::Owned(found)
            }
            KeyPlan::Computed { path } => {
                if resolved.is_null() {
                    Cow::Owned(self.load_transformed(ev, path, None, None, c)?)
                } else {
                    resolved
                }
            }
            KeyPlan::Temporal { lookup, ts, index } => {
                let lv = Self::load(ev, lookup, None, c);
                let tsv = Self::load(ev, ts, None, c);
                let found = if !self.tables[ent].exists {
                    return Err("State table not found".into());
                } else {
                    let t = &mut self.tables[ent];
                    let list =
                        index.and_then(|i| t.temporal[i].get(&*json::cache_key(&lv)).cloned());
                    match (tsv.is_null(), list) {
                        (_, None) => Json::Null,
                        (true, Some(l)) => l.last().map(|(_, k)| k.clone()).unwrap_or(Json::Null),
                        (false, Some(l)) => {
                            let at = json::as_int(&tsv).ok_or("Timestamp must be a number")?;
                            l.iter()
                                .rev()
                                .find(|(t, _)| *t <= at)
                                .map(|(_, k)| k.clone())
                                .unwrap_or(Json::Null)
                        }
                    }
                };
                if resolved.is_null() {
                    Cow::Owned(found)
                } else {
                    resolved
                }
            }
            KeyPlan::HookOnly { lookup_by } => {
                let mut key = resolved;
                if let Some(path) = lookup_by {
                    let v =
                        self.load_transformed(ev, path, None, Some(Transformation::HexEncode), c)?;
                    if key.is_null() {
                        key = Cow::Owned(v);
                    } else {
                        self.keep_text(v);
                    }
                }
                key
            }
        };
        if key.is_null() && h.is_account {
            return Ok(());
        }
        self.tables[ent].exists = true;
        // The row key's text goes into a reused buffer: it is copied only to file a new row.
        let mut kstr = std::mem::take(&mut self.key_text);
        json::key_text_into(&key, &mut kstr);
        let r = self.exec_row(p, ent, h, ev, c, &key, &kstr, out);
        self.key_text = kstr;
        if let Cow::Owned(k) = key {
            self.keep_text(k);
        }
        r
    }

    /// The rest of [`VmContext::exec`] once the key is known (`kstr`: its text): the recency and
    /// dedup gate, the steps on the row, storing it and emitting the mutation.
    #[allow(clippy::too_many_arguments)]
    fn exec_row(
        &mut self,
        p: &Program,
        ent: usize,
        h: &program::Handler,
        ev: &Arc<Ev>,
        c: &Ctx,
        key: &Json,
        kstr: &str,
        out: &mut Vec<Mutation>,
    ) -> Result<(), StepError> {
        let ep = &p.entities[ent];
        if !key.is_null() {
            let t = &mut self.tables[ent];
            if c.is_account() {
                // Per account and event type; a JSON-rendered key (quoted) never equals an address.
                let who = ev.address_arc().unwrap_or_else(|| Arc::from(kstr));
                let vkey = (who, h.event);
                let now = (c.slot, c.write_version.unwrap_or(0));
                match t.versions.get_mut(&vkey) {
                    Some(last) if now <= *last => {
                        self.stats.skipped_stale += 1;
                        return Ok(());
                    }
                    Some(last) => *last = now,
                    None => {
                        t.versions.file(|_| (vkey, now));
                    }
                }
            } else if c.is_instruction() {
                // Filed under the key text's hash, holding the text itself: looking an
                // instruction up copies nothing, and a hash collision is told apart by the text
                // (the newer key takes the entry; the older one could then run twice, never be
                // dropped).
                let dkey = (
                    table::text_hash(kstr),
                    h.event,
                    c.slot,
                    c.txn_index.unwrap_or(0),
                );
                match t.ix_seen.peek_mut(&dkey) {
                    Some(k) if k == kstr => {
                        self.stats.skipped_duplicate += 1;
                        return Ok(());
                    }
                    Some(k) => {
                        k.clear();
                        k.push_str(kstr);
                    }
                    None => {
                        t.ix_seen.file(|spare| {
                            // Made with room for any address key, so that a spare made
                            // for a shorter key never has to grow.
                            let mut k = spare
                                .map(|(_, k)| k)
                                .unwrap_or_else(|| String::with_capacity(KEY_TEXT_ROOM));
                            k.clear();
                            k.push_str(kstr);
                            (dkey, k)
                        });
                    }
                }
            }
        } else {
            // An instruction whose key is unknown: nothing is stored under a null key; the
            // missed lookup (if any) queues it for replay.
            if self.pda_miss.is_some() {
                return Ok(());
            }
        }
        // The row's state is worked on in place (taken out and put back), not copied; its key
        // is hashed once for both.
        let rows = &mut self.tables[ent].rows;
        let row_hash = rows.hash_of(kstr);
        let row = rows
            .get_mut_hashed(row_hash, kstr)
            .map(|(_, s)| std::mem::take(s));
        let new_row = row.is_none();
        let mut state = row.unwrap_or_else(|| self.tables[ent].blank_row(&ep.layout));
        let room = h.steps.len() + ep.computed_paths.len();
        let mut dirty = Dirty::reuse(std::mem::take(&mut self.dirty), room);
        let mut undo = std::mem::take(&mut self.undo);
        let hashes_seen = state.slot_hashes_seen;
        let r = self.steps(
            p, ent, h, ev, c, key, new_row, &mut state, &mut dirty, &mut undo,
        );
        let mut mutation = None;
        if r.is_ok() && h.emit && !key.is_null() && !dirty.0.is_empty() {
            // Built from the working state before the state moves into its row, so the row is
            // stored without a second deep copy.
            let mut m = self.blank_mutation();
            dirty.take_patch(&state, &mut m.patch, &mut m.append);
            mutation = Some(m);
        }
        self.dirty = dirty.recycle();
        if let Err(e) = r {
            // The reference drops the whole event's effect on the row: put it back as it was.
            if !new_row {
                for u in undo.drain(..).rev() {
                    u.restore(&mut state);
                }
                state.slot_hashes_seen = hashes_seen;
                if let Some((_, s)) = self.tables[ent].rows.peek_mut(kstr) {
                    *s = state;
                }
            }
            undo.clear();
            self.undo = undo;
            return Err(e);
        }
        // A capture this update replaced, held by nothing else any more, gives its record back.
        // So does a replaced value's text.
        for u in undo.drain(..) {
            match u.old {
                row::Old::Slot(Some(v)) => self.keep_stored(v),
                row::Old::Value(v) => self.keep_text(v),
                row::Old::Slot(None) => {}
            }
        }
        self.undo = undo;
        if !key.is_null() {
            let t = &mut self.tables[ent];
            match t.rows.peek_mut_hashed(row_hash, kstr) {
                // The row the state was taken from: put it back (no new key, no LRU move).
                Some((_, row)) if !new_row => *row = state,
                _ => {
                    let key = json::clone_in(key, &mut self.spare_texts);
                    self.file_row(ent, kstr, key, state);
                }
            }
        }
        if let Some(m) = mutation {
            out.push(self.finish_mutation(m, &ep.name, key, c.seq()));
        }
        Ok(())
    }

    /// Runs a handler's steps on the working `state`, recording in `undo` how to take back each
    /// write (see [`Undo`]).
    #[allow(clippy::too_many_arguments)]
    fn steps<'p>(
        &mut self,
        p: &'p Program,
        ent: usize,
        h: &'p program::Handler,
        ev: &Arc<Ev>,
        c: &Ctx,
        key: &Json,
        new_row: bool,
        state: &mut Row,
        dirty: &mut Dirty<'p>,
        undo: &mut Vec<Undo>,
    ) -> Result<(), StepError> {
        let ep = &p.entities[ent];
        let mut temp = Json::Null;
        for step in &h.steps {
            match step {
                Step::IndexLookup { index, value } => {
                    let mut text = std::mem::take(&mut self.value_text);
                    let is_string = Self::load_key_text(ev, value, c, &mut text);
                    let t = &mut self.tables[ent];
                    let hash = t.hash(&text);
                    let ix = &mut t.lookups[*index];
                    let texts = &mut self.spare_texts;
                    // An entry that already says this (the usual case) is only moved to the front.
                    match ix.get_mut_hashed(hash, text.as_str()) {
                        Some(v) if v == key => {}
                        Some(v) => json::assign(v, key),
                        None => {
                            // Written in the spare entry, or in spare text buffers.
                            ix.file(|spare| {
                                let (mut k, mut v) = spare.unwrap_or_else(|| {
                                    (texts.pop().unwrap_or_default(), Json::Null)
                                });
                                k.clear();
                                k.push_str(&text);
                                json::assign_in(&mut v, key, texts);
                                (k, v)
                            });
                        }
                    }
                    // Updates queued under this value are replayed once the handler is done.
                    if is_string && t.pending.contains_hashed(hash, text.as_str()) {
                        self.lookup_keys.push(text.clone());
                    }
                    self.value_text = text;
                }
                Step::IndexTemporal {
                    index, value, ts, ..
                } => {
                    let lv = Self::load(ev, value, None, c);
                    let tsv = json::as_int(&Self::load(ev, ts, None, c))
                        .ok_or("Timestamp must be a number")?;
                    let t = &mut self.tables[ent].temporal[*index];
                    let ck = json::cache_key(&lv).into_owned();
                    let list = match t.get_mut(&ck) {
                        Some(l) => l,
                        None => {
                            t.put(ck.clone(), Vec::new());
                            t.get_mut(&ck).unwrap()
                        }
                    };
                    let pos = list.partition_point(|(x, _)| *x <= tsv);
                    list.insert(pos, (tsv, key.clone()));
                    if list.len() > 250 {
                        list.remove(0);
                    }
                }
                Step::IndexPda { value } => {
                    let mut pda = std::mem::take(&mut self.value_text);
                    if Self::load_key_text(ev, value, c, &mut pda) {
                        let seed = match key {
                            Json::String(_) => Some(json::cache_key(key)),
                            k if k.as_u64().is_some() => Some(json::cache_key(key)),
                            _ => None,
                        };
                        if let Some(seed) = seed {
                            let t = &mut self.tables[ent];
                            t.set_pda(&pda, &seed, |_, _| {});
                            // Instructions queued for this PDA are replayed once the handler is
                            // done (none queued: nothing to note).
                            self.pda_registered =
                                t.pending_ix.contains(pda.as_str()).then(|| pda.clone());
                        }
                    }
                    self.value_text = pda;
                }
                Step::Map(op) => {
                    if self.unchanged_by(op, ev, state) {
                        if op.emit && matches!(op.store, Store::Set) {
                            dirty.replaced(&op.target);
                        }
                        continue;
                    }
                    match &op.src {
                        // A count reads nothing of the value: it is not loaded (a load without a
                        // transform cannot fail).
                        Src::Event {
                            transform: None, ..
                        } if matches!(op.store, Store::Increment)
                            && op.transform.is_none()
                            && !op.temp_live_after => {}
                        Src::Event {
                            path,
                            default,
                            transform,
                        } => {
                            let v =
                                self.load_transformed(ev, path, default.as_ref(), *transform, c)?;
                            json::discard(std::mem::replace(&mut temp, v));
                        }
                        Src::Const(v) => json::discard(std::mem::replace(&mut temp, v.clone())),
                        Src::Context(f) => {
                            let v = c.field(f).unwrap_or(Json::Null);
                            json::discard(std::mem::replace(&mut temp, v));
                        }
                        Src::Keep => {}
                        Src::Capture { transforms } => {
                            let cap = Capture::new(
                                ev,
                                transforms,
                                c.slot,
                                c.timestamp,
                                c.signature.as_ref(),
                                std::mem::take(&mut self.spare_rewritten),
                                &mut self.spare_texts,
                            )?;
                            for f in &op.capture_dirty {
                                dirty.replaced(f);
                            }
                            // Stored into a whole slot as it is, the capture stays a record
                            // (see `capture`); anything else works on its JSON.
                            match (&op.store, op.target.whole_slot()) {
                                (Store::Set, Some(slot))
                                    if op.transform.is_none() && !op.temp_live_after =>
                                {
                                    let cap = Stored::Capture(match self.spare_capture.take() {
                                        Some(mut a) => {
                                            *Arc::get_mut(&mut a).expect("a spare is unshared") =
                                                cap;
                                            a
                                        }
                                        None => Arc::new(cap),
                                    });
                                    let old = state.replace_stored(&op.target, cap);
                                    undo.push(Undo { slot, old });
                                    if op.emit {
                                        dirty.replaced(&op.target);
                                    }
                                    continue;
                                }
                                _ => temp = cap.to_json(),
                            }
                        }
                        Src::AsEvent { fields } => {
                            let data = match fields {
                                None => ev.public_fields(),
                                Some(fs) => {
                                    let mut d = serde_json::Map::new();
                                    for (name, path, default, t) in fs {
                                        let mut v = Self::load(ev, path, default.as_ref(), c);
                                        if let Some(t) = t {
                                            v = json::transform(&v, *t)?;
                                        }
                                        d.insert(name.to_string(), v);
                                    }
                                    Json::Object(d)
                                }
                            };
                            let mut m = serde_json::Map::new();
                            m.insert("timestamp".into(), json!(c.timestamp));
                            m.insert("data".into(), data);
                            m.insert("slot".into(), json!(c.slot));
                            if let Some(s) = &c.signature {
                                m.insert("signature".into(), json!(s.as_str()));
                            }
                            temp = Json::Object(m);
                        }
                    }
                    if let Some(t) = op.transform {
                        let v = json::transform(&temp, t)?;
                        json::discard(std::mem::replace(&mut temp, v));
                    }
                    match &op.store {
                        // `store` hands the old value to `undo` itself (a `when` write only if it
                        // is not deferred).
                        Store::Set | Store::When { .. } => {}
                        Store::UniqueCount { set } => {
                            undo.extend(Undo::point(state, &op.target));
                            undo.extend(Undo::point(state, set));
                        }
                        _ => undo.extend(Undo::point(state, &op.target)),
                    }
                    let value = if op.temp_live_after {
                        temp.clone()
                    } else {
                        std::mem::take(&mut temp)
                    };
                    self.store(p, ent, op, state, value, key, ev, c, dirty, undo)?;
                }
                Step::Resolvers => {
                    if !c.skip_resolvers {
                        self.queue_resolvers(p, ent, state, key, c)?;
                    }
                }
                Step::Computed => {
                    let mask = (!new_row).then_some(&h.computed_mask[..]);
                    // Which slots this update changed (an existing row's; a new row evaluates
                    // every field): the undo log names every slot written.
                    let mut inputs = std::mem::take(&mut self.slots_changed);
                    inputs.clear();
                    if mask.is_some() {
                        inputs.resize(ep.layout.len(), false);
                        for u in undo.iter() {
                            if !inputs[u.slot] && state.differs(u.slot, &u.old) {
                                inputs[u.slot] = true;
                            }
                        }
                    }
                    let known = mask.is_some().then_some(&mut inputs);
                    let r = self.eval_computed(p, ent, state, c, mask, Some(undo), known);
                    self.slots_changed = inputs;
                    if r.is_ok() {
                        for ((path, emit), &changed) in
                            ep.computed_paths.iter().zip(&self.computed_changed)
                        {
                            if *emit && changed {
                                dirty.replaced(path);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether mapping `op` would leave `state` as it is, known without loading its value: a
    /// `SetOnce` whose target already holds a value, or a copy of an event field (plain or
    /// text-encoded) into a whole slot that already holds exactly that (most fields of an account
    /// update repeat the last one). Only mappings that cannot fail and whose value no later
    /// mapping reads qualify. A skipped `Set` is still marked dirty by the caller, as the write
    /// would have been.
    fn unchanged_by(&self, op: &program::MapOp, ev: &Ev, state: &Row) -> bool {
        if op.temp_live_after || op.transform.is_some() {
            return false;
        }
        match (&op.store, &op.src) {
            (
                Store::SetIfNull,
                Src::Event {
                    transform: None, ..
                }
                | Src::Const(_)
                | Src::Context(_),
            ) => state.holds_non_null(&op.target),
            // A transform that cannot fail on this value (see `json::with_text`) cannot fail the
            // update either.
            (
                Store::SetIfNull,
                Src::Event {
                    path,
                    transform: Some(t),
                    ..
                },
            ) => {
                state.holds_non_null(&op.target)
                    && ev.value_ref(path).is_some_and(|v| json::encodes(v, *t))
            }
            (
                Store::Set,
                Src::Event {
                    path, transform, ..
                },
            ) => {
                let (Some(slot), Some(v)) = (op.target.whole_slot(), ev.value_ref(path)) else {
                    return false;
                };
                match (state.slot_json(slot), transform) {
                    (Some(cur), None) => v.eq_json(cur),
                    // Only a transform that cannot fail here (see `json::with_text`).
                    (Some(Json::String(cur)), Some(t)) => json::encodes_to(v, *t, cur),
                    _ => false,
                }
            }
            _ => false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn store<'p>(
        &mut self,
        p: &'p Program,
        ent: usize,
        op: &'p program::MapOp,
        state: &mut Row,
        temp: Json,
        key: &Json,
        ev: &Arc<Ev>,
        c: &Ctx,
        dirty: &mut Dirty<'p>,
        undo: &mut Vec<Undo>,
    ) -> Result<(), StepError> {
        let _ = p;
        let target = &op.target;
        let mark = |d: &mut Dirty<'p>| {
            if op.emit {
                d.replaced(target)
            }
        };
        match &op.store {
            Store::Set => {
                set_undoable(state, target, temp, undo, &mut self.spare_boxes)?;
                mark(dirty);
            }
            Store::SetIfNull => {
                if !temp.is_null() {
                    let slot = state.slot_mut(target)?;
                    if slot.is_null() {
                        *slot = temp;
                        mark(dirty);
                    }
                }
            }
            Store::Max | Store::Min => {
                let slot = state.slot_mut(target)?;
                if json::extreme_wins(slot, &temp, matches!(op.store, Store::Max)) {
                    *slot = temp;
                    mark(dirty);
                }
            }
            Store::Sum => {
                let n = json::as_int(&temp).ok_or("Sum requires numeric value")?;
                let slot = state.slot_mut(target)?;
                let cur = if slot.is_null() {
                    0
                } else {
                    json::as_int(slot).unwrap_or(0)
                };
                *slot = json!(cur.wrapping_add(n));
                mark(dirty);
            }
            Store::Increment => {
                increment(state, target)?;
                mark(dirty);
            }
            Store::Append => {
                let max = self.cfg.max_array_length;
                let slot = state.slot_mut(target)?;
                if slot.is_null() {
                    *slot = Json::Array(Vec::new());
                }
                let arr = slot.as_array_mut().ok_or("Path is not an array")?;
                if op.emit {
                    dirty.appended(target, temp.clone());
                }
                arr.push(temp);
                if arr.len() > max {
                    let excess = arr.len() - max;
                    arr.drain(..excess);
                }
            }
            Store::UniqueCount { set } => {
                let mut items: Vec<Json> = match state.get(set).as_deref() {
                    Some(Json::Array(a)) => a.clone(),
                    _ => Vec::new(),
                };
                let new = !items.contains(&temp);
                if new {
                    items.push(temp);
                }
                let n = items.len();
                state.set(set, Json::Array(items))?;
                if new {
                    state.set(target, json!(n))?;
                    mark(dirty);
                }
            }
            Store::CondSet(cond) => {
                if Self::holds(ev, cond, c)? {
                    state.set(target, temp)?;
                    mark(dirty);
                }
            }
            Store::CondIncrement(cond) => {
                if Self::holds(ev, cond, c)? {
                    increment(state, target)?;
                    mark(dirty);
                }
            }
            Store::When { instruction, cond } => {
                if let Some(cond) = cond {
                    if !Self::holds(ev, cond, c)? {
                        return Ok(());
                    }
                }
                let Some(sig) = c.signature.as_ref().filter(|s| !s.is_empty()).map(Sig::key) else {
                    return Ok(());
                };
                let t = &mut self.tables[ent];
                let seen = t
                    .recent_tx
                    .get(&sig)
                    .map(|v| v.contains(instruction))
                    .unwrap_or(false);
                if seen {
                    set_undoable(state, target, temp, undo, &mut self.spare_boxes)?;
                    mark(dirty);
                } else {
                    let (texts, arrays, groups, limit) = (
                        &mut self.spare_texts,
                        &mut self.spare_arrays,
                        &mut self.spare_groups,
                        self.limits.spare_texts,
                    );
                    let d = Deferred {
                        key: json::clone_in(key, texts),
                        target: target.clone(),
                        value: temp,
                        emit: op.emit,
                        slot: c.slot,
                    };
                    let k = (sig, *instruction);
                    match t.deferred.get_mut(&k) {
                        Some(v) => {
                            if v.len() >= self.limits.pending_per_address {
                                keep_deferred_texts(texts, arrays, limit, v.remove(0));
                                self.stats.expired_when += 1;
                            }
                            v.push(d)
                        }
                        None => {
                            // A full list drops its oldest group; the group dropped before
                            // gives its texts back and holds this one.
                            let dropped = t.deferred.file(|spare| {
                                let mut group = spare
                                    .map(|(_, g)| g)
                                    .unwrap_or_else(|| groups.pop().unwrap_or_default());
                                for old in group.drain(..) {
                                    keep_deferred_texts(texts, arrays, limit, old);
                                }
                                group.push(d);
                                (k, group)
                            });
                            if let Some((_, group)) = dropped {
                                self.stats.expired_when += group.len() as u64;
                            }
                        }
                    }
                    self.stats.deferred_when += 1;
                }
            }
            Store::UnlessStopped { flag } => {
                let stopped = state.get(flag).and_then(|v| v.as_bool()).unwrap_or(false);
                if !stopped {
                    state.set(target, temp)?;
                    mark(dirty);
                }
            }
        }
        Ok(())
    }

    fn queue_resolvers(
        &mut self,
        p: &Program,
        ent: usize,
        state: &Row,
        key: &Json,
        c: &Ctx,
    ) -> Result<(), StepError> {
        let ep = &p.entities[ent];
        for r in &ep.resolvers {
            if let Some((path, op, value)) = &r.condition {
                let v = state.get(path);
                if !json::compare(v.as_deref().unwrap_or(&Json::Null), *op, value)? {
                    continue;
                }
            }
            if key.is_null() {
                continue;
            }
            let mut at_slot = None;
            if let Some(path) = &r.schedule_at {
                match state.get(path).and_then(|v| v.as_u64()) {
                    Some(target) if c.slot < target => at_slot = Some(target),
                    Some(_) => {}
                    None => continue,
                }
            }
            // Every target filled: a `SetOnce` resolver has nothing left to ask (checked before
            // the input is built, which is all it would be built for).
            if at_slot.is_none()
                && r.strategy == crate::spec::ResolveStrategy::SetOnce
                && (r.targets.iter()).all(|t| state.get(t).is_some_and(|v| !v.is_null()))
            {
                continue;
            }
            let input = if let Some(parts) = &r.template {
                let mut url = String::with_capacity(r.template_room);
                let mut ok = true;
                for part in parts {
                    match part {
                        program::TemplatePart::Lit(s) => url.push_str(s),
                        program::TemplatePart::Field(f) => match state.get(f).as_deref() {
                            Some(Json::String(s)) => url.push_str(s),
                            Some(Json::Null) | None => ok = false,
                            Some(v) => url.push_str(&v.to_string()),
                        },
                    }
                }
                ok.then_some(Json::String(url))
            } else if let Some(v) = &r.input_value {
                Some(v.clone())
            } else {
                r.input_path
                    .as_ref()
                    .and_then(|p| state.get(p).map(Cow::into_owned))
            };
            let Some(input) = input else { continue };
            if input.is_null() && at_slot.is_none() {
                continue;
            }
            let req = ResolverRequest {
                entity: ep.name.clone(),
                key: key.clone(),
                kind: r.kind.clone(),
                input,
                extracts: r.extracts.clone(),
                at_slot,
                set_once: r.strategy == crate::spec::ResolveStrategy::SetOnce,
            };
            match at_slot {
                Some(s) => {
                    if self.scheduled.len() >= self.limits.resolver_requests {
                        self.stats.dropped_resolver_requests += 1;
                    } else {
                        self.scheduled.push((s, req));
                    }
                }
                None => self.push_request(req),
            }
        }
        Ok(())
    }
}

/// Bytes a new key text buffer is made with: a quoted base58 address (at most 46) fits.
const KEY_TEXT_ROOM: usize = 48;

/// [`VmContext::keep_text`] into `spare`, holding at most `limit` buffers.
fn keep_text_in(spare: &mut Vec<String>, limit: usize, v: Json) {
    match v {
        Json::String(mut t) => {
            if spare.len() < limit && (1..=1024).contains(&t.capacity()) {
                t.clear();
                spare.push(t);
            }
        }
        v => json::discard(v),
    }
}

/// Keeps the element buffer of an array nothing holds any more (emptied) in `spare`, holding at
/// most `limit` buffers of at most 1,024 elements.
fn keep_array_in(spare: &mut Vec<Vec<Json>>, limit: usize, mut a: Vec<Json>) {
    if spare.len() < limit && (1..=1024).contains(&a.capacity()) {
        a.drain(..).for_each(json::discard);
        spare.push(a);
    }
}

/// Gives the buffers of a dropped deferred write back (see `spare_texts`, `spare_arrays`).
fn keep_deferred_texts(
    texts: &mut Vec<String>,
    arrays: &mut Vec<Vec<Json>>,
    limit: usize,
    d: Deferred,
) {
    keep_text_in(texts, limit, d.key);
    match d.value {
        Json::Array(a) => keep_array_in(arrays, limit, a),
        v => keep_text_in(texts, limit, v),
    }
}

/// Writes `value` at `target`, recording how to take it back. The old value of a whole slot moves
/// into the undo log rather than being copied there first.
fn set_undoable(
    state: &mut Row,
    target: &Field,
    value: Json,
    undo: &mut Vec<Undo>,
    boxes: &mut Vec<Arc<Json>>,
) -> Result<(), StepError> {
    match target.whole_slot() {
        Some(slot) => {
            let old = state.replace(target, value, boxes);
            undo.push(Undo { slot, old });
        }
        None => {
            undo.extend(Undo::point(state, target));
            state.set(target, value)?;
        }
    }
    Ok(())
}

fn increment(state: &mut Row, target: &Field) -> Result<(), StepError> {
    let slot = state.slot_mut(target)?;
    let cur = if slot.is_null() {
        0
    } else {
        json::as_int(slot).unwrap_or(0)
    };
    *slot = json!(cur.wrapping_add(1));
    Ok(())
}

impl Default for VmContext {
    fn default() -> Self {
        Self::new()
    }
}

/// Compiles a parsed stack's entities (used by [`Stack::from_json`]).
pub(crate) fn program_of(spec: &crate::spec::StackSpec) -> Result<Program, crate::spec::SpecError> {
    program::compile(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature keys the per-transaction tables alike whether it came as 64 bytes (an update)
    /// or as their base58 text (an event given as JSON); other text keys as itself.
    #[test]
    fn a_signature_keys_alike_as_bytes_and_as_its_base58_text() {
        let raw = [0x5au8; 64];
        let text = crate::b58::encode(&raw);
        assert_eq!(Sig::text(text.clone()).key(), Sig::raw(&raw).key());
        assert_eq!(Sig::text(text.clone()).as_str(), text);
        assert_eq!(Sig::raw(&raw).as_str(), text);
        let mut other = raw;
        other[63] ^= 1;
        assert_ne!(Sig::raw(&other).key(), Sig::raw(&raw).key());
        // Text that is not 64 bytes of base58 (too short, or not base58 at all).
        for t in ["tx1", "0OIl", &crate::b58::encode(&[1u8; 32])] {
            assert_eq!(Sig::text(t.to_string()).key(), SigKey::Text(Arc::from(t)));
            assert!(!Sig::text(t.to_string()).is_empty());
        }
        assert!(Sig::text(String::new()).is_empty());
        assert!(!Sig::raw(&[0; 64]).is_empty());
    }
}
