//! Compiling a stack's entities into handler programs.
//!
//! Each (entity, event type) pair becomes one [`Handler`]: a key plan followed by a flat list of
//! [`Step`]s (index updates, field mappings, resolver queueing, computed-field evaluation, hook
//! actions). Paths are pre-split, index names resolved to slot numbers, emit flags decided, and the
//! event type names interned: the executor never consults the spec again.
//!
//! The layout follows the reference compiler's facts (`../shared/protocol.md` §3.3): key loading,
//! null-key abort for accounts, recency gate, index updates, mappings, resolvers, computed fields,
//! store, emit; handlers of one entity for the same event type are merged (the first one's key
//! plan and emit flag, every handler's steps); instruction-hook actions go before the first
//! computed-field evaluation.

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

use super::computed::{compile_fields, Computed};
use super::json::Path;
use super::record::EvPath;
use super::row::{At, Field, Layout};
use crate::spec::{
    ComparisonOp, EntitySpec, FieldPath, HookAction, KeyResolution, MappingSource, ParsedCondition,
    Population, ResolveStrategy, ResolverSpec, ResolverStrategy, SpecError, StackSpec,
    Transformation, UrlSource, UrlTemplatePart,
};

/// Index of an interned event type.
pub(crate) type EventId = usize;

pub(crate) struct Program {
    pub event_names: Vec<String>,
    pub event_ids: HashMap<String, EventId>,
    pub events: Vec<EventInfo>,
    pub entities: Vec<EntityProgram>,
    /// Some instruction hook registers PDA mappings (so a mapping can change and replay).
    pub maps_pdas: bool,
}

#[derive(Default)]
pub(crate) struct EventInfo {
    pub is_tx: bool,
    /// Some handler defers a field until this instruction is seen in the same transaction.
    pub is_when: bool,
    /// (entity, handler index) in file order.
    pub routes: Vec<(usize, usize)>,
    pub resolver_hook: Option<KeyHook>,
    pub pda_mappings: Vec<(AccountNames, AccountNames)>,
}

/// Names an instruction account may have in the record (camelCase first, then as written).
pub(crate) type AccountNames = Vec<Box<str>>;

/// One `AsEvent` field: record name, source path, default, transform.
pub(crate) type EventField = (Box<str>, EvPath, Option<Json>, Option<Transformation>);

#[derive(Clone)]
pub(crate) enum KeyHook {
    PdaReverseLookup,
    DirectField(EvPath),
}

pub(crate) struct EntityProgram {
    pub name: std::sync::Arc<str>,
    pub index_names: Vec<String>,
    pub temporal_names: Vec<String>,
    pub handlers: Vec<Handler>,
    pub handler_by_event: HashMap<EventId, usize>,
    /// Where each state path lives in a row ([`super::row`]).
    pub layout: Layout,
    pub computed: Vec<Computed>,
    /// `computed_fields` with their emit flags: the paths compared before/after evaluation.
    pub computed_paths: Vec<(Field, bool)>,
    /// Per computed field: its target's position in `computed_paths`, if listed there.
    pub computed_slot: Vec<Option<usize>>,
    /// Every computed target is written by one field only and no two of the compared paths
    /// nest: then "changed during evaluation" equals "differs before and after", and the executor
    /// compares in place instead of copying every compared value first.
    pub computed_in_place: bool,
    /// Per computed field: the slots its expression reads, or `None` when it must be evaluated
    /// on every event its handler's mask allows (it reads the event's context, or its own
    /// target). See [`Handler::computed_mask`].
    pub computed_inputs: Vec<Option<Box<[u32]>>>,
    pub resolvers: Vec<Resolver>,
}

pub(crate) struct Handler {
    pub event: EventId,
    pub is_account: bool,
    pub key: KeyPlan,
    pub steps: Vec<Step>,
    pub emit: bool,
    /// Per computed field (in evaluation order): when this handler must evaluate it on an
    /// existing row ([`Due`]). A field is skipped when nothing it reads can have changed: its
    /// result would be the stored one (evaluation is deterministic in its inputs), so skipping
    /// changes nothing but the time spent. The executor narrows `Due::Always` further at run
    /// time: a field is evaluated only if one of the slots it reads
    /// ([`EntityProgram::computed_inputs`]) changed value during the update.
    pub computed_mask: Vec<Due>,
}

/// When a handler must evaluate a computed field on an existing row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    /// Nothing it reads can have changed: no step writes a path it reads, no field evaluated
    /// before it feeds it, it reads no context.
    Never,
    /// Only the slot-hash feed can have changed it (it reads `SlotHash`, or a field that does):
    /// due when slot hashes arrived since the row was last evaluated.
    OnNewSlotHashes,
    /// It reads the event's slot or timestamp, its own target, or something the handler writes.
    Always,
}

