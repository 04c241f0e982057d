//! IDL layouts: decode account and instruction bytes into event records, and encode them back.
//!
//! A stack file embeds the IDLs of the programs it reads (`idls[]`). [`IdlSet::from_json`] compiles
//! them once, at load time:
//!
//! - every type expression becomes a node of one type graph; `{"defined": "X"}` is resolved to the
//!   node index of `X`, so decoding never looks a name up;
//! - every account type and instruction becomes an [`EventType`] with a dense id (`u32`), named as
//!   the reference names its events: `"ore::RoundState"`, `"ore::DeployIxState"`;
//! - discriminators come from the items' `discriminator` arrays (their length is the size: ORE
//!   accounts use 8 bytes, ORE instructions 1), else from a Steel `discriminant` object
//!   (`discriminant_size` bytes, default 1), else Anchor's `sha256("account:<Name>")[..8]` /
//!   `sha256("global:<name>")[..8]`;
//! - accounts whose `serialization` (on the account or on the type of the same name) is `bytemuck`
//!   or `bytemuckunsafe` get a fixed `repr(C)` layout: field offsets with alignment padding (u128
//!   16-aligned as on the host that the reference decodes with; `repr.packed` types unaligned).
//!   Everything else, instructions included, is Borsh. For ORE (no explicit serialization, all
//!   fields 8-aligned) both layouts give the same bytes: Round is 8 + 560 bytes.
//!
//! Decoding ([`IdlSet::decode`]) fills a reusable [`Decoded`] record: one [`Value`] per top-level
//! field (snake_case names, as the reference's JSON has them), the instruction's accounts in IDL
//! order, the account address. Values map as: u8..u64 → `U64`, i8..i64 → `I64`, u128/i128 →
//! `U128`/`I128`, f32/f64 → `F64`, bool, pubkey → `Pubkey`, string → `Str`, `bytes`, `vec<u8>`
//! and `[u8; N]` → `Bytes`, other arrays and vecs → `Array`, option → `Null` or the value,
//! structs → `Object` in declaration order, tuple structs → `Array`, maps → `Object` with the keys
//! rendered as strings. Enums follow serde's external tagging, which is what the reference renders
//! for its (unit-only) enums: a unit variant is its name (`Str`); a variant with named fields is
//! `{"Variant": {fields}}`, a one-field tuple variant `{"Variant": value}`, a longer tuple variant
//! `{"Variant": [values]}`.
//!
//! Strictness: unknown discriminator, short data, trailing data, bad UTF-8 and bad option / enum /
//! bool tags are typed [`DecodeError`]s; the caller counts them and skips the event. One
//! exception: a Borsh *account* whose layout has variable-length parts may carry trailing bytes,
//! because Anchor allocates such accounts at their maximum size. (The reference's generated
//! parsers are laxer: they ignore trailing bytes everywhere and zero-pad short instruction data.
//! Valid chain data decodes the same either way.)

mod codec;
mod compile;
mod json;

use std::sync::Arc;

use crate::event::{Pubkey, Update};
use crate::spec::SpecError;
use crate::value::Value;

pub(crate) use codec::map_key_string;
use codec::Reader;
use compile::Node;
pub(crate) use compile::{Node as IdlNode, VariantKind as IdlVariantKind};

/// Every IDL of a stack, compiled. Immutable after load; share it between workers.
#[derive(Clone)]
pub struct IdlSet {
    nodes: Vec<Node>,
    /// Fixed layout per node, computed for the nodes that Pod accounts use.
    pods: Vec<Option<compile::Pod>>,
    /// Smallest Borsh size per node; bounds length prefixes before anything is allocated.
    min_sizes: Vec<u32>,
    programs: Vec<Program>,
    /// Per event type id.
    items: Vec<Item>,
    /// Per event type id: the body size (without discriminator) when it never varies.
    fixed_sizes: Vec<Option<usize>>,
    event_types: Vec<EventType>,
}

#[derive(Clone)]
struct Program {
    #[allow(dead_code)]
    name: Arc<str>,
    id: Pubkey,
    /// The discriminators of the account types.
    account_discs: Vec<Disc>,
    /// The discriminators of the instructions.
    ix_discs: Vec<Disc>,
}

