//! The synthetic chain: valid, deterministic account and instruction updates for any stack, built
//! from its IDLs alone.
//!
//! Pure and seeded: the same [`IdlSet`] and [`SynthConfig`] give the same sequence, on any machine
//! (a splitmix64 generator, no clock, no hashing of addresses). It is meant to make stacks *do*
//! something, so it imitates how a chain reuses state:
//!
//! - every account type has a bounded pool of addresses; an address keeps its record, the first
//!   write creates it whole and later writes change one to three fields (identity fields — `id`,
//!   anything named like `authority`, `owner`, `mint` — never change; a field named `id` is the
//!   address's pool position + 1, so it is unique and stable per address);
//! - numbers come from small ranges so values collide and change visibly (`*_id` fields 1..=8);
//!   public keys come from a shared pool of wallets, so e.g. a Miner and an Automation can share
//!   their `authority`;
//! - an instruction account whose IDL name contains an account type's name (case-insensitive;
//!   `round`, `roundNext` → Round, `entropyVar` → Var) is drawn from that type's pool; an account
//!   with a fixed address in the IDL gets it; the rest are wallets. Instructions are picked with a
//!   weight of 1 + 2 × (accounts drawn from pools), so the ones that connect entities dominate;
//! - an instruction comes as a transaction: with it, writes of up to three of the pool accounts it
//!   names (each with probability ½), all carrying its signature and slot — after the instruction,
//!   or (30%) before it, so `when`-style handlers see both orders; other account writes stand alone
//!   (half of them reuse the signature of the slot's last transaction);
//! - slots increase every `updates_per_slot` transactions or lone writes; account writes carry increasing
//!   `write_version`s, instructions a per-slot `txn_index`; the timestamp is
//!   `1_700_000_000 + slot * 2 / 5` (400 ms slots);
//! - with `duplicate_ratio` a past update (from the last 64) is delivered again, unchanged; with
//!   `out_of_order_ratio` a fresh account write is held back and delivered 1–8 updates later, after
//!   newer writes.
//!
//! No `Update::Slot` ticks are produced.

use std::collections::VecDeque;

use crate::event::{AccountUpdate, InstructionUpdate, Pubkey, Signature};
use crate::idl::{Decoded, IdlNode as Node, IdlSet, IdlVariantKind as VariantKind};
use crate::value::Value;
use crate::Update;

/// Past updates kept for re-delivery (`duplicate_ratio`).
const HISTORY: usize = 64;
/// Account writes held back at most at once (`out_of_order_ratio`).
const MAX_HELD: usize = 16;
/// Account writes a generated transaction makes besides its instruction.
const MAX_TX_WRITES: usize = 3;
/// Nesting beyond which recursive types get their smallest value.
const MAX_GEN_DEPTH: u32 = 6;

/// What the generator produces.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    pub seed: u64,
    /// Size of the address pool per account type, and of the wallet pool (default 8).
    pub addresses_per_account_type: usize,
    /// First slot (default 300,000,000).
    pub start_slot: u64,
    /// Transactions (an instruction with its account writes) or lone account writes per slot
    /// (default 4).
    pub updates_per_slot: u32,
    /// Share of updates that re-deliver a past update (default 0.02).
    pub duplicate_ratio: f64,
    /// Share of account writes delivered late, after newer ones (default 0.02).
    pub out_of_order_ratio: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 1,
            addresses_per_account_type: 8,
            start_slot: 300_000_000,
            updates_per_slot: 4,
            duplicate_ratio: 0.02,
            out_of_order_ratio: 0.02,
        }
    }
}

/// splitmix64: tiny, fast, good enough to make test data.
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64) < p * (1u64 << 53) as f64
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        out
    }
}

struct Pool {
    event_type: u32,
    /// Lowercased account type name, for matching instruction account names.
    name_lc: String,
    addresses: Vec<Pubkey>,
    records: Vec<Option<Vec<Value>>>,
}