pub(crate) enum KeyPlan {
    Embedded {
        path: Option<EvPath>,
        transform: Option<Transformation>,
    },
    Lookup {
        path: EvPath,
        index: Option<usize>,
    },
    Computed {
        path: EvPath,
    },
    Temporal {
        lookup: EvPath,
        ts: EvPath,
        index: Option<usize>,
    },
    /// A handler made only for instruction hooks: the resolved key, else `lookup_by` (hex-encoded).
    HookOnly {
        lookup_by: Option<EvPath>,
    },
}

pub(crate) enum Step {
    IndexLookup {
        index: usize,
        value: EvPath,
    },
    IndexTemporal {
        index: usize,
        value: EvPath,
        ts: EvPath,
    },
    IndexPda {
        value: EvPath,
    },
    Map(MapOp),
    Resolvers,
    Computed,
}

pub(crate) struct MapOp {
    pub src: Src,
    pub transform: Option<Transformation>,
    pub target: Field,
    pub store: Store,
    pub emit: bool,
    /// Capture field names whose rewrite the reference marks dirty (emit-filtered).
    pub capture_dirty: Vec<Field>,
    /// The next mapping of the handler loads nothing ([`Src::Keep`]) and so reads this one's
    /// value again: the executor must copy the value into the state instead of moving it.
    pub temp_live_after: bool,
}

pub(crate) enum Src {
    Event {
        path: EvPath,
        default: Option<Json>,
        transform: Option<Transformation>,
    },
    Const(Json),
    Capture {
        transforms: Vec<(Path, Transformation)>,
    },
    AsEvent {
        fields: Option<Vec<EventField>>,
    },
    Context(Box<str>),
    /// `Computed`/`FromState` sources load nothing: the previous value stays (reference fact).
    Keep,
}

pub(crate) struct Cond {
    pub field: EvPath,
    pub op: ComparisonOp,
    pub value: Json,
}

pub(crate) enum Store {
    Set,
    SetIfNull,
    Append,
    Max,
    Min,
    Sum,
    Increment,
    UniqueCount {
        set: Field,
    },
    CondSet(Cond),
    CondIncrement(Cond),
    When {
        instruction: EventId,
        cond: Option<Cond>,
    },
    UnlessStopped {
        flag: Field,
    },
}

pub(crate) struct Resolver {
    pub kind: ResolverKind,
    pub input_path: Option<Field>,
    pub input_value: Option<Json>,
    pub template: Option<Vec<TemplatePart>>,
    /// Room for a URL built from `template`: its literal parts and a key per field.
    pub template_room: usize,
    pub strategy: ResolveStrategy,
    /// The extracts as every request carries them (shared, not copied per request).
    pub extracts: std::sync::Arc<[super::ResolverExtract]>,
    /// Each extract's target, resolved against the entity's layout.
    pub targets: Vec<Field>,
    pub condition: Option<(Field, ComparisonOp, Json)>,
    pub schedule_at: Option<Field>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResolverKind {
    /// Token metadata (DAS) for a mint.
    Token,
    /// An HTTP fetch; `extract_path` selects from the response.
    Url {
        method: crate::spec::HttpMethod,
        extract_path: Option<String>,
    },
}

pub(crate) enum TemplatePart {
    Lit(String),
    Field(Field),
}

impl TemplatePart {
    /// The text this part usually adds to a URL (a field: about a base58 key).
    fn room(&self) -> usize {
        match self {
            TemplatePart::Lit(s) => s.len(),
            TemplatePart::Field(_) => 48,
        }
    }
}

fn stop_path(target: &str) -> String {
    format!("__stop:{target}")
}

fn unique_set_path(target: &str) -> String {
    format!("__unique_set:{target}_unique_set")
}

/// Every path the entity's file can write: mapping targets with their stop flags and unique
/// sets, hook targets, computed targets, resolver extract targets ([`Layout`]).
fn layout_of(e: &EntitySpec) -> Layout {
    let mut written: Vec<Path> = Vec::new();
    for m in e.handlers.iter().flat_map(|h| &h.mappings) {
        written.push(Path::dotted(&m.target_path));
        if m.stop.is_some() {
            written.push(Path::dotted(&stop_path(&m.target_path)));
        }
        if m.population == Population::UniqueCount {
            written.push(Path::dotted(&unique_set_path(&m.target_path)));
        }
    }
    for a in e.instruction_hooks.iter().flat_map(|h| &h.actions) {
        match a {
            HookAction::SetField { target_field, .. }
            | HookAction::IncrementField { target_field, .. } => {
                written.push(Path::dotted(target_field))
            }
            HookAction::RegisterPdaMapping { .. } => {}
        }
    }
    for c in &e.computed_field_specs {
        written.push(Path::dotted(&c.target_path));
    }
    for x in e.resolver_specs.iter().flat_map(|r| &r.extracts) {
        written.push(Path::dotted(&x.target_path));
    }
    Layout::new(&written)
}

fn last_seg(dotted: &str) -> &str {
    dotted.rsplit('.').next().unwrap_or(dotted)
}

/// An event path from the file (located in the record by [`Program::locate_event_paths`]).
fn fp(p: &FieldPath) -> EvPath {
    EvPath::new(Path::from_segments(&p.segments))
}

fn snake_to_lower_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = false;
    for ch in s.chars() {
        if ch == '_' {
            up = true;
        } else if up {
            out.extend(ch.to_uppercase());
            up = false;
        } else {
            out.push(ch);
        }
    }
    out
}

