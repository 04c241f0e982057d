//! Load time: the stack file's `idls` JSON → type trees resolved to node indexes, discriminator
//! tables and fixed (Pod) layouts. Every string lookup happens here, once.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as J;
use sha2::{Digest, Sha256};

use super::{Disc, EventType, IdlSet, Item, ItemAccount, Program};
use crate::event::Pubkey;
use crate::spec::SpecError;

/// Deepest type nesting the decoder follows; deeper data is a `DecodeError::TooDeep`.
pub(crate) const MAX_DEPTH: u32 = 64;

/// A node of the compiled type graph. Children are indexes into `IdlSet::nodes`.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Reserved for a defined type whose body is not compiled yet.
    Placeholder,
    /// Unsigned integer of 1, 2, 4 or 8 bytes → `Value::U64`.
    U(u8),
    /// Signed integer of 1, 2, 4 or 8 bytes → `Value::I64`.
    I(u8),
    U128,
    I128,
    F32,
    F64,
    Bool,
    Pubkey,
    Str,
    /// `bytes`: u32 length + bytes → `Value::Bytes`.
    Bytes,
    /// `[u8; N]` → `Value::Bytes`.
    FixedBytes(u32),
    Array {
        elem: u32,
        len: u32,
    },
    Vec(u32),
    Option(u32),
    /// `hashMap` / `bTreeMap`: u32 length + pairs → `Value::Object` with stringified keys.
    Map {
        key: u32,
        val: u32,
    },
    Struct {
        fields: Box<[Field]>,
        packed: bool,
    },
    Tuple {
        elems: Box<[u32]>,
        packed: bool,
    },
    Enum {
        variants: Box<[Variant]>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The reference's JSON name: snake_case of the IDL name.
    pub name: Arc<str>,
    pub ty: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Variant {
    pub name: Arc<str>,
    pub kind: VariantKind,
}

#[derive(Debug, Clone)]
pub(crate) enum VariantKind {
    Unit,
    Named(Box<[Field]>),
    Tuple(Box<[u32]>),
}

/// The fixed layout of a node in a Pod (bytemuck, `repr(C)`) account.
#[derive(Debug, Clone)]
pub(crate) struct Pod {
    pub size: u32,
    pub align: u32,
    /// Byte offset of each field / tuple element from the start of the node.
    pub offsets: Box<[u32]>,
}

/// The reference's field-name conversion: every uppercase letter after the first character becomes
/// `_` + lowercase; the first character is lowercased.
pub(crate) fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The reference's instruction-name conversion: split on `_`, uppercase each word's first letter.
pub(crate) fn pascal_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split('_') {
        let mut cs = word.chars();
        if let Some(f) = cs.next() {
            out.extend(f.to_uppercase());
            out.push_str(cs.as_str());
        }
    }
    out
}

fn err(path: &str, message: impl Into<String>) -> SpecError {
    SpecError {
        path: path.to_string(),
        message: message.into(),
    }
}

fn parse_pubkey(v: &J, path: &str) -> Result<Pubkey, SpecError> {
    let s = v
        .as_str()
        .ok_or_else(|| err(path, "expected a base58 public key string"))?;
    let mut out = [0u8; 32];
    match bs58::decode(s).onto(&mut out) {
        Ok(32) => Ok(out),
        _ => Err(err(
            path,
            format!("`{s}` is not a 32-byte base58 public key"),
        )),
    }
}

fn anchor_discriminator(namespace: &str, name: &str) -> Vec<u8> {
    let hash = Sha256::digest(format!("{namespace}:{name}").as_bytes());
    hash[..8].to_vec()
}

fn byte_array(v: &J, path: &str) -> Result<Vec<u8>, SpecError> {
    let arr = v
        .as_array()
        .ok_or_else(|| err(path, "expected an array of bytes"))?;
    arr.iter()
        .enumerate()
        .map(|(i, b)| {
            b.as_u64()
                .filter(|b| *b <= 255)
                .map(|b| b as u8)
                .ok_or_else(|| err(&format!("{path}[{i}]"), "expected a byte (0..=255)"))
        })
        .collect()
}