/// A discriminator (1 to 8 bytes; none of a program's is a prefix of another) and its event
/// type, held as an integer so that matching one is a mask and a compare.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Disc {
    /// The bytes, little-endian, zero above `len`.
    head: u64,
    /// Ones over the first `len` bytes.
    mask: u64,
    len: u8,
    pub et: u32,
}

impl Disc {
    /// `bytes` must be 1 to 8 long.
    pub(crate) fn new(bytes: &[u8], et: u32) -> Disc {
        debug_assert!((1..=8).contains(&bytes.len()));
        let mask = if bytes.len() == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * bytes.len())) - 1
        };
        Disc {
            head: head_of(bytes),
            mask,
            len: bytes.len() as u8,
            et,
        }
    }

    /// The first `n` bytes of the two agree (`n`: the shorter length).
    pub(crate) fn overlaps(&self, other: &Disc) -> bool {
        let mask = self.mask & other.mask;
        self.head & mask == other.head & mask
    }

    /// Whether `data` starts with this discriminator (`head`: [`head_of`] `data`).
    fn starts(&self, data: &[u8], head: u64) -> bool {
        head & self.mask == self.head && data.len() >= self.len as usize
    }

    /// The order a program's discriminators are kept in: by length, then by bytes.
    pub(crate) fn sort_key(&self) -> (u64, u64) {
        (self.mask, self.head)
    }
}

/// The first 8 bytes of `b`, little-endian, zero-padded.
fn head_of(b: &[u8]) -> u64 {
    if let Some(head) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*head);
    }
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(a)
}

#[derive(Clone)]
struct Item {
    #[allow(dead_code)]
    program: u32,
    disc: Vec<u8>,
    /// A `Node::Struct` whose fields are the record's fields.
    root: u32,
    pod: bool,
    accounts: Vec<ItemAccount>,
    /// Accounts up to and including the last non-optional one.
    required_accounts: usize,
    /// JSON path of the item in the stack file, for load-time errors.
    path: String,
}

#[derive(Clone)]
struct ItemAccount {
    name: Arc<str>,
    /// A fixed address the IDL states (system program, sysvars, …).
    address: Option<Pubkey>,
}

/// One event type a stack can receive: an account type or an instruction of one of its programs.
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    /// `"ore::RoundState"` for accounts, `"ore::DeployIxState"` (PascalCase name + `IxState`) for
    /// instructions.
    pub name: Arc<str>,
    /// The IDL's name, e.g. `"ore"`.
    pub program: Arc<str>,
    pub program_id: Pubkey,
    pub is_account: bool,
    /// Top-level fields (accounts) or args (instructions), in IDL order, snake_case as the
    /// reference's JSON names them.
    pub field_names: Vec<Arc<str>>,
    /// Instruction accounts in IDL order, named as in the IDL; empty for account types.
    pub account_names: Vec<Arc<str>>,
}

/// A decoded event record, reused across events: decoding overwrites it in place and keeps its
/// buffers. After an error its contents are unspecified.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    pub event_type: u32,
    /// One value per [`EventType::field_names`] entry.
    pub fields: Vec<Value>,
    /// Instruction accounts, one per [`EventType::account_names`] entry; shorter when trailing
    /// optional accounts are absent. Empty for account updates.
    pub accounts: Vec<Pubkey>,
    /// The account address (`__account_address`); `None` for instructions.
    pub address: Option<Pubkey>,
}

/// Bytes built from an event record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Account data or instruction data, discriminator included.
    pub data: Vec<u8>,
    /// Instruction accounts in IDL order; empty for accounts.
    pub accounts: Vec<Pubkey>,
}

/// Which tag byte(s) held a value the type does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// An option tag other than 0 or 1.
    Option,
    /// An enum variant index past the last variant.
    Enum,
    /// A bool byte other than 0 or 1.
    Bool,
}