struct Interner<'a> {
    ids: &'a mut HashMap<String, EventId>,
    names: &'a mut Vec<String>,
    events: &'a mut Vec<EventInfo>,
}

impl Interner<'_> {
    fn id(&mut self, name: &str) -> EventId {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        let i = self.names.len();
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), i);
        self.events.push(EventInfo {
            is_tx: name.ends_with("IxState") || name.ends_with("CpiEvent"),
            ..Default::default()
        });
        i
    }
}

pub(crate) fn compile(spec: &StackSpec) -> Result<Program, SpecError> {
    let mut event_ids = HashMap::new();
    let mut event_names = Vec::new();
    let mut events = Vec::new();
    let mut entities = Vec::with_capacity(spec.entities.len());
    for (ei, e) in spec.entities.iter().enumerate() {
        let mut int = Interner {
            ids: &mut event_ids,
            names: &mut event_names,
            events: &mut events,
        };
        let ep = compile_entity(e, ei, &mut int)?;
        entities.push(ep);
    }
    // Routing in file order; hooks: the first entity's resolver hook per account type wins; the
    // PDA-mapping hook actions of every entity run.
    for (ei, ep) in entities.iter().enumerate() {
        for (hi, h) in ep.handlers.iter().enumerate() {
            events[h.event].routes.push((ei, hi));
        }
    }
    for e in &spec.entities {
        for h in &e.resolver_hooks {
            let mut int = Interner {
                ids: &mut event_ids,
                names: &mut event_names,
                events: &mut events,
            };
            let id = int.id(&h.account_type);
            if events[id].resolver_hook.is_none() {
                events[id].resolver_hook = Some(match &h.strategy {
                    ResolverStrategy::PdaReverseLookup { .. } => KeyHook::PdaReverseLookup,
                    ResolverStrategy::DirectField { field_path } => {
                        KeyHook::DirectField(fp(field_path))
                    }
                });
            }
        }
        for h in &e.instruction_hooks {
            let mut int = Interner {
                ids: &mut event_ids,
                names: &mut event_names,
                events: &mut events,
            };
            let id = int.id(&h.instruction_type);
            for a in &h.actions {
                if let HookAction::RegisterPdaMapping {
                    pda_field,
                    seed_field,
                    ..
                } = a
                {
                    let names = |p: &FieldPath| {
                        let raw = p.segments.last().cloned().unwrap_or_default();
                        vec![
                            Box::from(snake_to_lower_camel(&raw).as_str()),
                            Box::from(raw.as_str()),
                        ]
                    };
                    events[id]
                        .pda_mappings
                        .push((names(pda_field), names(seed_field)));
                }
            }
        }
    }
    let maps_pdas = events.iter().any(|i| !i.pda_mappings.is_empty());
    Ok(Program {
        event_names,
        event_ids,
        events,
        entities,
        maps_pdas,
    })
}

impl Program {
    /// Locates every event path of every handler in the records of its event type (see
    /// [`EvPath`]), so that handlers read fields by index. Event types no IDL declares keep their
    /// paths as they are (their events arrive as JSON).
    /// `shapes` are the IDL event types' record shapes, by IDL event type id.
    pub(crate) fn locate_event_paths(
        &mut self,
        idls: &crate::idl::IdlSet,
        shapes: &[std::sync::Arc<super::Shape>],
    ) {
        let types: Vec<Option<u32>> = self
            .event_names
            .iter()
            .map(|n| idls.event_type_id(n))
            .collect();
        let shape = |e: EventId| {
            let t = types[e]?;
            Some((t, shapes.get(t as usize)?))
        };
        for ep in &mut self.entities {
            for h in &mut ep.handlers {
                if let Some((t, s)) = shape(h.event) {
                    for p in h.event_paths_mut() {
                        p.locate(t, s);
                    }
                }
            }
        }
        for (e, info) in self.events.iter_mut().enumerate() {
            if let (Some(KeyHook::DirectField(p)), Some((t, s))) =
                (&mut info.resolver_hook, shape(e))
            {
                p.locate(t, s);
            }
        }
    }
}