fn str_field<'a>(obj: &'a J, key: &str, path: &str) -> Result<&'a str, SpecError> {
    obj.get(key)
        .and_then(J::as_str)
        .ok_or_else(|| err(&format!("{path}.{key}"), "expected a string"))
}

fn array_field<'a>(obj: &'a J, key: &str, path: &str) -> Result<&'a [J], SpecError> {
    match obj.get(key) {
        None | Some(J::Null) => Ok(&[]),
        Some(J::Array(a)) => Ok(a),
        Some(_) => Err(err(&format!("{path}.{key}"), "expected an array")),
    }
}

/// Whether a `serialization` value asks for a fixed bytemuck layout.
fn is_pod(v: Option<&J>, path: &str) -> Result<Option<bool>, SpecError> {
    match v {
        None | Some(J::Null) => Ok(None),
        Some(J::String(s)) => match s.to_ascii_lowercase().as_str() {
            "borsh" => Ok(Some(false)),
            "bytemuck" | "bytemuckunsafe" => Ok(Some(true)),
            other => Err(err(
                path,
                format!(
                    "unknown serialization `{other}` (expected borsh, bytemuck or bytemuckunsafe)"
                ),
            )),
        },
        Some(_) => Err(err(path, "expected a string")),
    }
}

fn repr_packed(typedef: Option<&J>) -> bool {
    typedef
        .and_then(|t| t.get("repr"))
        .and_then(|r| r.get("packed"))
        .and_then(J::as_bool)
        .unwrap_or(false)
}

/// Builds the node graph of one IDL at a time.
struct Builder<'a> {
    nodes: &'a mut Vec<Node>,
    /// Defined type name → node, for the IDL being compiled.
    defined: HashMap<String, u32>,
}