/// Why an update could not be decoded. For every variant the caller reacts the same way: count it
/// (per variant, for metrics), skip the event, carry on. None of them is fatal for the stack.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not an account or instruction update (a slot tick). Skip it; nothing to decode.
    #[error("not an account or instruction update")]
    NotAnEvent,
    /// The update's program is none of the stack's IDLs (the upstream filter let it through).
    /// Counted, the event skipped.
    #[error("unknown program {}", bs58::encode(.program_id).into_string())]
    UnknownProgram { program_id: Pubkey },
    /// No account type / instruction of the program starts with these bytes. Counted, the event
    /// skipped.
    #[error("unknown {} discriminator for program {program} (data starts {head:?})", if *.is_account { "account" } else { "instruction" })]
    UnknownDiscriminator {
        program: Arc<str>,
        is_account: bool,
        /// Up to the first 8 bytes of the data.
        head: Vec<u8>,
    },
    /// The data ends before the layout does. Counted, the event skipped.
    #[error("event type {event_type}: data too short: {needed} more bytes needed at offset {offset}, data has {len}")]
    ShortData {
        event_type: u32,
        offset: usize,
        needed: usize,
        len: usize,
    },
    /// Bytes left after the layout ends. Counted, the event skipped.
    #[error("event type {event_type}: {} trailing bytes after offset {consumed}", .len - .consumed)]
    TrailingData {
        event_type: u32,
        consumed: usize,
        len: usize,
    },
    /// A string field is not UTF-8. Counted, the event skipped.
    #[error("event type {event_type}: invalid UTF-8 in the string at offset {offset}")]
    InvalidUtf8 { event_type: u32, offset: usize },
    /// An option, enum or bool byte outside its range. Counted, the event skipped.
    #[error("event type {event_type}: invalid {kind:?} tag {tag} at offset {offset}")]
    InvalidTag {
        event_type: u32,
        offset: usize,
        tag: u32,
        kind: TagKind,
    },
    /// A length prefix announcing more zero-sized elements than allowed (65,536). Counted, the
    /// event skipped.
    #[error("event type {event_type}: {len} elements announced at offset {offset}")]
    TooManyElements {
        event_type: u32,
        offset: usize,
        len: u64,
    },
    /// Nesting deeper than 64 levels (a recursive type fed hostile data). Counted, the event skipped.
    #[error("event type {event_type}: nesting too deep at offset {offset}")]
    TooDeep { event_type: u32, offset: usize },
    /// The instruction lists fewer accounts than its IDL requires. Counted, the event skipped.
    #[error("event type {event_type}: {got} accounts, the IDL requires {expected}")]
    MissingAccounts {
        event_type: u32,
        expected: usize,
        got: usize,
    },
    /// [`IdlSet::decoded_from_json`]: no such event type id. A caller bug; skip the event.
    #[error("unknown event type id {event_type}")]
    UnknownEventType { event_type: u32 },
    /// [`IdlSet::decoded_from_json`]: the JSON does not have the IDL's shape. Skip the event.
    #[error("event type {event_type}: {path}: expected {expected}")]
    Json {
        event_type: u32,
        path: String,
        expected: &'static str,
    },
}

/// Why an event could not be encoded (tests and the synthetic chain build bytes with it). The
/// input is wrong; fix the caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// No such event type id.
    #[error("unknown event type id {0}")]
    UnknownEventType(u32),
    /// The JSON does not have the IDL's shape.
    #[error("{path}: expected {expected}")]
    Json {
        path: String,
        expected: &'static str,
    },
    /// A value does not have the IDL type's shape.
    #[error("expected {expected}")]
    Shape { expected: &'static str },
    /// A struct value lacks a field of the IDL.
    #[error("missing field `{name}`")]
    MissingField { name: Arc<str> },
    /// An integer outside its type's range, or a length past u32.
    #[error("value out of range for its type")]
    OutOfRange,
    /// Nesting deeper than 64 levels.
    #[error("nesting too deep")]
    TooDeep,
}

impl IdlSet {
    /// `idls` is the stack file's `idls` array. Errors carry JSON paths like
    /// `$.idls[0].types[3].type`.
    pub fn from_json(idls: &serde_json::Value) -> Result<IdlSet, SpecError> {
        compile::compile(idls)
    }

    /// All event types, indexed by their id.
    pub fn event_types(&self) -> &[EventType] {
        &self.event_types
    }

    /// The id of `"ore::RoundState"` etc. (Load-time use: a linear search.)
    pub fn event_type_id(&self, name: &str) -> Option<u32> {
        self.event_types
            .iter()
            .position(|e| &*e.name == name)
            .map(|i| i as u32)
    }

    /// The programs of the IDLs, in file order: the upstream filter.
    pub fn program_ids(&self) -> Vec<Pubkey> {
        self.programs.iter().map(|p| p.id).collect()
    }