/// Where an instruction account comes from.
#[derive(Clone, Copy)]
enum AccSource {
    Fixed(Pubkey),
    Pool(usize),
    Wallet,
}

struct Ix {
    event_type: u32,
    weight: u64,
    accounts: Vec<AccSource>,
}

/// A deterministic stream of updates for the programs of an [`IdlSet`].
pub struct Generator {
    idls: IdlSet,
    cfg: SynthConfig,
    rng: Rng,
    pools: Vec<Pool>,
    wallets: Vec<Pubkey>,
    ixs: Vec<Ix>,
    total_weight: u64,
    slot: u64,
    in_slot: u32,
    txn_index: u64,
    write_version: u64,
    /// Signature of the last instruction of the current slot, reused by account writes.
    last_signature: Option<Signature>,
    emitted: u64,
    history: VecDeque<Update>,
    /// (deliver when `emitted` reaches this, update)
    held: VecDeque<(u64, Update)>,
    /// The rest of the transaction being delivered (at most 1 + `MAX_TX_WRITES`).
    pending: VecDeque<Update>,
}

fn is_frozen(name: &str) -> bool {
    name == "id" || name.contains("authority") || name == "owner" || name == "mint"
}

fn is_id_like(name: &str) -> bool {
    name == "id" || name.ends_with("_id") || name.ends_with("Id")
}