impl Handler {
    fn event_paths_mut(&mut self) -> Vec<&mut EvPath> {
        let mut out: Vec<&mut EvPath> = Vec::new();
        match &mut self.key {
            KeyPlan::Embedded { path, .. } => out.extend(path.as_mut()),
            KeyPlan::Lookup { path, .. } | KeyPlan::Computed { path } => out.push(path),
            KeyPlan::Temporal { lookup, ts, .. } => out.extend([lookup, ts]),
            KeyPlan::HookOnly { lookup_by } => out.extend(lookup_by.as_mut()),
        }
        for step in &mut self.steps {
            match step {
                Step::IndexLookup { value, .. } | Step::IndexPda { value } => out.push(value),
                Step::IndexTemporal { value, ts, .. } => out.extend([value, ts]),
                Step::Map(op) => {
                    match &mut op.src {
                        Src::Event { path, .. } => out.push(path),
                        Src::AsEvent { fields: Some(fs) } => {
                            out.extend(fs.iter_mut().map(|(_, p, _, _)| p))
                        }
                        _ => {}
                    }
                    match &mut op.store {
                        Store::CondSet(c) | Store::CondIncrement(c) => out.push(&mut c.field),
                        Store::When { cond: Some(c), .. } => out.push(&mut c.field),
                        _ => {}
                    }
                }
                Step::Resolvers | Step::Computed => {}
            }
        }
        out
    }
}

fn lookup_index_for_field(e: &EntitySpec, path: &FieldPath) -> Option<String> {
    let leaf = path.segments.last()?;
    for li in &e.identity.lookup_indexes {
        let name = last_seg(&li.field_name);
        if name == leaf || name.strip_suffix("_address") == Some(leaf.as_str()) {
            return Some(format!("{name}_lookup_index"));
        }
    }
    None
}

fn lookup_index_for_lookup_field(
    e: &EntitySpec,
    path: &FieldPath,
    maps: &[crate::spec::FieldMapping],
) -> Option<String> {
    let joined = path.segments.join(".");
    for m in maps {
        if let MappingSource::FromSource { path: src, .. } = &m.source {
            if src.segments.join(".") == joined {
                for li in &e.identity.lookup_indexes {
                    if m.target_path == li.field_name {
                        return Some(format!("{}_lookup_index", last_seg(&li.field_name)));
                    }
                }
            }
        }
    }
    lookup_index_for_field(e, path)
}

fn key_transform(e: &EntitySpec, maps: &[crate::spec::FieldMapping]) -> Option<Transformation> {
    let pk = e.identity.primary_keys.first()?;
    let leaf = last_seg(pk).to_string();
    let targets_pk = |t: &str| t == pk || t.ends_with(&format!(".{pk}"));
    for m in maps {
        if targets_pk(&m.target_path) {
            if let Some(t) = m.transform {
                return Some(t);
            }
            if let MappingSource::FromSource {
                transform: Some(t), ..
            } = &m.source
            {
                return Some(*t);
            }
        }
    }
    for m in maps {
        if let MappingSource::AsCapture { field_transforms } = &m.source {
            if let Some(t) = field_transforms.get(&leaf) {
                return Some(*t);
            }
        }
    }
    for h in &e.handlers {
        for m in &h.mappings {
            if targets_pk(&m.target_path) {
                if let MappingSource::FromSource {
                    path, transform, ..
                } = &m.source
                {
                    if path.segments.last() == Some(&leaf) {
                        return m.transform.or(*transform);
                    }
                }
            }
            if let MappingSource::AsCapture { field_transforms } = &m.source {
                if let Some(t) = field_transforms.get(&leaf) {
                    return Some(*t);
                }
            }
        }
    }
    None
}

fn cond_of(c: &Option<crate::spec::ConditionExpr>) -> Option<Cond> {
    match c.as_ref()?.parsed.as_ref()? {
        ParsedCondition::Comparison { field, op, value } => Some(Cond {
            field: fp(field),
            op: *op,
            value: value.clone(),
        }),
        // The reference does not evaluate logical conditions on mappings: they apply unconditionally.
        ParsedCondition::Logical { .. } => None,
    }
}