impl Builder<'_> {
    fn push(&mut self, n: Node) -> u32 {
        self.nodes.push(n);
        (self.nodes.len() - 1) as u32
    }

    fn prim(&mut self, name: &str) -> Option<Node> {
        Some(match name {
            "u8" => Node::U(1),
            "u16" => Node::U(2),
            "u32" => Node::U(4),
            "u64" => Node::U(8),
            "i8" => Node::I(1),
            "i16" => Node::I(2),
            "i32" => Node::I(4),
            "i64" => Node::I(8),
            "u128" => Node::U128,
            "i128" => Node::I128,
            "f32" => Node::F32,
            "f64" => Node::F64,
            "bool" => Node::Bool,
            "publicKey" | "pubkey" => Node::Pubkey,
            "string" => Node::Str,
            "bytes" => Node::Bytes,
            _ => return None,
        })
    }

    /// A type expression (`"u64"`, `{"vec": T}`, `{"defined": "X"}`, …) at `path`.
    fn ty(&mut self, v: &J, path: &str) -> Result<u32, SpecError> {
        match v {
            J::String(s) => {
                if let Some(n) = self.prim(s) {
                    return Ok(self.push(n));
                }
                self.defined
                    .get(s.as_str())
                    .copied()
                    .ok_or_else(|| err(path, format!("unknown type `{s}`")))
            }
            J::Object(o) if o.len() == 1 => {
                let (k, inner) = o.iter().next().expect("one entry");
                let sub = format!("{path}.{k}");
                match k.as_str() {
                    "vec" => {
                        let e = self.ty(inner, &sub)?;
                        if matches!(self.nodes[e as usize], Node::U(1)) {
                            // Same bytes as `bytes`; a byte buffer, not an array of numbers.
                            Ok(self.push(Node::Bytes))
                        } else {
                            Ok(self.push(Node::Vec(e)))
                        }
                    }
                    "option" => {
                        let e = self.ty(inner, &sub)?;
                        Ok(self.push(Node::Option(e)))
                    }
                    "array" => {
                        let a = inner
                            .as_array()
                            .filter(|a| a.len() == 2)
                            .ok_or_else(|| err(&sub, "expected [type, length]"))?;
                        let len = a[1]
                            .as_u64()
                            .filter(|n| *n <= u32::MAX as u64)
                            .ok_or_else(|| err(&format!("{sub}[1]"), "expected an array length"))?
                            as u32;
                        let elem = self.ty(&a[0], &format!("{sub}[0]"))?;
                        if matches!(self.nodes[elem as usize], Node::U(1)) {
                            Ok(self.push(Node::FixedBytes(len)))
                        } else {
                            Ok(self.push(Node::Array { elem, len }))
                        }
                    }
                    "hashMap" | "bTreeMap" => {
                        let a = inner
                            .as_array()
                            .filter(|a| a.len() == 2)
                            .ok_or_else(|| err(&sub, "expected [key type, value type]"))?;
                        let key = self.ty(&a[0], &format!("{sub}[0]"))?;
                        if !matches!(
                            self.nodes[key as usize],
                            Node::U(_)
                                | Node::I(_)
                                | Node::U128
                                | Node::I128
                                | Node::Bool
                                | Node::Pubkey
                                | Node::Str
                        ) {
                            return Err(err(
                                &format!("{sub}[0]"),
                                "map keys must be integers, bool, string or pubkey",
                            ));
                        }
                        let val = self.ty(&a[1], &format!("{sub}[1]"))?;
                        Ok(self.push(Node::Map { key, val }))
                    }
                    "defined" => {
                        let name = match inner {
                            J::String(s) => s.as_str(),
                            J::Object(d) => d.get("name").and_then(J::as_str).ok_or_else(|| {
                                err(&format!("{sub}.name"), "expected a type name")
                            })?,
                            _ => return Err(err(&sub, "expected a type name")),
                        };
                        self.defined
                            .get(name)
                            .copied()
                            .ok_or_else(|| err(&sub, format!("unknown type `{name}`")))
                    }
                    other => Err(err(path, format!("unsupported type `{other}`"))),
                }
            }
            _ => Err(err(path, "expected a type name or a one-key type object")),
        }
    }

    /// `[{"name", "type"}]` → fields.
    fn fields(&mut self, arr: &[J], path: &str) -> Result<Box<[Field]>, SpecError> {
        arr.iter()
            .enumerate()
            .map(|(i, f)| {
                let p = format!("{path}[{i}]");
                let name = str_field(f, "name", &p)?;
                let ty = f
                    .get("type")
                    .ok_or_else(|| err(&format!("{p}.type"), "missing"))?;
                Ok(Field {
                    name: snake_case(name).into(),
                    ty: self.ty(ty, &format!("{p}.type"))?,
                })
            })
            .collect()
    }

    /// A typedef body `{"kind": "struct"|"enum", …}` at `path` (the `type` key).
    fn typedef(&mut self, v: &J, packed: bool, path: &str) -> Result<Node, SpecError> {
        let kind = str_field(v, "kind", path)?;
        match kind {
            "struct" => {
                let fields = array_field(v, "fields", path)?;
                let fpath = format!("{path}.fields");
                // Tuple structs list bare types; named structs list {"name","type"} objects.
                if fields.iter().all(|f| f.get("name").is_some()) {
                    Ok(Node::Struct {
                        fields: self.fields(fields, &fpath)?,
                        packed,
                    })
                } else {
                    let elems = fields
                        .iter()
                        .enumerate()
                        .map(|(i, t)| self.ty(t, &format!("{fpath}[{i}]")))
                        .collect::<Result<_, _>>()?;
                    Ok(Node::Tuple { elems, packed })
                }
            }
            "enum" => {
                let vs = array_field(v, "variants", path)?;
                if vs.is_empty() || vs.len() > 256 {
                    return Err(err(
                        &format!("{path}.variants"),
                        "expected 1 to 256 variants",
                    ));
                }
                let mut variants = Vec::with_capacity(vs.len());
                for (i, var) in vs.iter().enumerate() {
                    let p = format!("{path}.variants[{i}]");
                    let name: Arc<str> = str_field(var, "name", &p)?.into();
                    let fields = array_field(var, "fields", &p)?;
                    let fp = format!("{p}.fields");
                    let kind = if fields.is_empty() {
                        VariantKind::Unit
                    } else if fields.iter().all(|f| f.get("name").is_some()) {
                        VariantKind::Named(self.fields(fields, &fp)?)
                    } else {
                        VariantKind::Tuple(
                            fields
                                .iter()
                                .enumerate()
                                .map(|(j, t)| self.ty(t, &format!("{fp}[{j}]")))
                                .collect::<Result<_, _>>()?,
                        )
                    };
                    variants.push(Variant { name, kind });
                }
                Ok(Node::Enum {
                    variants: variants.into(),
                })
            }
            other => Err(err(
                &format!("{path}.kind"),
                format!("unsupported type kind `{other}` (expected struct or enum)"),
            )),
        }
    }
}