    /// The discriminator that starts the event type's data.
    pub fn discriminator(&self, event_type: u32) -> Option<&[u8]> {
        self.items.get(event_type as usize).map(|i| &*i.disc)
    }

    /// The data size (discriminator included) when the layout is fixed: Pod accounts, and Borsh
    /// items without variable-length parts.
    pub fn fixed_size(&self, event_type: u32) -> Option<usize> {
        let i = event_type as usize;
        Some(self.items.get(i)?.disc.len() + self.fixed_sizes[i]?)
    }

    /// The address an instruction account must have per the IDL (system program, sysvars, …).
    pub fn fixed_account_address(&self, event_type: u32, account: usize) -> Option<Pubkey> {
        self.items
            .get(event_type as usize)?
            .accounts
            .get(account)?
            .address
    }

    /// The compiled node graph (for the synthetic chain).
    pub(crate) fn node(&self, n: u32) -> &Node {
        &self.nodes[n as usize]
    }

    /// The top-level fields of an event type, with their type nodes.
    pub(crate) fn fields_of(&self, event_type: u32) -> &[compile::Field] {
        match &self.nodes[self.items[event_type as usize].root as usize] {
            Node::Struct { fields, .. } => fields,
            _ => unreachable!("roots are structs"),
        }
    }

    fn program(&self, id: &Pubkey) -> Result<&Program, DecodeError> {
        self.programs
            .iter()
            .find(|p| p.id == *id)
            .ok_or(DecodeError::UnknownProgram { program_id: *id })
    }

    fn match_disc(
        table: &[Disc],
        prog: &Program,
        is_account: bool,
        data: &[u8],
    ) -> Result<u32, DecodeError> {
        let head = head_of(data);
        // Sorted by length, then bytes: when all have one length, the match is found by halves.
        let found = match (table.first(), table.last()) {
            (Some(a), Some(b)) if a.mask == b.mask => table
                .binary_search_by_key(&(head & a.mask), |d| d.head)
                .ok()
                .map(|i| &table[i])
                .filter(|d| d.starts(data, head)),
            _ => table.iter().find(|d| d.starts(data, head)),
        };
        found
            .map(|d| d.et)
            .ok_or_else(|| DecodeError::UnknownDiscriminator {
                program: prog.name.clone(),
                is_account,
                head: data[..data.len().min(8)].to_vec(),
            })
    }

    /// The event type of an update, by its program and discriminator alone (no decoding).
    pub fn event_type_of(&self, update: &Update) -> Result<u32, DecodeError> {
        match update {
            Update::Account(a) => {
                let prog = self.program(&a.owner)?;
                Self::match_disc(&prog.account_discs, prog, true, &a.data)
            }
            Update::Instruction(ix) => {
                let prog = self.program(&ix.program_id)?;
                Self::match_disc(&prog.ix_discs, prog, false, &ix.data)
            }
            Update::Slot { .. } => Err(DecodeError::NotAnEvent),
        }
    }

    /// Decodes an Account or Instruction update into `out`, reusing its buffers: for layouts
    /// without strings, maps or payload enums nothing is allocated once `out` has held a record of
    /// the same type (byte fields reuse their buffer when `out` owns it alone).
    pub fn decode(&self, update: &Update, out: &mut Decoded) -> Result<(), DecodeError> {
        let et = self.event_type_of(update)?;
        self.decode_typed(et, update, out)
    }

    /// [`IdlSet::decode`] of an update whose event type `et` is known ([`IdlSet::event_type_of`]
    /// of this very update).
    pub(crate) fn decode_typed(
        &self,
        et: u32,
        update: &Update,
        out: &mut Decoded,
    ) -> Result<(), DecodeError> {
        match update {
            Update::Account(a) => {
                out.address = Some(a.pubkey);
                out.accounts.clear();
                self.decode_data(et, &a.data, out)
            }
            Update::Instruction(ix) => {
                let item = &self.items[et as usize];
                if ix.accounts.len() < item.required_accounts {
                    return Err(DecodeError::MissingAccounts {
                        event_type: et,
                        expected: item.required_accounts,
                        got: ix.accounts.len(),
                    });
                }
                out.address = None;
                out.accounts.clear();
                let n = ix.accounts.len().min(item.accounts.len());
                out.accounts.extend_from_slice(&ix.accounts[..n]);
                self.decode_data(et, &ix.data, out)
            }
            Update::Slot { .. } => Err(DecodeError::NotAnEvent),
        }
    }

