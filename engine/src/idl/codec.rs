//! Bytes ⇄ [`Value`] over the compiled type graph, in both layouts.
//!
//! Borsh: little-endian, sequential, u32 length prefixes, u8 option and enum tags. Pod (bytemuck,
//! `repr(C)`): every field at the offset its alignment gives it, padding skipped when reading and
//! zeroed when writing; only fixed-size types. Decoding writes into an existing [`Value`] and reuses
//! its buffers when the shape is the same as last time (arrays, objects, uniquely owned byte
//! buffers), so steady-state decoding of fixed layouts does not allocate.

use std::sync::Arc;

use super::compile::{Node, VariantKind, MAX_DEPTH};
use super::{DecodeError, EncodeError, IdlSet, TagKind};
use crate::value::Value;

/// Elements a length prefix may announce for an element type that occupies no bytes.
pub(crate) const MAX_ZERO_SIZED_ELEMS: u64 = 1 << 16;

pub(crate) struct Reader<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    pub event_type: u32,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.data.len() => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => Err(DecodeError::ShortData {
                event_type: self.event_type,
                offset: self.pos,
                needed: n,
                len: self.data.len(),
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn bad_tag(&self, at: usize, tag: u32, kind: TagKind) -> DecodeError {
        DecodeError::InvalidTag {
            event_type: self.event_type,
            offset: at,
            tag,
            kind,
        }
    }
}

/// Writes a decoded scalar into `out`. The decoder refills the same slots update after update,
/// almost always with a scalar of the same kind: an old scalar is overwritten without the call
/// that would drop it (it owns nothing).
#[inline(always)]
fn put(out: &mut Value, new: Value) {
    use Value::*;
    match out {
        Null | Bool(_) | I64(_) | U64(_) | I128(_) | U128(_) | F64(_) | Pubkey(_) => {
            std::mem::forget(std::mem::replace(out, new))
        }
        _ => *out = new,
    }
}

fn set_bytes(out: &mut Value, src: &[u8]) {
    if let Value::Bytes(b) = out {
        if b.len() == src.len() {
            if let Some(m) = Arc::get_mut(b) {
                m.copy_from_slice(src);
                return;
            }
        }
    }
    *out = Value::Bytes(Arc::from(src));
}

/// Makes `out` an array of `len` elements, reusing its buffer; returns the elements.
fn array_slots(out: &mut Value, len: usize) -> &mut Vec<Value> {
    if !matches!(out, Value::Array(_)) {
        *out = Value::Array(Vec::with_capacity(len));
    }
    let Value::Array(v) = out else { unreachable!() };
    v.resize_with(len, Value::default);
    v
}

/// Makes `out` an object with exactly these field names, reusing it if it already has them.
fn object_slots<'v>(
    out: &'v mut Value,
    names: &mut dyn ExactSizeIterator<Item = &Arc<str>>,
) -> &'v mut Vec<(Arc<str>, Value)> {
    let n = names.len();
    let reuse = match &*out {
        Value::Object(fs) => fs.len() == n,
        _ => false,
    };
    if !reuse {
        *out = Value::Object(Vec::with_capacity(n));
    }
    let Value::Object(fs) = out else {
        unreachable!()
    };
    if reuse {
        for (slot, name) in fs.iter_mut().zip(names) {
            if !Arc::ptr_eq(&slot.0, name) {
                slot.0 = name.clone();
            }
        }
    } else {
        fs.extend(names.map(|k| (k.clone(), Value::Null)));
    }
    fs
}