/// Computes (and records in `pods`) the `repr(C)` layout of `node`; errors name `path`.
pub(crate) fn pod_layout(
    nodes: &[Node],
    pods: &mut Vec<Option<Pod>>,
    visiting: &mut Vec<u32>,
    node: u32,
    path: &str,
) -> Result<(u32, u32), SpecError> {
    if let Some(p) = &pods[node as usize] {
        return Ok((p.size, p.align));
    }
    if visiting.contains(&node) {
        return Err(err(
            path,
            "a recursive type cannot have a fixed (bytemuck) layout",
        ));
    }
    let overflow = || err(path, "fixed layout larger than 4 GiB");
    let none: Box<[u32]> = Box::new([]);
    let (size, align, offsets): (u32, u32, Box<[u32]>) = match &nodes[node as usize] {
        Node::U(n) | Node::I(n) => (*n as u32, *n as u32, none),
        // u128 is 16-aligned in the host layout the reference reads bytemuck accounts with.
        Node::U128 | Node::I128 => (16, 16, none),
        Node::F32 => (4, 4, none),
        Node::F64 => (8, 8, none),
        Node::Bool => (1, 1, none),
        Node::Pubkey => (32, 1, none),
        Node::FixedBytes(n) => (*n, 1, none),
        Node::Array { elem, len } => {
            visiting.push(node);
            let (s, a) = pod_layout(nodes, pods, visiting, *elem, path)?;
            visiting.pop();
            (s.checked_mul(*len).ok_or_else(overflow)?, a, none)
        }
        Node::Enum { variants } => {
            if !variants.iter().all(|v| matches!(v.kind, VariantKind::Unit)) {
                return Err(err(
                    path,
                    "an enum with payloads cannot have a fixed (bytemuck) layout",
                ));
            }
            (1, 1, none)
        }
        Node::Struct { fields, packed } => {
            let tys: Vec<u32> = fields.iter().map(|f| f.ty).collect();
            repr_c(nodes, pods, visiting, node, &tys, *packed, path)?
        }
        Node::Tuple { elems, packed } => repr_c(nodes, pods, visiting, node, elems, *packed, path)?,
        Node::Placeholder
        | Node::Str
        | Node::Bytes
        | Node::Vec(_)
        | Node::Option(_)
        | Node::Map { .. } => {
            return Err(err(
                path,
                "variable-length types (string, bytes, vec, option, map) cannot have a fixed (bytemuck) layout",
            ))
        }
    };
    pods[node as usize] = Some(Pod {
        size,
        align,
        offsets,
    });
    Ok((size, align))
}

fn repr_c(
    nodes: &[Node],
    pods: &mut Vec<Option<Pod>>,
    visiting: &mut Vec<u32>,
    node: u32,
    tys: &[u32],
    packed: bool,
    path: &str,
) -> Result<(u32, u32, Box<[u32]>), SpecError> {
    let overflow = || err(path, "fixed layout larger than 4 GiB");
    visiting.push(node);
    let mut offsets = Vec::with_capacity(tys.len());
    let mut at: u32 = 0;
    let mut max_align = 1;
    for &t in tys {
        let (s, a) = pod_layout(nodes, pods, visiting, t, path)?;
        let a = if packed { 1 } else { a };
        max_align = max_align.max(a);
        at = at.checked_next_multiple_of(a).ok_or_else(overflow)?;
        offsets.push(at);
        at = at.checked_add(s).ok_or_else(overflow)?;
    }
    visiting.pop();
    let size = at
        .checked_next_multiple_of(max_align)
        .ok_or_else(overflow)?;
    Ok((size, max_align, offsets.into()))
}