    fn decode_data(&self, et: u32, data: &[u8], out: &mut Decoded) -> Result<(), DecodeError> {
        let item = &self.items[et as usize];
        let fields = self.fields_of(et);
        out.event_type = et;
        out.fields.resize_with(fields.len(), Value::default);
        let start = item.disc.len();
        let mut r = Reader {
            data,
            pos: start,
            event_type: et,
        };
        if item.pod {
            let size = self.fixed_sizes[et as usize].expect("pod items are fixed");
            let end = start + size;
            if data.len() < end {
                return Err(DecodeError::ShortData {
                    event_type: et,
                    offset: data.len(),
                    needed: end - data.len(),
                    len: data.len(),
                });
            }
            if data.len() > end {
                return Err(DecodeError::TrailingData {
                    event_type: et,
                    consumed: end,
                    len: data.len(),
                });
            }
            let pod = self.pods[item.root as usize]
                .as_ref()
                .expect("pod layout compiled");
            for ((f, off), v) in fields
                .iter()
                .zip(pod.offsets.iter())
                .zip(out.fields.iter_mut())
            {
                self.read_pod(f.ty, &mut r, start + *off as usize, v, 0)?;
            }
            return Ok(());
        }
        for (f, v) in fields.iter().zip(out.fields.iter_mut()) {
            self.read_borsh(f.ty, &mut r, v, 0)?;
        }
        let lenient = item.accounts.is_empty()
            && self.event_types[et as usize].is_account
            && self.fixed_sizes[et as usize].is_none();
        if r.pos != data.len() && !lenient {
            return Err(DecodeError::TrailingData {
                event_type: et,
                consumed: r.pos,
                len: data.len(),
            });
        }
        Ok(())
    }

    /// The reference-shaped decoded JSON event (§8.1) → the same record. Instruction accounts the
    /// JSON lacks take the IDL's fixed address, or end the list if they are trailing optional ones.
    pub fn decoded_from_json(
        &self,
        event_type: u32,
        v: &serde_json::Value,
        out: &mut Decoded,
    ) -> Result<(), DecodeError> {
        let et_info = self
            .event_types
            .get(event_type as usize)
            .ok_or(DecodeError::UnknownEventType { event_type })?;
        let item = &self.items[event_type as usize];
        let jerr = |m: json::JsonMismatch| DecodeError::Json {
            event_type,
            path: m.path(),
            expected: m.expected,
        };
        let (data, accounts) = if et_info.is_account {
            (v, None)
        } else {
            let data = v
                .get("data")
                .ok_or_else(|| jerr(json::JsonMismatch::new("an object").within("data")))?;
            let accounts = v
                .get("accounts")
                .ok_or_else(|| jerr(json::JsonMismatch::new("an object").within("accounts")))?;
            (data, Some(accounts))
        };
        let prefix = if et_info.is_account {
            None
        } else {
            Some("data")
        };
        let obj = data.as_object().ok_or_else(|| {
            let m = json::JsonMismatch::new("an object");
            jerr(match prefix {
                Some(p) => m.within(p),
                None => m,
            })
        })?;
        out.event_type = event_type;
        out.fields.clear();
        for f in self.fields_of(event_type) {
            let wrap = |m: json::JsonMismatch| {
                let m = m.within(&*f.name);
                jerr(match prefix {
                    Some(p) => m.within(p),
                    None => m,
                })
            };
            let x = obj
                .get(&*f.name)
                .ok_or_else(|| wrap(json::JsonMismatch::new("a value")))?;
            out.fields
                .push(self.value_from_json(f.ty, x, 0).map_err(wrap)?);
        }
        out.accounts.clear();
        out.address = None;
        match accounts {
            None => {
                if let Some(a) = v.get("__account_address") {
                    out.address =
                        Some(json::pubkey(a).map_err(|m| jerr(m.within("__account_address")))?);
                }
            }
            Some(accs) => {
                let o = accs
                    .as_object()
                    .ok_or_else(|| jerr(json::JsonMismatch::new("an object").within("accounts")))?;
                for (i, a) in item.accounts.iter().enumerate() {
                    match o.get(&*a.name) {
                        Some(k) => out.accounts.push(
                            json::pubkey(k)
                                .map_err(|m| jerr(m.within(&*a.name).within("accounts")))?,
                        ),
                        None => match a.address {
                            Some(fixed) => out.accounts.push(fixed),
                            None if i >= item.required_accounts => break,
                            None => {
                                return Err(jerr(
                                    json::JsonMismatch::new("a base58 public key")
                                        .within(&*a.name)
                                        .within("accounts"),
                                ))
                            }
                        },
                    }
                }
            }
        }
        Ok(())
    }

