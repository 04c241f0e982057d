//! The event record the handlers read.
//!
//! A decoded update stays a [`Rec`]: the decoder's values by field position plus the names of its
//! IDL event type ([`Shape`], shared by every record of the type). A handler reads the fields it
//! maps by path (`amount`, `data.amount`, `accounts.round`, `__account_address`), and only those
//! are rendered to JSON; the reference's whole JSON tree (every field, every key base58-encoded)
//! is built only where a mapping takes the whole record (captures, `AsEvent`). Events that arrive
//! as JSON (`VmContext::apply_json`: tests, replays of recorded JSON) are read as they are. Both
//! answer every read exactly as the reference's JSON shape would (`../shared/protocol.md` §8.1):
//! accounts are a flat object of fields plus `__account_address`; instructions are
//! `{"data": {args}, "accounts": {name: address}}`.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::json::{self, Path};
use crate::idl::EventType;
use crate::value::Value;

/// The names of one IDL event type's record.
#[derive(Debug)]
pub(crate) struct Shape {
    is_account: bool,
    fields: Vec<Arc<str>>,
    accounts: Vec<Arc<str>>,
}

impl Shape {
    pub fn of(et: &EventType) -> Shape {
        Shape {
            is_account: et.is_account,
            fields: et.field_names.clone(),
            accounts: et.account_names.clone(),
        }
    }

    pub fn is_account(&self) -> bool {
        self.is_account
    }

    fn field(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| &**f == name)
    }

    /// The field a path into this type's record starts at, and how many segments name it
    /// (`amount`: 1 on accounts; `data.amount`: 2 on instructions).
    fn locate(&self, segs: &[Box<str>]) -> Option<(u16, u8)> {
        let (i, used) = match (segs, self.is_account) {
            ([name, ..], true) if &**name != ADDRESS && &**name != RESOLVED => {
                (self.field(name)?, 1)
            }
            ([data, name, ..], false) if &**data == "data" => (self.field(name)?, 2),
            _ => return None,
        };
        Some((u16::try_from(i).ok()?, used))
    }
}

/// A path into the event record, located at load time where the handler's event type is known:
/// reading it is then an index into the record's fields, not a search by name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EvPath {
    pub path: Path,
    /// (IDL event type, field index, segments that name the field).
    located: Option<(u32, u16, u8)>,
    /// (IDL event type, account index) of an instruction account path (`accounts.<name>`).
    account: Option<(u32, u16)>,
    /// The IDL event type in whose records nothing is at this path (a name that is not one of
    /// its fields): reading it there is null at once, not a search by name.
    absent: Option<u32>,
}

impl EvPath {
    pub fn new(path: Path) -> EvPath {
        EvPath {
            path,
            located: None,
            account: None,
            absent: None,
        }
    }

    /// Locates this path in records of IDL event type `event_type` (left as it is if the path
    /// does not start at one of its fields: `__account_address`, `accounts.x`, unknown names).
    pub fn locate(&mut self, event_type: u32, shape: &Shape) {
        self.located = shape
            .locate(&self.path.segs)
            .map(|(i, used)| (event_type, i, used));
        self.account = match (&self.path.segs[..], shape.is_account) {
            ([accounts, name], false) if &**accounts == "accounts" => {
                let i = shape.accounts.iter().position(|a| **a == **name);
                i.and_then(|i| u16::try_from(i).ok())
                    .map(|i| (event_type, i))
            }
            _ => None,
        };
        // What `Rec::get` finds nothing at in any record of this type.
        let absent = match (&self.path.segs[..], shape.is_account) {
            ([first, ..], _) if &**first == RESOLVED || &**first == CONTEXT => false,
            ([first, ..], true) => &**first != ADDRESS && shape.field(first).is_none(),
            ([first, ..], false) => &**first != "data" && &**first != "accounts",
            ([], _) => false,
        };
        self.absent = absent.then_some(event_type);
    }

    /// Located in some record type: the path starts at a record field.
    pub fn is_located(&self) -> bool {
        self.located.is_some()
    }
}

impl std::ops::Deref for EvPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

/// A decoded update as the handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Rec {
    /// The IDL event type (what [`EvPath`]s were located against).
    pub event_type: u32,
    pub shape: Arc<Shape>,
    pub fields: Vec<Value>,
    pub accounts: Vec<[u8; 32]>,
    /// `__account_address` in base58, rendered once (several steps read it).
    pub address: Option<Arc<str>>,
    /// `__resolved_primary_key`, set by a resolver hook.
    pub resolved: Option<Json>,
}

/// The event a handler runs on.
#[derive(Debug, Clone)]
pub(crate) enum Ev {
    /// An event given in the reference's JSON shape (always an object).
    Json(Json),
    Rec(Rec),
}

const ADDRESS: &str = "__account_address";
const RESOLVED: &str = "__resolved_primary_key";
/// Read from the update's context, not the record (`VmContext::load`).
const CONTEXT: &str = "__update_context";