/// Smallest Borsh encoding of each node (cycles count as 0); bounds vec lengths before reading.
pub(crate) fn min_sizes(nodes: &[Node]) -> Vec<u32> {
    fn go(nodes: &[Node], memo: &mut [Option<u32>], visiting: &mut Vec<u32>, n: u32) -> u32 {
        if let Some(s) = memo[n as usize] {
            return s;
        }
        if visiting.contains(&n) {
            return 0;
        }
        visiting.push(n);
        let s = match &nodes[n as usize] {
            Node::Placeholder => 0,
            Node::U(b) | Node::I(b) => *b as u32,
            Node::U128 | Node::I128 => 16,
            Node::F32 => 4,
            Node::F64 => 8,
            Node::Bool => 1,
            Node::Pubkey => 32,
            Node::Str | Node::Bytes | Node::Vec(_) | Node::Map { .. } => 4,
            Node::FixedBytes(n) => *n,
            Node::Array { elem, len } => go(nodes, memo, visiting, *elem).saturating_mul(*len),
            Node::Option(_) => 1,
            Node::Struct { fields, .. } => fields.iter().fold(0u32, |a, f| {
                a.saturating_add(go(nodes, memo, visiting, f.ty))
            }),
            Node::Tuple { elems, .. } => elems
                .iter()
                .fold(0u32, |a, e| a.saturating_add(go(nodes, memo, visiting, *e))),
            Node::Enum { variants } => {
                1 + variants
                    .iter()
                    .map(|v| match &v.kind {
                        VariantKind::Unit => 0,
                        VariantKind::Named(fs) => fs.iter().fold(0u32, |a, f| {
                            a.saturating_add(go(nodes, memo, visiting, f.ty))
                        }),
                        VariantKind::Tuple(es) => es
                            .iter()
                            .fold(0u32, |a, e| a.saturating_add(go(nodes, memo, visiting, *e))),
                    })
                    .min()
                    .unwrap_or(0)
            }
        };
        visiting.pop();
        memo[n as usize] = Some(s);
        s
    }
    let mut memo = vec![None; nodes.len()];
    let mut visiting = Vec::new();
    (0..nodes.len() as u32)
        .map(|n| go(nodes, &mut memo, &mut visiting, n))
        .collect()
}