fn compile_entity(
    e: &EntitySpec,
    ei: usize,
    int: &mut Interner,
) -> Result<EntityProgram, SpecError> {
    let base = format!("$.entities[{ei}]");
    let layout = layout_of(e);
    // Emit flags: a path is emitted if any mapping to it is; stop flags never are.
    let mut emit_by_path: HashMap<String, bool> = HashMap::new();
    for h in &e.handlers {
        for m in &h.mappings {
            *emit_by_path.entry(m.target_path.clone()).or_insert(false) |= m.emit;
            if m.stop.is_some() {
                emit_by_path
                    .entry(stop_path(&m.target_path))
                    .or_insert(false);
            }
        }
    }
    let hidden: HashSet<String> = emit_by_path
        .into_iter()
        .filter(|(_, v)| !v)
        .map(|(k, _)| k)
        .collect();
    let emits = |p: &str| !hidden.contains(p);

    let mut index_names: Vec<String> = Vec::new();
    let mut temporal_names: Vec<String> = Vec::new();
    let index_id = |names: &mut Vec<String>, n: String| -> usize {
        match names.iter().position(|x| *x == n) {
            Some(i) => i,
            None => {
                names.push(n);
                names.len() - 1
            }
        }
    };
    // Declared indexes first, so lookups scan them in declaration order.
    for li in &e.identity.lookup_indexes {
        index_id(
            &mut index_names,
            format!("{}_lookup_index", last_seg(&li.field_name)),
        );
    }

    let mut handlers: Vec<Handler> = Vec::new();
    let mut by_event: HashMap<EventId, usize> = HashMap::new();
    for (hi, h) in e.handlers.iter().enumerate() {
        let hbase = format!("{base}.handlers[{hi}]");
        let ev = int.id(h.source.type_name());
        let is_account = h.source.is_account();
        let key = match &h.key_resolution {
            KeyResolution::Embedded { primary_field } => KeyPlan::Embedded {
                path: (!primary_field.segments.is_empty()).then(|| fp(primary_field)),
                transform: key_transform(e, &h.mappings),
            },
            KeyResolution::Lookup { primary_field } => {
                let name = lookup_index_for_lookup_field(e, primary_field, &h.mappings)
                    .unwrap_or_else(|| "default_pda_lookup".to_string());
                let index = index_names.iter().position(|n| *n == name);
                KeyPlan::Lookup {
                    path: fp(primary_field),
                    index,
                }
            }
            KeyResolution::Computed { primary_field, .. } => KeyPlan::Computed {
                path: fp(primary_field),
            },
            KeyResolution::TemporalLookup {
                lookup_field,
                timestamp_field,
                index_name,
            } => {
                let index = Some(index_id(&mut temporal_names, index_name.clone()));
                KeyPlan::Temporal {
                    lookup: fp(lookup_field),
                    ts: fp(timestamp_field),
                    index,
                }
            }
        };
        let mut steps = Vec::new();
        for li in &e.identity.lookup_indexes {
            let leaf = last_seg(&li.field_name);
            match &h.key_resolution {
                KeyResolution::Embedded { .. } => {
                    let src = h
                        .mappings
                        .iter()
                        .find(|m| m.target_path == li.field_name)
                        .and_then(|m| match &m.source {
                            MappingSource::FromSource { path, .. } => Some(fp(path)),
                            _ => None,
                        });
                    let found = src.is_some();
                    let value = src.unwrap_or_else(|| EvPath::new(Path::dotted(leaf)));
                    let idx = index_id(&mut index_names, format!("{leaf}_lookup_index"));
                    if let Some(tf) = &li.temporal_field {
                        let t = index_id(&mut temporal_names, format!("{leaf}_temporal_index"));
                        steps.push(Step::IndexTemporal {
                            index: t,
                            value: value.clone(),
                            ts: EvPath::new(Path::from_segments(std::slice::from_ref(tf))),
                        });
                    }
                    steps.push(Step::IndexLookup {
                        index: idx,
                        value: value.clone(),
                    });
                    if found {
                        steps.push(Step::IndexPda { value });
                    }
                }
                KeyResolution::Lookup { primary_field }
                    if h.mappings.iter().any(|m| m.target_path == li.field_name) =>
                {
                    let idx = index_id(&mut index_names, format!("{leaf}_lookup_index"));
                    steps.push(Step::IndexLookup {
                        index: idx,
                        value: fp(primary_field),
                    });
                }
                _ => {}
            }
        }
        for (mi, m) in h.mappings.iter().enumerate() {
            let at = format!("{hbase}.mappings[{mi}]");
            steps.push(Step::Map(compile_mapping(m, &layout, &emits, int, &at)?));
        }
        if !e.resolver_specs.is_empty() {
            steps.push(Step::Resolvers);
        }
        steps.push(Step::Computed);
        match by_event.get(&ev) {
            Some(&i) => handlers[i].steps.extend(steps),
            None => {
                by_event.insert(ev, handlers.len());
                handlers.push(Handler {
                    event: ev,
                    is_account,
                    key,
                    steps,
                    emit: h.emit,
                    computed_mask: Vec::new(),
                });
            }
        }
    }
    for (hi, hook) in e.instruction_hooks.iter().enumerate() {
        let ev = int.id(&hook.instruction_type);
        let idx = match by_event.get(&ev) {
            Some(&i) => i,
            None => {
                by_event.insert(ev, handlers.len());
                handlers.push(Handler {
                    event: ev,
                    is_account: false,
                    key: KeyPlan::HookOnly {
                        lookup_by: hook.lookup_by.as_ref().map(fp),
                    },
                    steps: Vec::new(),
                    emit: false,
                    computed_mask: Vec::new(),
                });
                handlers.len() - 1
            }
        };
        let mut ops = Vec::new();
        for (ai, a) in hook.actions.iter().enumerate() {
            let at = format!("{base}.instruction_hooks[{hi}].actions[{ai}]");
            match a {
                HookAction::RegisterPdaMapping { .. } => {} // run around the handler, see `vm`
                HookAction::SetField {
                    target_field,
                    source,
                    condition,
                } => {
                    let src = compile_src(source, &at)?;
                    let transform = match source {
                        // The reference applies a FromSource transform twice for hook SetField.
                        MappingSource::FromSource { transform, .. } => *transform,
                        _ => None,
                    };
                    let store = match cond_of(condition) {
                        Some(c) => Store::CondSet(c),
                        None => Store::Set,
                    };
                    ops.push(Step::Map(MapOp {
                        src,
                        transform,
                        target: layout.dotted(target_field),
                        store,
                        emit: emits(target_field),
                        capture_dirty: Vec::new(),
                        temp_live_after: false,
                    }));
                }
                HookAction::IncrementField {
                    target_field,
                    condition,
                    ..
                } => {
                    let store = match cond_of(condition) {
                        Some(c) => Store::CondIncrement(c),
                        None => Store::Increment,
                    };
                    ops.push(Step::Map(MapOp {
                        src: Src::Keep,
                        transform: None,
                        target: layout.dotted(target_field),
                        store,
                        emit: emits(target_field),
                        capture_dirty: Vec::new(),
                        temp_live_after: false,
                    }));
                }
            }
        }
        let steps = &mut handlers[idx].steps;
        let pos = steps
            .iter()
            .position(|s| matches!(s, Step::Computed))
            .unwrap_or(steps.len());
        for (i, op) in ops.into_iter().enumerate() {
            steps.insert(pos + i, op);
        }
    }
    let computed = compile_fields(
        &e.computed_field_specs,
        &layout,
        &format!("{base}.computed_field_specs"),
    )?;
    let computed_paths: Vec<(Field, bool)> = e
        .computed_fields
        .iter()
        .map(|p| (layout.dotted(p), emits(p)))
        .collect();
    let computed_slot: Vec<Option<usize>> = computed
        .iter()
        .map(|c| {
            computed_paths
                .iter()
                .position(|(p, _)| p.path.dotted == c.target.path.dotted)
        })
        .collect();
    let computed_in_place = computed.iter().enumerate().all(|(i, c)| {
        let t = &c.target.path;
        computed[..i].iter().all(|o| !o.target.path.overlaps(t))
            && computed_paths
                .iter()
                .all(|(p, _)| p.path.dotted == t.dotted || !p.path.overlaps(t))
    });
    let computed_inputs = computed
        .iter()
        .map(|c| {
            let self_fed = c.reads.iter().any(|p| p.overlaps(&c.target.path));
            if c.reads_context || self_fed {
                return None;
            }
            let mut slots: Vec<u32> = Vec::new();
            for p in &c.reads {
                match layout.field(p.clone()).at {
                    At::Slot { slot, .. } => slots.push(slot),
                    At::Interior(under) => slots.extend(under.iter().map(|(s, _)| *s)),
                    At::Absent => {}
                }
            }
            slots.sort_unstable();
            slots.dedup();
            Some(slots.into_boxed_slice())
        })
        .collect();
    for h in &mut handlers {
        h.computed_mask = computed_mask(&h.steps, &computed);
        let mut next_keeps = false;
        for step in h.steps.iter_mut().rev() {
            if let Step::Map(op) = step {
                op.temp_live_after = next_keeps;
                next_keeps = matches!(op.src, Src::Keep);
            }
        }
    }
    let resolvers = e
        .resolver_specs
        .iter()
        .enumerate()
        .map(|(i, r)| compile_resolver(r, &layout, &emits, &format!("{base}.resolver_specs[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(EntityProgram {
        name: e.state_name.as_str().into(),
        index_names,
        temporal_names,
        handlers,
        handler_by_event: by_event,
        layout,
        computed,
        computed_paths,
        computed_slot,
        computed_in_place,
        computed_inputs,
        resolvers,
    })
}

/// Which computed fields a handler with these steps must evaluate on an existing row
/// ([`Handler::computed_mask`]).
fn computed_mask(steps: &[Step], computed: &[Computed]) -> Vec<Due> {
    let mut written: Vec<&Path> = Vec::new();
    for s in steps {
        if let Step::Map(op) = s {
            written.push(&op.target.path);
            match &op.store {
                Store::UniqueCount { set } => written.push(&set.path),
                Store::UnlessStopped { flag } => written.push(&flag.path),
                _ => {}
            }
        }
    }
    let mut mask: Vec<Due> = Vec::with_capacity(computed.len());
    for (i, c) in computed.iter().enumerate() {
        // How soon what is at `p` can change: written by the handler, or by an earlier field.
        let fed = |p: &Path| {
            if written.iter().any(|w| w.overlaps(p)) {
                return Due::Always;
            }
            computed[..i]
                .iter()
                .zip(&mask)
                .filter(|(o, _)| o.target.path.overlaps(p))
                .map(|(_, &d)| d)
                .max()
                .unwrap_or(Due::Never)
        };
        let self_fed = c.reads.iter().any(|p| p.overlaps(&c.target.path));
        let own = if c.reads_context || self_fed {
            Due::Always
        } else if c.reads_slot_hashes {
            Due::OnNewSlotHashes
        } else {
            Due::Never
        };
        mask.push(c.reads.iter().map(fed).fold(own, Due::max));
    }
    mask
}

fn compile_src(s: &MappingSource, at: &str) -> Result<Src, SpecError> {
    Ok(match s {
        MappingSource::FromSource {
            path,
            default,
            transform,
        } => Src::Event {
            path: fp(path),
            default: default.clone(),
            transform: *transform,
        },
        MappingSource::Constant(v) => Src::Const(v.clone()),
        MappingSource::AsCapture { field_transforms } => Src::Capture {
            transforms: field_transforms
                .iter()
                .map(|(k, t)| (Path::dotted(k), *t))
                .collect(),
        },
        MappingSource::AsEvent { fields } => {
            if fields.is_empty() {
                Src::AsEvent { fields: None }
            } else {
                let mut out = Vec::new();
                for f in fields {
                    if let MappingSource::FromSource {
                        path,
                        default,
                        transform,
                    } = f
                    {
                        if let Some(name) = path.segments.last() {
                            out.push((
                                Box::from(name.as_str()),
                                fp(path),
                                default.clone(),
                                *transform,
                            ));
                        }
                    } else {
                        return Err(SpecError::new(at, "AsEvent fields must be FromSource"));
                    }
                }
                Src::AsEvent { fields: Some(out) }
            }
        }
        MappingSource::WholeSource => Src::Event {
            path: EvPath::new(Path::from_segments(&[])),
            default: Some(Json::Object(Default::default())),
            transform: None,
        },
        MappingSource::FromContext { field } => Src::Context(field.as_str().into()),
        MappingSource::Computed { .. } | MappingSource::FromState { .. } => Src::Keep,
    })
}

fn compile_mapping(
    m: &crate::spec::FieldMapping,
    layout: &Layout,
    emits: &dyn Fn(&str) -> bool,
    int: &mut Interner,
    at: &str,
) -> Result<MapOp, SpecError> {
    let src = compile_src(&m.source, &format!("{at}.source"))?;
    let capture_dirty = match &m.source {
        MappingSource::AsCapture { field_transforms } => field_transforms
            .keys()
            .filter(|k| emits(k))
            .map(|k| layout.dotted(k))
            .collect(),
        _ => Vec::new(),
    };
    let target = layout.dotted(&m.target_path);
    let store = if m.stop.is_some() {
        Store::UnlessStopped {
            flag: layout.dotted(&stop_path(&m.target_path)),
        }
    } else if let Some(w) = &m.when {
        Store::When {
            instruction: int.id(w),
            cond: cond_of(&m.condition),
        }
    } else {
        let cond = cond_of(&m.condition);
        match (m.population, cond) {
            (Population::LastWrite | Population::Merge, Some(c)) => Store::CondSet(c),
            (Population::Count, Some(c)) => Store::CondIncrement(c),
            (p, _) => match p {
                Population::LastWrite | Population::Merge => Store::Set,
                Population::SetOnce => Store::SetIfNull,
                Population::Append => Store::Append,
                Population::Max => Store::Max,
                Population::Min => Store::Min,
                Population::Sum => Store::Sum,
                Population::Count => Store::Increment,
                Population::UniqueCount => Store::UniqueCount {
                    set: layout.dotted(&unique_set_path(&m.target_path)),
                },
            },
        }
    };
    if let Store::When { instruction, .. } = &store {
        int.events[*instruction].is_when = true;
    }
    Ok(MapOp {
        src,
        transform: m.transform,
        target,
        store,
        emit: emits(&m.target_path),
        capture_dirty,
        temp_live_after: false,
    })
}

fn compile_resolver(
    r: &ResolverSpec,
    layout: &Layout,
    emits: &dyn Fn(&str) -> bool,
    at: &str,
) -> Result<Resolver, SpecError> {
    let (kind, template) = match &r.resolver {
        crate::spec::ResolverType::Token => (ResolverKind::Token, None),
        crate::spec::ResolverType::Url(cfg) => {
            let template = match &cfg.url_source {
                UrlSource::Template(parts) => Some(
                    parts
                        .iter()
                        .map(|p| match p {
                            UrlTemplatePart::Literal(s) => TemplatePart::Lit(s.clone()),
                            UrlTemplatePart::FieldRef(f) => TemplatePart::Field(layout.dotted(f)),
                        })
                        .collect(),
                ),
                UrlSource::FieldPath(_) => None,
            };
            (
                ResolverKind::Url {
                    method: cfg.method,
                    extract_path: cfg.extract_path.clone(),
                },
                template,
            )
        }
    };
    let input_path = match (&r.resolver, &r.input_path) {
        (crate::spec::ResolverType::Url(cfg), None) => match &cfg.url_source {
            UrlSource::FieldPath(p) => Some(layout.dotted(p)),
            _ => None,
        },
        (_, p) => p.as_deref().map(|p| layout.dotted(p)),
    };
    if template.is_none() && input_path.is_none() && r.input_value.is_none() {
        return Err(SpecError::new(
            at,
            "resolver has no input (input_path, input_value or URL template)",
        ));
    }
    let extracts = (r.extracts.iter())
        .map(|x| super::ResolverExtract {
            target: x.target_path.clone(),
            source: x.source_path.clone(),
            transform: x.transform,
            emit: emits(&x.target_path),
        })
        .collect();
    let targets = (r.extracts.iter())
        .map(|x| layout.dotted(&x.target_path))
        .collect();
    Ok(Resolver {
        kind,
        input_path,
        input_value: r.input_value.clone(),
        template_room: template.iter().flatten().map(TemplatePart::room).sum(),
        template,
        strategy: r.strategy,
        extracts,
        targets,
        condition: r
            .condition
            .as_ref()
            .map(|c| (layout.dotted(&c.field_path), c.op, c.value.clone())),
        schedule_at: r.schedule_at.as_deref().map(|p| layout.dotted(p)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mapping of the ORE stack that reads a field of its event's record reads it by
    /// index: none is left to a search by name per event.
    #[test]
    fn ore_mappings_read_record_fields_by_index() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/stacks/OreStream.stack.json"
        ))
        .unwrap();
        let stack = crate::Stack::from_json(&bytes).unwrap();
        let (mut located, mut by_name) = (0, Vec::new());
        for ep in &stack.program().entities {
            for h in &ep.handlers {
                for step in &h.steps {
                    if let Step::Map(MapOp {
                        src: Src::Event { path, .. },
                        ..
                    }) = step
                    {
                        let field = match path.segs.first().map(|s| &**s) {
                            Some("data") => path.segs.len() > 1,
                            Some(s) => !s.starts_with("__") && s != "accounts",
                            None => false,
                        };
                        match (field, path.is_located()) {
                            (true, true) => located += 1,
                            (true, false) => by_name.push(path.dotted.to_string()),
                            _ => {}
                        }
                    }
                }
            }
        }
        assert!(by_name.is_empty(), "read by name: {by_name:?}");
        assert!(located > 30, "{located}");
    }
}