impl Ev {
    /// The value at `path`, as the reference's JSON record would have it.
    pub fn get(&self, path: &EvPath) -> Option<Cow<'_, Json>> {
        match self {
            Ev::Json(j) => json::get(j, &path.segs).map(Cow::Borrowed),
            Ev::Rec(r) => match path.located {
                Some((et, i, used)) if et == r.event_type => {
                    descend(&r.fields[i as usize], &path.segs[used as usize..]).map(Cow::Owned)
                }
                _ if path.absent == Some(r.event_type) => None,
                _ => r.get(&path.segs).map(Cow::Owned),
            },
        }
    }

    /// The decoded value at a located `path` (see [`EvPath`]), borrowed; `None` for paths not
    /// located in this record and for JSON events.
    pub fn value_ref(&self, path: &EvPath) -> Option<&Value> {
        match (self, path.located) {
            (Ev::Rec(r), Some((et, i, used))) if et == r.event_type => {
                descend_value(&r.fields[i as usize], &path.segs[used as usize..])
            }
            _ => None,
        }
    }

    /// The instruction account at a located `accounts.<name>` path (see [`EvPath`]), as bytes;
    /// `None` for other paths and for JSON events.
    pub fn account_at(&self, path: &EvPath) -> Option<&[u8; 32]> {
        match (self, path.account) {
            (Ev::Rec(r), Some((et, i))) if et == r.event_type => r.accounts.get(i as usize),
            _ => None,
        }
    }

    /// The record's address when `path` is `__account_address` (what [`Ev::get`] gives there,
    /// borrowed).
    pub fn address_at(&self, path: &EvPath) -> Option<&str> {
        match (self, &path.segs[..]) {
            (Ev::Rec(r), [seg]) if r.shape.is_account && &**seg == ADDRESS => r.address.as_deref(),
            _ => None,
        }
    }

    /// The decoded value at `segs` of an account record, found by field name (a path that starts
    /// at a public field), borrowed; `None` otherwise.
    pub fn field_value(&self, segs: &[Box<str>]) -> Option<&Value> {
        match self {
            Ev::Rec(r) if r.shape.is_account => {
                let (name, rest) = segs.split_first()?;
                if name.starts_with("__") {
                    return None;
                }
                descend_value(&r.fields[r.shape.field(name)?], rest)
            }
            _ => None,
        }
    }

    /// `__resolved_primary_key`, when a hook set it to something other than null.
    pub fn resolved(&self) -> Option<&Json> {
        match self {
            Ev::Json(j) => j.get(RESOLVED),
            Ev::Rec(r) => r.resolved.as_ref(),
        }
        .filter(|k| !k.is_null())
    }

    pub fn set_resolved(&mut self, key: String) {
        match self {
            Ev::Json(Json::Object(m)) => {
                m.insert(RESOLVED.into(), Json::String(key));
            }
            Ev::Json(_) => {}
            Ev::Rec(r) => r.resolved = Some(Json::String(key)),
        }
    }

    /// `__account_address` when it is a string, shared (a record's is never copied).
    pub fn address_arc(&self) -> Option<Arc<str>> {
        match self {
            Ev::Json(j) => j.get(ADDRESS).and_then(Json::as_str).map(Arc::from),
            Ev::Rec(r) => r.address.clone(),
        }
    }

    /// Appends the base58 of the first of `names` the instruction has an account for to `out`;
    /// whether there was one.
    pub fn account_into(&self, names: &[Box<str>], out: &mut String) -> bool {
        names.iter().any(|name| match self {
            Ev::Json(j) => match j.get("accounts").and_then(|a| a.get(&**name)) {
                Some(Json::String(s)) => {
                    out.push_str(s);
                    true
                }
                _ => false,
            },
            Ev::Rec(r) => {
                let i = r.shape.accounts.iter().position(|a| **a == **name);
                match i.and_then(|i| r.accounts.get(i)) {
                    Some(key) => {
                        crate::b58::with_key(key, |s| out.push_str(s));
                        true
                    }
                    None => false,
                }
            }
        })
    }

    /// The record without its `__` bookkeeping fields (what a capture or `AsEvent` stores).
    pub fn public_fields(&self) -> Json {
        match self {
            Ev::Json(j) => json::public_fields(j),
            Ev::Rec(r) if r.shape.is_account => r.data_json(),
            Ev::Rec(r) => {
                let mut m = Map::new();
                m.insert("data".into(), r.data_json());
                m.insert("accounts".into(), r.accounts_json());
                Json::Object(m)
            }
        }
    }
}

impl Rec {
    /// The record of a decoded update of type `shape`. Its fields and accounts are moved out of
    /// `d`, not copied: the decoder refills the buffers for the next update.
    pub fn take(shape: &Arc<Shape>, d: &mut crate::idl::Decoded) -> Rec {
        Rec {
            event_type: d.event_type,
            shape: shape.clone(),
            fields: std::mem::take(&mut d.fields),
            accounts: std::mem::take(&mut d.accounts),
            address: d.address.map(|a| crate::b58::key_arc(&a)),
            resolved: None,
        }
    }