pub(crate) fn compile(idls: &J) -> Result<IdlSet, SpecError> {
    let list = idls
        .as_array()
        .ok_or_else(|| err("$.idls", "expected an array of IDLs"))?;
    let mut nodes = Vec::new();
    let mut programs = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    let mut event_types = Vec::new();

    for (pi, idl) in list.iter().enumerate() {
        let ip = format!("$.idls[{pi}]");
        if !idl.is_object() {
            return Err(err(&ip, "expected an IDL object"));
        }
        let name: Arc<str> = match idl.get("name").and_then(J::as_str) {
            Some(n) => n.into(),
            None => idl
                .pointer("/metadata/name")
                .and_then(J::as_str)
                .ok_or_else(|| err(&format!("{ip}.name"), "expected the program name"))?
                .into(),
        };
        let (pid_json, pid_path) = match (idl.get("program_id"), idl.get("address")) {
            (Some(v), _) if !v.is_null() => (v, format!("{ip}.program_id")),
            (_, Some(v)) if !v.is_null() => (v, format!("{ip}.address")),
            _ => match idl.pointer("/metadata/address") {
                Some(v) => (v, format!("{ip}.metadata.address")),
                None => return Err(err(&format!("{ip}.program_id"), "expected the program id")),
            },
        };
        let program_id = parse_pubkey(pid_json, &pid_path)?;
        if programs.iter().any(|p: &Program| p.id == program_id) {
            return Err(err(&pid_path, "program listed twice"));
        }
        let disc_size = match idl.get("discriminant_size") {
            None | Some(J::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|n| (1..=8).contains(n))
                    .ok_or_else(|| err(&format!("{ip}.discriminant_size"), "expected 1..=8"))?
                    as usize,
            ),
        };

        // Types: reserve a node per name first so references (also recursive ones) resolve.
        let types = array_field(idl, "types", &ip)?;
        let mut b = Builder {
            nodes: &mut nodes,
            defined: HashMap::new(),
        };
        let mut typedef_nodes = Vec::with_capacity(types.len());
        for (ti, t) in types.iter().enumerate() {
            let tp = format!("{ip}.types[{ti}]");
            let tname = str_field(t, "name", &tp)?;
            let id = b.push(Node::Placeholder);
            if b.defined.insert(tname.to_string(), id).is_some() {
                return Err(err(
                    &format!("{tp}.name"),
                    format!("type `{tname}` defined twice"),
                ));
            }
            typedef_nodes.push(id);
        }
        for (ti, t) in types.iter().enumerate() {
            let tp = format!("{ip}.types[{ti}]");
            let body = t
                .get("type")
                .ok_or_else(|| err(&format!("{tp}.type"), "missing"))?;
            let node = b.typedef(body, repr_packed(Some(t)), &format!("{tp}.type"))?;
            b.nodes[typedef_nodes[ti] as usize] = node;
        }
        let typedef_by_name = |n: &str| {
            types
                .iter()
                .position(|t| t.get("name").and_then(J::as_str) == Some(n))
        };

        let prog_index = programs.len() as u32;
        let mut prog = Program {
            name: name.clone(),
            id: program_id,
            account_discs: Vec::new(),
            ix_discs: Vec::new(),
        };

        for (ai, acc) in array_field(idl, "accounts", &ip)?.iter().enumerate() {
            let ap = format!("{ip}.accounts[{ai}]");
            let aname = str_field(acc, "name", &ap)?;
            let td = typedef_by_name(aname);
            let pod = match is_pod(acc.get("serialization"), &format!("{ap}.serialization"))? {
                Some(p) => p,
                None => match td {
                    Some(i) => is_pod(
                        types[i].get("serialization"),
                        &format!("{ip}.types[{i}].serialization"),
                    )?
                    .unwrap_or(false),
                    None => false,
                },
            };
            let inline = array_field(acc, "fields", &ap)?;
            let inline_type = acc.get("type").filter(|t| t.is_object());
            let root = if !inline.is_empty() {
                let fields = b.fields(inline, &format!("{ap}.fields"))?;
                b.push(Node::Struct {
                    fields,
                    packed: repr_packed(td.map(|i| &types[i])),
                })
            } else if let Some(t) = inline_type {
                let node =
                    b.typedef(t, repr_packed(td.map(|i| &types[i])), &format!("{ap}.type"))?;
                b.push(node)
            } else if let Some(i) = td {
                typedef_nodes[i]
            } else {
                return Err(err(
                    &ap,
                    format!("account `{aname}` has no fields and no type of that name"),
                ));
            };
            let field_names = match &b.nodes[root as usize] {
                Node::Struct { fields, .. } => fields.iter().map(|f| f.name.clone()).collect(),
                _ => {
                    return Err(err(
                        &ap,
                        format!("account `{aname}` must be a struct with named fields"),
                    ))
                }
            };
            let disc = match acc.get("discriminator") {
                Some(d @ J::Array(a)) if !a.is_empty() => {
                    byte_array(d, &format!("{ap}.discriminator"))?
                }
                _ => anchor_discriminator("account", aname),
            };
            let et = event_types.len() as u32;
            push_disc(
                &mut prog.account_discs,
                &disc,
                et,
                &format!("{ap}.discriminator"),
            )?;
            event_types.push(EventType {
                name: format!("{name}::{aname}State").into(),
                program: name.clone(),
                program_id,
                is_account: true,
                field_names,
                account_names: Vec::new(),
            });
            items.push(Item {
                program: prog_index,
                disc,
                root,
                pod,
                accounts: Vec::new(),
                required_accounts: 0,
                path: ap,
            });
        }

        for (xi, ix) in array_field(idl, "instructions", &ip)?.iter().enumerate() {
            let xp = format!("{ip}.instructions[{xi}]");
            let xname = str_field(ix, "name", &xp)?;
            let fields = b.fields(array_field(ix, "args", &xp)?, &format!("{xp}.args"))?;
            let field_names = fields.iter().map(|f| f.name.clone()).collect();
            let root = b.push(Node::Struct {
                fields,
                packed: false,
            });
            let disc = match (ix.get("discriminator"), ix.get("discriminant")) {
                (Some(d @ J::Array(a)), _) if !a.is_empty() => {
                    byte_array(d, &format!("{xp}.discriminator"))?
                }
                (_, Some(d)) if !d.is_null() => {
                    let dp = format!("{xp}.discriminant.value");
                    let v = d
                        .get("value")
                        .and_then(J::as_u64)
                        .ok_or_else(|| err(&dp, "expected an integer"))?;
                    let size = disc_size.unwrap_or(1);
                    if size < 8 && v >> (8 * size) != 0 {
                        return Err(err(
                            &dp,
                            format!("does not fit the {size}-byte discriminant"),
                        ));
                    }
                    v.to_le_bytes()[..size].to_vec()
                }
                _ => anchor_discriminator("global", xname),
            };
            let mut accounts = Vec::new();
            let mut required = 0;
            for (ci, a) in array_field(ix, "accounts", &xp)?.iter().enumerate() {
                let cp = format!("{xp}.accounts[{ci}]");
                let cname: Arc<str> = str_field(a, "name", &cp)?.into();
                if a.get("accounts").is_some() {
                    return Err(err(&cp, "nested account groups are not supported"));
                }
                let optional = a.get("optional").and_then(J::as_bool).unwrap_or(false)
                    || a.get("isOptional").and_then(J::as_bool).unwrap_or(false);
                let address = match a.get("address") {
                    None | Some(J::Null) => None,
                    Some(v) => Some(parse_pubkey(v, &format!("{cp}.address"))?),
                };
                if !optional {
                    required = ci + 1;
                }
                accounts.push(ItemAccount {
                    name: cname,
                    address,
                });
            }
            let et = event_types.len() as u32;
            push_disc(
                &mut prog.ix_discs,
                &disc,
                et,
                &format!("{xp}.discriminator"),
            )?;
            event_types.push(EventType {
                name: format!("{name}::{}IxState", pascal_case(xname)).into(),
                program: name.clone(),
                program_id,
                is_account: false,
                field_names,
                account_names: accounts.iter().map(|a| a.name.clone()).collect(),
            });
            items.push(Item {
                program: prog_index,
                disc,
                root,
                pod: false,
                accounts,
                required_accounts: required,
                path: xp,
            });
        }
        programs.push(prog);
    }

    if nodes.iter().any(|n| matches!(n, Node::Placeholder)) {
        return Err(err("$.idls", "internal: unresolved type"));
    }
    let mut pods = vec![None; nodes.len()];
    let mut fixed_sizes = Vec::with_capacity(items.len());
    for it in &items {
        if it.pod {
            let (size, _) = pod_layout(&nodes, &mut pods, &mut Vec::new(), it.root, &it.path)?;
            fixed_sizes.push(Some(size as usize));
        } else {
            fixed_sizes.push(borsh_fixed_size(&nodes, it.root, 0));
        }
    }
    let min_sizes = min_sizes(&nodes);
    Ok(IdlSet {
        nodes,
        pods,
        min_sizes,
        programs,
        items,
        fixed_sizes,
        event_types,
    })
}