impl Generator {
    pub fn new(idls: &IdlSet, cfg: SynthConfig) -> Generator {
        let idls = idls.clone();
        let mut rng = Rng(cfg.seed ^ 0x5EED_5EED_5EED_5EED_u64);
        let n = cfg.addresses_per_account_type.max(1);
        let wallets: Vec<Pubkey> = (0..n).map(|_| rng.bytes()).collect();
        let mut pools = Vec::new();
        for (i, et) in idls.event_types().iter().enumerate() {
            if !et.is_account {
                continue;
            }
            let type_name = et
                .name
                .rsplit("::")
                .next()
                .unwrap_or(&et.name)
                .trim_end_matches("State");
            pools.push(Pool {
                event_type: i as u32,
                name_lc: type_name.to_ascii_lowercase(),
                addresses: (0..n).map(|_| rng.bytes()).collect(),
                records: vec![None; n],
            });
        }
        let mut ixs = Vec::new();
        for (i, et) in idls.event_types().iter().enumerate() {
            if et.is_account {
                continue;
            }
            let mut pooled = 0;
            let accounts = et
                .account_names
                .iter()
                .enumerate()
                .map(|(ai, name)| {
                    if let Some(k) = idls.fixed_account_address(i as u32, ai) {
                        return AccSource::Fixed(k);
                    }
                    let lc = name.to_ascii_lowercase();
                    let best = pools
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| !p.name_lc.is_empty() && lc.contains(&p.name_lc))
                        .max_by_key(|(pi, p)| (p.name_lc.len(), usize::MAX - pi))
                        .map(|(pi, _)| pi);
                    match best {
                        Some(pi) => {
                            pooled += 1;
                            AccSource::Pool(pi)
                        }
                        None => AccSource::Wallet,
                    }
                })
                .collect();
            ixs.push(Ix {
                event_type: i as u32,
                weight: 1 + 2 * pooled,
                accounts,
            });
        }
        let total_weight = ixs.iter().map(|x| x.weight).sum();
        Generator {
            idls,
            rng,
            pools,
            wallets,
            ixs,
            total_weight,
            slot: cfg.start_slot,
            in_slot: 0,
            txn_index: 0,
            write_version: 0,
            last_signature: None,
            emitted: 0,
            history: VecDeque::with_capacity(HISTORY),
            held: VecDeque::with_capacity(MAX_HELD),
            pending: VecDeque::with_capacity(1 + MAX_TX_WRITES),
            cfg,
        }
    }

    /// The next update. Returns `Update::Slot` ticks only for an IDL set without any account type
    /// or instruction.
    pub fn next_update(&mut self) -> Update {
        self.emitted += 1;
        if let Some((due, _)) = self.held.front() {
            if *due <= self.emitted {
                let (_, u) = self.held.pop_front().expect("front exists");
                self.remember(&u);
                return u;
            }
        }
        if !self.history.is_empty() && self.rng.chance(self.cfg.duplicate_ratio) {
            let i = self.rng.below(self.history.len() as u64) as usize;
            return self.history[i].clone();
        }
        loop {
            let u = self.fresh();
            if matches!(u, Update::Account(_))
                && self.held.len() < MAX_HELD
                && self.rng.chance(self.cfg.out_of_order_ratio)
            {
                let delay = 1 + self.rng.below(8);
                self.held.push_back((self.emitted + delay, u));
                continue;
            }
            self.remember(&u);
            return u;
        }
    }

    fn remember(&mut self, u: &Update) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(u.clone());
    }

    fn timestamp(&self) -> i64 {
        1_700_000_000 + (self.slot * 2 / 5) as i64
    }

    fn tick(&mut self) {
        self.in_slot += 1;
        if self.in_slot > self.cfg.updates_per_slot.max(1) {
            self.slot += 1;
            self.in_slot = 1;
            self.txn_index = 0;
            self.last_signature = None;
        }
    }

    fn fresh(&mut self) -> Update {
        if let Some(u) = self.pending.pop_front() {
            return u;
        }
        self.tick();
        let accounts = !self.pools.is_empty() && (self.ixs.is_empty() || self.rng.chance(0.5));
        if accounts {
            let pi = self.rng.below(self.pools.len() as u64) as usize;
            let ai = self.rng.below(self.pools[pi].addresses.len() as u64) as usize;
            let signature = match self.last_signature {
                Some(s) if self.rng.chance(0.5) => s,
                _ => self.rng.bytes(),
            };
            self.account_write(pi, ai, signature)
        } else if !self.ixs.is_empty() {
            // A transaction: the instruction and writes of some of the pool accounts it names,
            // all with its signature; the writes come after it, or (30%) before it.
            let (ix, touched) = self.instruction();
            let Update::Instruction(i) = &ix else {
                unreachable!("instruction() returns an instruction")
            };
            let signature = i.signature;
            let writes_first = self.rng.chance(0.3);
            if !writes_first {
                self.pending.push_back(ix.clone());
            }
            for (pi, ai) in touched {
                let w = self.account_write(pi, ai, signature);
                self.pending.push_back(w);
            }
            if writes_first {
                self.pending.push_back(ix);
            }
            self.pending.pop_front().expect("the instruction at least")
        } else {
            Update::Slot {
                slot: self.slot,
                timestamp: self.timestamp(),
            }
        }
    }

    /// The next write of address `ai` of pool `pi`, by the transaction `signature`.
    fn account_write(&mut self, pi: usize, ai: usize, signature: Signature) -> Update {
        let et = self.pools[pi].event_type;
        let fields = self.idls.fields_of(et).to_vec();
        let record = match self.pools[pi].records[ai].take() {
            None => fields
                .iter()
                .map(|f| {
                    if &*f.name == "id" && matches!(self.idls.node(f.ty), Node::U(_)) {
                        Value::U64(ai as u64 + 1)
                    } else {
                        self.gen(f.ty, &f.name, 0)
                    }
                })
                .collect(),
            Some(mut rec) => {
                let mutable: Vec<usize> = (0..fields.len())
                    .filter(|i| !is_frozen(&fields[*i].name))
                    .collect();
                if !mutable.is_empty() {
                    let changes = 1 + self.rng.below(3);
                    for _ in 0..changes {
                        let i = mutable[self.rng.below(mutable.len() as u64) as usize];
                        let f = &fields[i];
                        rec[i] = self.mutate(f.ty, &f.name, &rec[i]);
                    }
                }
                rec
            }
        };
        let d = Decoded {
            event_type: et,
            fields: record,
            accounts: Vec::new(),
            address: Some(self.pools[pi].addresses[ai]),
        };
        let data = self
            .idls
            .encode_decoded(&d)
            .expect("generated values have the IDL's types")
            .data;
        self.pools[pi].records[ai] = Some(d.fields);
        self.write_version += 1;
        Update::Account(AccountUpdate {
            slot: self.slot,
            write_version: self.write_version,
            pubkey: self.pools[pi].addresses[ai],
            owner: self.idls.event_types()[et as usize].program_id,
            data,
            signature: Some(signature),
            timestamp: self.timestamp(),
        })
    }

    /// A new instruction, and the (pool, address) accounts its transaction also writes.
    fn instruction(&mut self) -> (Update, Vec<(usize, usize)>) {
        let mut pick = self.rng.below(self.total_weight);
        let mut xi = 0;
        while pick >= self.ixs[xi].weight {
            pick -= self.ixs[xi].weight;
            xi += 1;
        }
        let et = self.ixs[xi].event_type;
        let sources = self.ixs[xi].accounts.clone();
        let mut touched = Vec::new();
        let accounts: Vec<Pubkey> = sources
            .iter()
            .map(|s| match *s {
                AccSource::Fixed(k) => k,
                AccSource::Pool(pi) => {
                    let ai = self.rng.below(self.pools[pi].addresses.len() as u64) as usize;
                    if touched.len() < MAX_TX_WRITES
                        && !touched.contains(&(pi, ai))
                        && self.rng.chance(0.5)
                    {
                        touched.push((pi, ai));
                    }
                    self.pools[pi].addresses[ai]
                }
                AccSource::Wallet => {
                    self.wallets[self.rng.below(self.wallets.len() as u64) as usize]
                }
            })
            .collect();
        let fields = self
            .idls
            .fields_of(et)
            .to_vec()
            .iter()
            .map(|f| self.gen(f.ty, &f.name, 0))
            .collect();
        let d = Decoded {
            event_type: et,
            fields,
            accounts,
            address: None,
        };
        let enc = self
            .idls
            .encode_decoded(&d)
            .expect("generated values have the IDL's types");
        let signature: Signature = self.rng.bytes();
        self.last_signature = Some(signature);
        let txn_index = self.txn_index;
        self.txn_index += 1;
        let ix = Update::Instruction(InstructionUpdate {
            slot: self.slot,
            txn_index,
            signature,
            program_id: self.idls.event_types()[et as usize].program_id,
            accounts: enc.accounts,
            data: enc.data,
            timestamp: self.timestamp(),
        });
        (ix, touched)
    }

    /// A changed version of `old`: arrays change one or two elements, the rest is drawn anew.
    fn mutate(&mut self, ty: u32, name: &str, old: &Value) -> Value {
        match (self.idls.node(ty).clone(), old) {
            (Node::Array { elem, .. }, Value::Array(a)) if !a.is_empty() => {
                let mut a = a.clone();
                for _ in 0..1 + self.rng.below(2) {
                    let i = self.rng.below(a.len() as u64) as usize;
                    a[i] = self.gen(elem, name, 1);
                }
                Value::Array(a)
            }
            _ => self.gen(ty, name, 0),
        }
    }

    /// A random value of type `ty`; `name` is the field's name (ids stay small).
    fn gen(&mut self, ty: u32, name: &str, depth: u32) -> Value {
        let deep = depth >= MAX_GEN_DEPTH;
        let d = depth + 1;
        match self.idls.node(ty).clone() {
            Node::Placeholder => Value::Null,
            Node::U(n) => {
                let max = if is_id_like(name) {
                    8
                } else if n == 1 {
                    255
                } else {
                    1_000
                };
                let lo = if is_id_like(name) { 1 } else { 0 };
                Value::U64(lo + self.rng.below(max - lo + 1))
            }
            Node::I(n) => {
                let span = if n == 1 { 100 } else { 1_000 };
                Value::I64(self.rng.below(2 * span + 1) as i64 - span as i64)
            }
            Node::U128 => Value::U128(match self.rng.below(4) {
                0 => u64::MAX as u128 + self.rng.below(1_000) as u128,
                _ => self.rng.below(1_000_000) as u128,
            }),
            Node::I128 => Value::I128(self.rng.below(2_000_000) as i128 - 1_000_000),
            // Quarters are exact in f32 and f64, so values survive the byte round trip.
            Node::F32 | Node::F64 => Value::F64((self.rng.below(4_000) as f64 - 2_000.0) / 4.0),
            Node::Bool => Value::Bool(self.rng.chance(0.5)),
            Node::Pubkey => {
                Value::Pubkey(self.wallets[self.rng.below(self.wallets.len() as u64) as usize])
            }
            Node::Str => {
                const WORDS: [&str; 6] = ["", "ore", "round", "héllo", "✓ ok", "a b c"];
                Value::Str(WORDS[self.rng.below(WORDS.len() as u64) as usize].into())
            }
            Node::Bytes => {
                let len = self.rng.below(9) as usize;
                let b: [u8; 8] = self.rng.bytes();
                Value::Bytes(b[..len.min(8)].into())
            }
            Node::FixedBytes(n) => {
                let b: Vec<u8> = (0..n).map(|_| self.rng.below(256) as u8).collect();
                Value::Bytes(b.into())
            }
            Node::Array { elem, len } => {
                Value::Array((0..len).map(|_| self.gen(elem, name, d)).collect())
            }
            Node::Vec(elem) => {
                let len = if deep { 0 } else { self.rng.below(4) };
                Value::Array((0..len).map(|_| self.gen(elem, name, d)).collect())
            }
            Node::Option(inner) => {
                if deep || self.rng.chance(0.3) {
                    Value::Null
                } else {
                    // An option of an option cannot be told apart from None in JSON.
                    match self.gen(inner, name, d) {
                        Value::Null => Value::Null,
                        v => v,
                    }
                }
            }
            Node::Map { key, val } => {
                let len = if deep { 0 } else { self.rng.below(4) };
                let mut fields: Vec<(std::sync::Arc<str>, Value)> = Vec::new();
                for _ in 0..len {
                    let k = crate::idl::map_key_string(&self.gen(key, "", d));
                    if fields.iter().any(|(x, _)| *x == k) {
                        continue;
                    }
                    let v = self.gen(val, name, d);
                    fields.push((k, v));
                }
                self.idls.sort_map(key, &mut fields);
                Value::Object(fields)
            }
            Node::Struct { fields, .. } => Value::Object(
                fields
                    .iter()
                    .map(|f| (f.name.clone(), self.gen(f.ty, &f.name, d)))
                    .collect(),
            ),
            Node::Tuple { elems, .. } => {
                Value::Array(elems.iter().map(|e| self.gen(*e, name, d)).collect())
            }
            Node::Enum { variants } => {
                let unit = variants
                    .iter()
                    .position(|v| matches!(v.kind, VariantKind::Unit));
                let i = match (deep, unit) {
                    (true, Some(u)) => u,
                    _ => self.rng.below(variants.len() as u64) as usize,
                };
                let v = &variants[i];
                match &v.kind {
                    VariantKind::Unit => Value::Str(v.name.clone()),
                    VariantKind::Named(fs) => Value::Object(vec![(
                        v.name.clone(),
                        Value::Object(
                            fs.iter()
                                .map(|f| (f.name.clone(), self.gen(f.ty, &f.name, d)))
                                .collect(),
                        ),
                    )]),
                    VariantKind::Tuple(es) if es.len() == 1 => {
                        Value::Object(vec![(v.name.clone(), self.gen(es[0], name, d))])
                    }
                    VariantKind::Tuple(es) => Value::Object(vec![(
                        v.name.clone(),
                        Value::Array(es.iter().map(|e| self.gen(*e, name, d)).collect()),
                    )]),
                }
            }
        }
    }
}