    fn get(&self, segs: &[Box<str>]) -> Option<Json> {
        let (first, rest) = segs.split_first()?;
        match (&**first, self.shape.is_account) {
            (RESOLVED, _) => json::get(self.resolved.as_ref()?, rest).cloned(),
            (ADDRESS, true) => match rest {
                [] => Some(Json::String(self.address.as_deref()?.into())),
                _ => None, // a string has no fields
            },
            (name, true) => descend(&self.fields[self.shape.field(name)?], rest),
            ("data", false) => match rest.split_first() {
                None => Some(self.data_json()),
                Some((name, rest)) => descend(&self.fields[self.shape.field(name)?], rest),
            },
            ("accounts", false) => match rest.split_first() {
                None => Some(self.accounts_json()),
                Some((name, [])) => {
                    let i = self.shape.accounts.iter().position(|a| **a == **name)?;
                    Some(Json::String(crate::b58::encode(self.accounts.get(i)?)))
                }
                Some(_) => None, // an address has no fields
            },
            _ => None,
        }
    }

    /// The fields (accounts) or args (instructions) as a JSON object.
    fn data_json(&self) -> Json {
        Json::Object(
            self.shape
                .fields
                .iter()
                .zip(&self.fields)
                .map(|(n, v)| (String::from(&**n), v.to_json()))
                .collect(),
        )
    }

    fn accounts_json(&self) -> Json {
        Json::Object(
            self.shape
                .accounts
                .iter()
                .zip(&self.accounts)
                .map(|(n, k)| (String::from(&**n), Json::String(crate::b58::encode(k))))
                .collect(),
        )
    }
}

/// `v` then the object keys in `rest`, as JSON.
fn descend(v: &Value, rest: &[Box<str>]) -> Option<Json> {
    let Some((seg, rest)) = rest.split_first() else {
        return Some(v.to_json());
    };
    match v {
        Value::Object(fields) => {
            let (_, inner) = fields.iter().find(|(k, _)| **k == **seg)?;
            descend(inner, rest)
        }
        _ => None,
    }
}

/// `v` then the object keys in `rest`.
fn descend_value<'v>(v: &'v Value, rest: &[Box<str>]) -> Option<&'v Value> {
    let Some((seg, rest)) = rest.split_first() else {
        return Some(v);
    };
    match v {
        Value::Object(fields) => {
            let (_, inner) = fields.iter().find(|(k, _)| **k == **seg)?;
            descend_value(inner, rest)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idl::Decoded;
    use crate::synth::{Generator, SynthConfig};
    use crate::Stack;

    /// Every path into the reference's JSON record, and a few that lead nowhere.
    fn paths(v: &Json, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(prefix.clone());
        if let Json::Object(m) = v {
            for (k, inner) in m {
                prefix.push(k.clone());
                paths(inner, prefix, out);
                prefix.pop();
            }
        }
        for missing in ["nope", "0"] {
            let mut p = prefix.clone();
            p.push(missing.into());
            out.push(p);
        }
    }

    #[test]
    fn a_record_answers_every_path_as_the_reference_json_does() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/stacks/OreStream.stack.json"
        ))
        .unwrap();
        let stack = Stack::from_json(&bytes).unwrap();
        let idls = stack.idls();
        let mut gen = Generator::new(idls, SynthConfig::default());
        let mut d = Decoded::default();
        let mut checked = 0;
        for _ in 0..2_000 {
            let u = gen.next_update();
            if idls.decode(&u, &mut d).is_err() {
                continue;
            }
            let mut reference = idls.to_reference_json(&d);
            let shape = stack.shape(d.event_type).unwrap();
            let mut ev = Ev::Rec(Rec::take(shape, &mut d.clone()));
            assert_eq!(ev.public_fields(), json::public_fields(&reference));
            if d.address.is_some() {
                ev.set_resolved("K".into());
                reference[RESOLVED] = Json::String("K".into());
                assert_eq!(
                    ev.address_arc().as_deref(),
                    reference.get(ADDRESS).and_then(Json::as_str)
                );
            }
            assert_eq!(ev.resolved(), reference.get(RESOLVED));
            let mut all = Vec::new();
            paths(&reference, &mut Vec::new(), &mut all);
            for segs in all.iter().filter(|p| !p.is_empty()) {
                let mut path = EvPath::new(Path::dotted(&segs.join(".")));
                let by_name = ev.get(&path).map(Cow::into_owned);
                path.locate(d.event_type, shape);
                assert_eq!(
                    by_name,
                    json::get(&reference, &path.segs).cloned(),
                    "{}",
                    path.dotted
                );
                // Located at load time, or looked up by name: the same answer.
                assert_eq!(
                    ev.get(&path).map(Cow::into_owned),
                    by_name,
                    "{}",
                    path.dotted
                );
                checked += 1;
            }
            if let Some(Json::Object(accts)) = reference.get("accounts") {
                for (name, v) in accts {
                    let mut text = String::new();
                    let found = ev.account_into(&[name.as_str().into()], &mut text);
                    assert_eq!(found.then_some(text.as_str()), v.as_str());
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }
}