    /// Record → the reference-shaped JSON event: accounts are a flat object of the fields plus
    /// `"__account_address"` (base58, when known); instructions are
    /// `{"data": {args}, "accounts": {"<idl account name>": "<base58>"}}`. `Null` for an unknown
    /// event type id.
    pub fn to_reference_json(&self, d: &Decoded) -> serde_json::Value {
        use serde_json::{Map, Value as J};
        let Some(et) = self.event_types.get(d.event_type as usize) else {
            return J::Null;
        };
        let mut fields = Map::with_capacity(d.fields.len() + 1);
        for (name, v) in et.field_names.iter().zip(&d.fields) {
            fields.insert(name.to_string(), v.to_json());
        }
        if et.is_account {
            if let Some(a) = &d.address {
                fields.insert("__account_address".into(), J::String(crate::b58::encode(a)));
            }
            return J::Object(fields);
        }
        let accounts: Map<String, J> = et
            .account_names
            .iter()
            .zip(&d.accounts)
            .map(|(n, k)| (n.to_string(), J::String(crate::b58::encode(k))))
            .collect();
        serde_json::json!({"data": fields, "accounts": accounts})
    }

    /// Reference-shaped JSON (the fields / `{"data", "accounts"}` as [`IdlSet::to_reference_json`]
    /// gives them) → account data or instruction data bytes, discriminator included; for
    /// instructions also the account list in IDL order.
    pub fn encode(&self, event_type: u32, v: &serde_json::Value) -> Result<Encoded, EncodeError> {
        let mut d = Decoded::default();
        self.decoded_from_json(event_type, v, &mut d)
            .map_err(|e| match e {
                DecodeError::Json { path, expected, .. } => EncodeError::Json { path, expected },
                _ => EncodeError::UnknownEventType(event_type),
            })?;
        self.encode_decoded(&d)
    }

    /// A record → bytes (and instruction accounts), the inverse of [`IdlSet::decode`].
    pub fn encode_decoded(&self, d: &Decoded) -> Result<Encoded, EncodeError> {
        let item = self
            .items
            .get(d.event_type as usize)
            .ok_or(EncodeError::UnknownEventType(d.event_type))?;
        let fields = self.fields_of(d.event_type);
        if d.fields.len() != fields.len() {
            return Err(EncodeError::Shape {
                expected: "one value per field of the event type",
            });
        }
        let mut data = Vec::with_capacity(
            item.disc.len() + self.fixed_sizes[d.event_type as usize].unwrap_or(64),
        );
        data.extend_from_slice(&item.disc);
        let start = data.len();
        let offsets = if item.pod {
            self.pods[item.root as usize].as_ref().map(|p| &*p.offsets)
        } else {
            None
        };
        for (i, (f, v)) in fields.iter().zip(&d.fields).enumerate() {
            if let Some(offs) = offsets {
                data.resize(start + offs[i] as usize, 0);
            }
            self.write(f.ty, v, item.pod, &mut data, 0)
                .map_err(|e| match e {
                    EncodeError::Shape { .. } | EncodeError::OutOfRange => EncodeError::Json {
                        path: format!("$.{}", f.name),
                        expected: match e {
                            EncodeError::Shape { expected } => expected,
                            _ => "a value in the type's range",
                        },
                    },
                    e => e,
                })?;
        }
        if item.pod {
            let size = self.fixed_sizes[d.event_type as usize].expect("pod items are fixed");
            data.resize(start + size, 0);
        }
        Ok(Encoded {
            data,
            accounts: if self.event_types[d.event_type as usize].is_account {
                Vec::new()
            } else {
                d.accounts.clone()
            },
        })
    }
}

impl std::fmt::Debug for IdlSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdlSet")
            .field("event_types", &self.event_types.len())
            .field("nodes", &self.nodes.len())
            .finish()
    }
}