/// The Borsh size of `node` if it never varies.
pub(crate) fn borsh_fixed_size(nodes: &[Node], node: u32, depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let d = depth + 1;
    Some(match &nodes[node as usize] {
        Node::U(b) | Node::I(b) => *b as usize,
        Node::U128 | Node::I128 => 16,
        Node::F32 => 4,
        Node::F64 => 8,
        Node::Bool => 1,
        Node::Pubkey => 32,
        Node::FixedBytes(n) => *n as usize,
        Node::Array { elem, len } => {
            borsh_fixed_size(nodes, *elem, d)?.checked_mul(*len as usize)?
        }
        Node::Struct { fields, .. } => fields.iter().try_fold(0usize, |a, f| {
            a.checked_add(borsh_fixed_size(nodes, f.ty, d)?)
        })?,
        Node::Tuple { elems, .. } => elems.iter().try_fold(0usize, |a, e| {
            a.checked_add(borsh_fixed_size(nodes, *e, d)?)
        })?,
        Node::Enum { variants } if variants.iter().all(|v| matches!(v.kind, VariantKind::Unit)) => {
            1
        }
        _ => return None,
    })
}

fn push_disc(table: &mut Vec<Disc>, disc: &[u8], et: u32, path: &str) -> Result<(), SpecError> {
    if disc.is_empty() || disc.len() > 8 {
        return Err(err(path, "expected a discriminator of 1 to 8 bytes"));
    }
    let disc = Disc::new(disc, et);
    // A discriminator that is a prefix of another would make matching ambiguous.
    if table.iter().any(|d| d.overlaps(&disc)) {
        return Err(err(
            path,
            "discriminator collides with another of the same program",
        ));
    }
    // Kept sorted by length, then bytes: a program whose discriminators are all one length is
    // searched by halves (`IdlSet::match_disc`).
    let at = table.partition_point(|d| d.sort_key() < disc.sort_key());
    table.insert(at, disc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert_like_the_reference_generator() {
        assert_eq!(snake_case("isAuto"), "is_auto");
        assert_eq!(snake_case("buffer_a"), "buffer_a");
        assert_eq!(snake_case("Amount"), "amount");
        assert_eq!(snake_case("topMinerReward"), "top_miner_reward");
        assert_eq!(pascal_case("claimSol"), "ClaimSol");
        assert_eq!(pascal_case("set_admin"), "SetAdmin");
        assert_eq!(pascal_case("deploy"), "Deploy");
    }

    #[test]
    fn repr_c_layout_aligns_fields_and_rounds_the_size() {
        let nodes = vec![
            Node::U(1),
            Node::U(8),
            Node::U128,
            Node::Struct {
                fields: vec![
                    Field {
                        name: "a".into(),
                        ty: 0,
                    },
                    Field {
                        name: "b".into(),
                        ty: 1,
                    },
                    Field {
                        name: "c".into(),
                        ty: 0,
                    },
                ]
                .into(),
                packed: false,
            },
            Node::Struct {
                fields: vec![
                    Field {
                        name: "a".into(),
                        ty: 0,
                    },
                    Field {
                        name: "b".into(),
                        ty: 1,
                    },
                ]
                .into(),
                packed: true,
            },
            Node::Array { elem: 3, len: 2 },
            Node::Tuple {
                elems: vec![0, 2].into(),
                packed: false,
            },
        ];
        let mut pods = vec![None; nodes.len()];
        assert_eq!(
            pod_layout(&nodes, &mut pods, &mut vec![], 3, "$").unwrap(),
            (24, 8)
        );
        assert_eq!(&*pods[3].as_ref().unwrap().offsets, &[0, 8, 16]);
        assert_eq!(
            pod_layout(&nodes, &mut pods, &mut vec![], 4, "$").unwrap(),
            (9, 1)
        );
        assert_eq!(
            pod_layout(&nodes, &mut pods, &mut vec![], 5, "$").unwrap(),
            (48, 8)
        );
        assert_eq!(
            pod_layout(&nodes, &mut pods, &mut vec![], 6, "$").unwrap(),
            (32, 16)
        );
        assert_eq!(&*pods[6].as_ref().unwrap().offsets, &[0, 16]);
    }
}