impl IdlSet {
    /// Reads one value of `node` in Borsh layout.
    pub(crate) fn read_borsh(
        &self,
        node: u32,
        r: &mut Reader,
        out: &mut Value,
        depth: u32,
    ) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep {
                event_type: r.event_type,
                offset: r.pos,
            });
        }
        let d = depth + 1;
        match &self.nodes[node as usize] {
            Node::Placeholder => unreachable!("resolved at load"),
            Node::U(1) => put(out, Value::U64(r.u8()? as u64)),
            Node::U(2) => put(out, Value::U64(u16::from_le_bytes(r.array()?) as u64)),
            Node::U(4) => put(out, Value::U64(r.u32()? as u64)),
            Node::U(_) => put(out, Value::U64(u64::from_le_bytes(r.array()?))),
            Node::I(1) => put(out, Value::I64(r.u8()? as i8 as i64)),
            Node::I(2) => put(out, Value::I64(i16::from_le_bytes(r.array()?) as i64)),
            Node::I(4) => put(out, Value::I64(i32::from_le_bytes(r.array()?) as i64)),
            Node::I(_) => put(out, Value::I64(i64::from_le_bytes(r.array()?))),
            Node::U128 => put(out, Value::U128(u128::from_le_bytes(r.array()?))),
            Node::I128 => put(out, Value::I128(i128::from_le_bytes(r.array()?))),
            Node::F32 => put(out, Value::F64(f32::from_le_bytes(r.array()?) as f64)),
            Node::F64 => put(out, Value::F64(f64::from_le_bytes(r.array()?))),
            Node::Bool => {
                let at = r.pos;
                *out = match r.u8()? {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    t => return Err(r.bad_tag(at, t as u32, TagKind::Bool)),
                }
            }
            Node::Pubkey => put(out, Value::Pubkey(r.array()?)),
            Node::Str => {
                let len = r.u32()? as usize;
                let at = r.pos;
                let bytes = r.take(len)?;
                let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 {
                    event_type: r.event_type,
                    offset: at,
                })?;
                match out {
                    Value::Str(old) if &**old == s => {}
                    _ => *out = Value::Str(Arc::from(s)),
                }
            }
            Node::Bytes => {
                let len = r.u32()? as usize;
                let bytes = r.take(len)?;
                set_bytes(out, bytes);
            }
            Node::FixedBytes(n) => {
                let bytes = r.take(*n as usize)?;
                set_bytes(out, bytes);
            }
            Node::Array { elem, len } => {
                self.check_len(*elem, *len as u64, r)?;
                let slots = array_slots(out, *len as usize);
                if !self.read_scalars(*elem, r, slots)? {
                    for v in slots.iter_mut() {
                        self.read_borsh(*elem, r, v, d)?;
                    }
                }
            }
            Node::Vec(elem) => {
                let len = r.u32()? as u64;
                self.check_len(*elem, len, r)?;
                let slots = array_slots(out, len as usize);
                if !self.read_scalars(*elem, r, slots)? {
                    for v in slots.iter_mut() {
                        self.read_borsh(*elem, r, v, d)?;
                    }
                }
            }
            Node::Option(inner) => {
                let at = r.pos;
                match r.u8()? {
                    0 => *out = Value::Null,
                    1 => self.read_borsh(*inner, r, out, d)?,
                    t => return Err(r.bad_tag(at, t as u32, TagKind::Option)),
                }
            }
            Node::Map { key, val } => {
                let len = r.u32()? as u64;
                let min =
                    self.min_sizes[*key as usize] as u64 + self.min_sizes[*val as usize] as u64;
                self.check_min(min, len, r)?;
                let mut fields = Vec::with_capacity(len as usize);
                let mut k = Value::Null;
                for _ in 0..len {
                    self.read_borsh(*key, r, &mut k, d)?;
                    let mut v = Value::Null;
                    self.read_borsh(*val, r, &mut v, d)?;
                    fields.push((map_key_string(&k), v));
                }
                *out = Value::Object(fields);
            }
            Node::Struct { fields, .. } => {
                let slots = object_slots(out, &mut fields.iter().map(|f| &f.name));
                for (slot, f) in slots.iter_mut().zip(fields.iter()) {
                    self.read_borsh(f.ty, r, &mut slot.1, d)?;
                }
            }
            Node::Tuple { elems, .. } => {
                let slots = array_slots(out, elems.len());
                for (v, e) in slots.iter_mut().zip(elems.iter()) {
                    self.read_borsh(*e, r, v, d)?;
                }
            }
            Node::Enum { variants } => {
                let at = r.pos;
                let tag = r.u8()?;
                let var = variants
                    .get(tag as usize)
                    .ok_or_else(|| r.bad_tag(at, tag as u32, TagKind::Enum))?;
                match &var.kind {
                    VariantKind::Unit => match out {
                        Value::Str(s) if Arc::ptr_eq(s, &var.name) => {}
                        _ => *out = Value::Str(var.name.clone()),
                    },
                    VariantKind::Named(fs) => {
                        let mut inner = Value::Null;
                        let slots = object_slots(&mut inner, &mut fs.iter().map(|f| &f.name));
                        for (slot, f) in slots.iter_mut().zip(fs.iter()) {
                            self.read_borsh(f.ty, r, &mut slot.1, d)?;
                        }
                        *out = Value::Object(vec![(var.name.clone(), inner)]);
                    }
                    VariantKind::Tuple(es) => {
                        let mut items = Vec::with_capacity(es.len());
                        for e in es.iter() {
                            let mut v = Value::Null;
                            self.read_borsh(*e, r, &mut v, d)?;
                            items.push(v);
                        }
                        // serde's external tagging: a one-field tuple variant is a newtype.
                        let inner = if items.len() == 1 {
                            items.pop().expect("one item")
                        } else {
                            Value::Array(items)
                        };
                        *out = Value::Object(vec![(var.name.clone(), inner)]);
                    }
                }
            }
        }
        Ok(())
    }

    /// Fast path for arrays of fixed-width integers (`[u64; 25]` in ORE): one bounds check, then a
    /// tight loop. `false` when `elem` is not such a type.
    fn read_scalars(
        &self,
        elem: u32,
        r: &mut Reader,
        slots: &mut [Value],
    ) -> Result<bool, DecodeError> {
        fn fill<const N: usize>(
            r: &mut Reader,
            slots: &mut [Value],
            f: impl Fn([u8; N]) -> Value,
        ) -> Result<bool, DecodeError> {
            let bytes = r.take(N * slots.len())?;
            for (v, c) in slots.iter_mut().zip(bytes.chunks_exact(N)) {
                put(v, f(c.try_into().expect("chunks of N")));
            }
            Ok(true)
        }
        match self.nodes[elem as usize] {
            Node::U(8) => fill(r, slots, |b: [u8; 8]| Value::U64(u64::from_le_bytes(b))),
            Node::I(8) => fill(r, slots, |b: [u8; 8]| Value::I64(i64::from_le_bytes(b))),
            Node::U(4) => fill(r, slots, |b: [u8; 4]| {
                Value::U64(u32::from_le_bytes(b) as u64)
            }),
            Node::I(4) => fill(r, slots, |b: [u8; 4]| {
                Value::I64(i32::from_le_bytes(b) as i64)
            }),
            Node::U(2) => fill(r, slots, |b: [u8; 2]| {
                Value::U64(u16::from_le_bytes(b) as u64)
            }),
            Node::I(2) => fill(r, slots, |b: [u8; 2]| {
                Value::I64(i16::from_le_bytes(b) as i64)
            }),
            _ => Ok(false),
        }
    }

    /// A length prefix must fit the remaining bytes before anything is allocated for it.
    fn check_len(&self, elem: u32, len: u64, r: &Reader) -> Result<(), DecodeError> {
        self.check_min(self.min_sizes[elem as usize] as u64, len, r)
    }

    fn check_min(&self, min: u64, len: u64, r: &Reader) -> Result<(), DecodeError> {
        let remaining = (r.data.len() - r.pos) as u64;
        if min == 0 {
            if len > MAX_ZERO_SIZED_ELEMS {
                return Err(DecodeError::TooManyElements {
                    event_type: r.event_type,
                    offset: r.pos,
                    len,
                });
            }
        } else if len.saturating_mul(min) > remaining {
            return Err(DecodeError::ShortData {
                event_type: r.event_type,
                offset: r.pos,
                needed: len.saturating_mul(min).min(usize::MAX as u64) as usize,
                len: r.data.len(),
            });
        }
        Ok(())
    }

    /// Reads one value of `node` in Pod layout from `r.data[at..]`; the caller checked the total
    /// size, so every read is in bounds.
    pub(crate) fn read_pod(
        &self,
        node: u32,
        r: &mut Reader,
        at: usize,
        out: &mut Value,
        depth: u32,
    ) -> Result<(), DecodeError> {
        let d = depth + 1;
        match &self.nodes[node as usize] {
            Node::Array { elem, len } => {
                let size = self.pods[*elem as usize]
                    .as_ref()
                    .expect("pod layout compiled")
                    .size as usize;
                let slots = array_slots(out, *len as usize);
                r.pos = at;
                if self.read_scalars(*elem, r, slots)? {
                    return Ok(());
                }
                for (i, v) in slots.iter_mut().enumerate() {
                    self.read_pod(*elem, r, at + i * size, v, d)?;
                }
            }
            Node::Struct { fields, .. } => {
                let pod = self.pods[node as usize]
                    .as_ref()
                    .expect("pod layout compiled");
                let slots = object_slots(out, &mut fields.iter().map(|f| &f.name));
                for ((slot, f), off) in slots.iter_mut().zip(fields.iter()).zip(pod.offsets.iter())
                {
                    self.read_pod(f.ty, r, at + *off as usize, &mut slot.1, d)?;
                }
            }
            Node::Tuple { elems, .. } => {
                let pod = self.pods[node as usize]
                    .as_ref()
                    .expect("pod layout compiled");
                let slots = array_slots(out, elems.len());
                for ((v, e), off) in slots.iter_mut().zip(elems.iter()).zip(pod.offsets.iter()) {
                    self.read_pod(*e, r, at + *off as usize, v, d)?;
                }
            }
            // Scalars, byte arrays and unit enums read the same bytes in both layouts.
            _ => {
                r.pos = at;
                self.read_borsh(node, r, out, depth)?;
            }
        }
        Ok(())
    }

    /// Writes `v` as `node` in Borsh layout (or Pod when `pod`, at `base` = start of the record).
    pub(crate) fn write(
        &self,
        node: u32,
        v: &Value,
        pod: bool,
        out: &mut Vec<u8>,
        depth: u32,
    ) -> Result<(), EncodeError> {
        if depth > MAX_DEPTH {
            return Err(EncodeError::TooDeep);
        }
        let d = depth + 1;
        let shape = |expected: &'static str| EncodeError::Shape { expected };
        match (&self.nodes[node as usize], v) {
            (Node::U(n), Value::U64(x)) => {
                let n = *n as usize;
                if n < 8 && *x >> (8 * n) != 0 {
                    return Err(EncodeError::OutOfRange);
                }
                out.extend_from_slice(&x.to_le_bytes()[..n]);
            }
            (Node::I(n), Value::I64(x)) => {
                let n = *n as usize;
                let bits = 8 * n as u32;
                if n < 8 && (*x < -(1i64 << (bits - 1)) || *x >= 1i64 << (bits - 1)) {
                    return Err(EncodeError::OutOfRange);
                }
                out.extend_from_slice(&x.to_le_bytes()[..n]);
            }
            (Node::U128, Value::U128(x)) => out.extend_from_slice(&x.to_le_bytes()),
            (Node::I128, Value::I128(x)) => out.extend_from_slice(&x.to_le_bytes()),
            (Node::F32, Value::F64(x)) => out.extend_from_slice(&(*x as f32).to_le_bytes()),
            (Node::F64, Value::F64(x)) => out.extend_from_slice(&x.to_le_bytes()),
            (Node::Bool, Value::Bool(b)) => out.push(*b as u8),
            (Node::Pubkey, Value::Pubkey(k)) => out.extend_from_slice(k),
            (Node::Str, Value::Str(s)) => {
                write_len(s.len(), out)?;
                out.extend_from_slice(s.as_bytes());
            }
            (Node::Bytes, Value::Bytes(b)) => {
                write_len(b.len(), out)?;
                out.extend_from_slice(b);
            }
            (Node::FixedBytes(n), Value::Bytes(b)) if b.len() == *n as usize => {
                out.extend_from_slice(b)
            }
            (Node::FixedBytes(_), _) => return Err(shape("bytes of the array's length")),
            (Node::Array { elem, len }, Value::Array(a)) if a.len() == *len as usize => {
                for x in a {
                    self.write(*elem, x, pod, out, d)?;
                }
            }
            (Node::Array { .. }, _) => return Err(shape("an array of the IDL's length")),
            (Node::Vec(elem), Value::Array(a)) => {
                write_len(a.len(), out)?;
                for x in a {
                    self.write(*elem, x, pod, out, d)?;
                }
            }
            (Node::Option(_), Value::Null) => out.push(0),
            (Node::Option(inner), x) => {
                out.push(1);
                self.write(*inner, x, pod, out, d)?;
            }
            (Node::Map { key, val }, Value::Object(fs)) => {
                write_len(fs.len(), out)?;
                // Borsh writes maps sorted by key.
                let mut entries = Vec::with_capacity(fs.len());
                for (k, x) in fs {
                    let kv = self
                        .parse_map_key(*key, k)
                        .ok_or(shape("a map key of the IDL's type"))?;
                    entries.push((kv, x));
                }
                entries.sort_by(|a, b| key_cmp(&a.0, &b.0));
                for (kv, x) in entries {
                    self.write(*key, &kv, pod, out, d)?;
                    self.write(*val, x, pod, out, d)?;
                }
            }
            (Node::Struct { fields, .. }, Value::Object(fs)) => {
                let start = out.len();
                let offsets = self.pod_offsets(node, pod);
                for (i, f) in fields.iter().enumerate() {
                    let x = fs
                        .iter()
                        .find(|(k, _)| **k == *f.name)
                        .map(|(_, x)| x)
                        .ok_or(EncodeError::MissingField {
                            name: f.name.clone(),
                        })?;
                    if let Some(offs) = offsets {
                        out.resize(start + offs[i] as usize, 0);
                    }
                    self.write(f.ty, x, pod, out, d)?;
                }
                self.pad_to_size(node, pod, start, out);
            }
            (Node::Tuple { elems, .. }, Value::Array(a)) if a.len() == elems.len() => {
                let start = out.len();
                let offsets = self.pod_offsets(node, pod);
                for (i, (e, x)) in elems.iter().zip(a).enumerate() {
                    if let Some(offs) = offsets {
                        out.resize(start + offs[i] as usize, 0);
                    }
                    self.write(*e, x, pod, out, d)?;
                }
                self.pad_to_size(node, pod, start, out);
            }
            (Node::Enum { variants }, Value::Str(s)) => {
                let i = variants
                    .iter()
                    .position(|v| *v.name == **s && matches!(v.kind, VariantKind::Unit))
                    .ok_or(shape("a unit variant name"))?;
                out.push(i as u8);
            }
            (Node::Enum { variants }, Value::Object(fs)) if fs.len() == 1 => {
                let (name, inner) = &fs[0];
                let i = variants
                    .iter()
                    .position(|v| *v.name == **name)
                    .ok_or(shape("a variant name"))?;
                out.push(i as u8);
                match (&variants[i].kind, inner) {
                    (VariantKind::Named(fields), Value::Object(vals)) => {
                        for f in fields.iter() {
                            let x = vals
                                .iter()
                                .find(|(k, _)| **k == *f.name)
                                .map(|(_, x)| x)
                                .ok_or(EncodeError::MissingField {
                                    name: f.name.clone(),
                                })?;
                            self.write(f.ty, x, pod, out, d)?;
                        }
                    }
                    (VariantKind::Tuple(es), x) if es.len() == 1 => {
                        self.write(es[0], x, pod, out, d)?
                    }
                    (VariantKind::Tuple(es), Value::Array(a)) if a.len() == es.len() => {
                        for (e, x) in es.iter().zip(a) {
                            self.write(*e, x, pod, out, d)?;
                        }
                    }
                    _ => return Err(shape("the variant's payload")),
                }
            }
            (n, _) => return Err(shape(node_kind(n))),
        }
        Ok(())
    }

    fn pod_offsets(&self, node: u32, pod: bool) -> Option<&[u32]> {
        if !pod {
            return None;
        }
        self.pods[node as usize].as_ref().map(|p| &*p.offsets)
    }

    fn pad_to_size(&self, node: u32, pod: bool, start: usize, out: &mut Vec<u8>) {
        if pod {
            if let Some(p) = &self.pods[node as usize] {
                out.resize(start + p.size as usize, 0);
            }
        }
    }

    /// A map key string back to the key type's value.
    pub(crate) fn parse_map_key(&self, key: u32, s: &str) -> Option<Value> {
        Some(match &self.nodes[key as usize] {
            Node::U(_) => Value::U64(s.parse().ok()?),
            Node::I(_) => Value::I64(s.parse().ok()?),
            Node::U128 => Value::U128(s.parse().ok()?),
            Node::I128 => Value::I128(s.parse().ok()?),
            Node::Bool => Value::Bool(s.parse().ok()?),
            Node::Str => Value::Str(s.into()),
            Node::Pubkey => {
                let mut k = [0u8; 32];
                match bs58::decode(s).onto(&mut k) {
                    Ok(32) => Value::Pubkey(k),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }
}

/// Orders map keys as Borsh does (by the key type's own order).
pub(crate) fn key_cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::U64(x), Value::U64(y)) => x.cmp(y),
        (Value::I64(x), Value::I64(y)) => x.cmp(y),
        (Value::U128(x), Value::U128(y)) => x.cmp(y),
        (Value::I128(x), Value::I128(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        (Value::Pubkey(x), Value::Pubkey(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

impl IdlSet {
    /// Sorts map entries (stringified keys) into Borsh's canonical key order.
    pub(crate) fn sort_map(&self, key: u32, fields: &mut [(Arc<str>, Value)]) {
        fields.sort_by(|a, b| {
            match (self.parse_map_key(key, &a.0), self.parse_map_key(key, &b.0)) {
                (Some(x), Some(y)) => key_cmp(&x, &y),
                _ => a.0.cmp(&b.0),
            }
        });
    }
}

/// A map key as the reference renders it (`k.to_string()`).
pub(crate) fn map_key_string(k: &Value) -> Arc<str> {
    match k {
        Value::Str(s) => s.clone(),
        Value::U64(n) => n.to_string().into(),
        Value::I64(n) => n.to_string().into(),
        Value::U128(n) => n.to_string().into(),
        Value::I128(n) => n.to_string().into(),
        Value::Bool(b) => b.to_string().into(),
        Value::Pubkey(p) => crate::b58::encode(p).into(),
        other => other.to_json().to_string().into(),
    }
}

fn write_len(len: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let n = u32::try_from(len).map_err(|_| EncodeError::OutOfRange)?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

pub(crate) fn node_kind(n: &Node) -> &'static str {
    match n {
        Node::Placeholder => "a resolved type",
        Node::U(_) => "an unsigned integer",
        Node::I(_) => "a signed integer",
        Node::U128 => "a u128",
        Node::I128 => "an i128",
        Node::F32 | Node::F64 => "a float",
        Node::Bool => "a bool",
        Node::Pubkey => "a public key",
        Node::Str => "a string",
        Node::Bytes | Node::FixedBytes(_) => "bytes",
        Node::Array { .. } | Node::Vec(_) | Node::Tuple { .. } => "an array",
        Node::Option(_) => "an optional value",
        Node::Map { .. } | Node::Struct { .. } => "an object",
        Node::Enum { .. } => "an enum variant",
    }
}
