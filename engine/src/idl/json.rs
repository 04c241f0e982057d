//! The reference's JSON event shapes ⇄ [`Value`], guided by the compiled types.
//!
//! Rendering is [`Value::to_json`]; this module parses the other way, so the differential test can
//! feed the same record to both interpreters and the encoder can build bytes from JSON.

use serde_json::Value as J;

use super::compile::{Node, VariantKind, MAX_DEPTH};
use super::IdlSet;
use crate::value::Value;

/// Where a JSON value did not match the IDL: a path relative to the event and what was expected.
#[derive(Debug)]
pub(crate) struct JsonMismatch {
    /// Segments from the innermost outwards; reversed when rendered.
    segments: Vec<String>,
    pub expected: &'static str,
}

impl JsonMismatch {
    pub(crate) fn new(expected: &'static str) -> Self {
        JsonMismatch {
            segments: Vec::new(),
            expected,
        }
    }

    pub(crate) fn within(mut self, seg: impl Into<String>) -> Self {
        self.segments.push(seg.into());
        self
    }

    /// `$.data.amount`, `$.fields[3]`, …
    pub(crate) fn path(&self) -> String {
        let mut p = String::from("$");
        for s in self.segments.iter().rev() {
            if s.starts_with('[') {
                p.push_str(s);
            } else {
                p.push('.');
                p.push_str(s);
            }
        }
        p
    }
}

fn uint(j: &J, bits: u32) -> Result<u64, JsonMismatch> {
    let n = j
        .as_u64()
        .ok_or_else(|| JsonMismatch::new("an unsigned integer"))?;
    if bits < 64 && n >> bits != 0 {
        return Err(JsonMismatch::new("an unsigned integer in the type's range"));
    }
    Ok(n)
}

fn sint(j: &J, bits: u32) -> Result<i64, JsonMismatch> {
    let n = j.as_i64().ok_or_else(|| JsonMismatch::new("an integer"))?;
    if bits < 64 && (n < -(1i64 << (bits - 1)) || n >= 1i64 << (bits - 1)) {
        return Err(JsonMismatch::new("an integer in the type's range"));
    }
    Ok(n)
}

fn bytes(j: &J) -> Result<Vec<u8>, JsonMismatch> {
    let a = j
        .as_array()
        .ok_or_else(|| JsonMismatch::new("an array of bytes"))?;
    a.iter()
        .enumerate()
        .map(|(i, b)| {
            b.as_u64()
                .filter(|b| *b <= 255)
                .map(|b| b as u8)
                .ok_or_else(|| JsonMismatch::new("a byte (0..=255)").within(format!("[{i}]")))
        })
        .collect()
}

pub(crate) fn pubkey(j: &J) -> Result<[u8; 32], JsonMismatch> {
    let s = j
        .as_str()
        .ok_or_else(|| JsonMismatch::new("a base58 public key"))?;
    let mut k = [0u8; 32];
    match bs58::decode(s).onto(&mut k) {
        Ok(32) => Ok(k),
        _ => Err(JsonMismatch::new("a base58 public key")),
    }
}

impl IdlSet {
    /// Parses the reference JSON form of a `node` value.
    pub(crate) fn value_from_json(
        &self,
        node: u32,
        j: &J,
        depth: u32,
    ) -> Result<Value, JsonMismatch> {
        if depth > MAX_DEPTH {
            return Err(JsonMismatch::new("less nesting"));
        }
        let d = depth + 1;
        Ok(match &self.nodes[node as usize] {
            Node::Placeholder => unreachable!("resolved at load"),
            Node::U(n) => Value::U64(uint(j, 8 * *n as u32)?),
            Node::I(n) => Value::I64(sint(j, 8 * *n as u32)?),
            Node::U128 => Value::U128(match j {
                J::String(s) => s
                    .parse()
                    .map_err(|_| JsonMismatch::new("a decimal u128 string"))?,
                _ => uint(j, 64)? as u128,
            }),
            Node::I128 => Value::I128(match j {
                J::String(s) => s
                    .parse()
                    .map_err(|_| JsonMismatch::new("a decimal i128 string"))?,
                _ => sint(j, 64)? as i128,
            }),
            Node::F32 | Node::F64 => {
                Value::F64(j.as_f64().ok_or_else(|| JsonMismatch::new("a number"))?)
            }
            Node::Bool => Value::Bool(j.as_bool().ok_or_else(|| JsonMismatch::new("a bool"))?),
            Node::Pubkey => Value::Pubkey(pubkey(j)?),
            Node::Str => Value::Str(
                j.as_str()
                    .ok_or_else(|| JsonMismatch::new("a string"))?
                    .into(),
            ),
            Node::Bytes => Value::Bytes(bytes(j)?.into()),
            Node::FixedBytes(n) => {
                let b = bytes(j)?;
                if b.len() != *n as usize {
                    return Err(JsonMismatch::new("an array of the IDL's length"));
                }
                Value::Bytes(b.into())
            }
            Node::Array { elem, len } => {
                let a = j
                    .as_array()
                    .filter(|a| a.len() == *len as usize)
                    .ok_or_else(|| JsonMismatch::new("an array of the IDL's length"))?;
                Value::Array(self.elems_from_json(*elem, a, d)?)
            }
            Node::Vec(elem) => {
                let a = j.as_array().ok_or_else(|| JsonMismatch::new("an array"))?;
                Value::Array(self.elems_from_json(*elem, a, d)?)
            }
            Node::Option(inner) => match j {
                J::Null => Value::Null,
                _ => self.value_from_json(*inner, j, d)?,
            },
            Node::Map { key, val } => {
                let o = j
                    .as_object()
                    .ok_or_else(|| JsonMismatch::new("an object"))?;
                let mut fields = Vec::with_capacity(o.len());
                for (k, x) in o {
                    if self.parse_map_key(*key, k).is_none() {
                        return Err(
                            JsonMismatch::new("a key of the map's key type").within(k.clone())
                        );
                    }
                    let v = self
                        .value_from_json(*val, x, d)
                        .map_err(|e| e.within(k.clone()))?;
                    fields.push((k.as_str().into(), v));
                }
                // JSON objects have no order of their own; use the bytes' (Borsh) order.
                self.sort_map(*key, &mut fields);
                Value::Object(fields)
            }
            Node::Struct { fields, .. } => {
                let o = j
                    .as_object()
                    .ok_or_else(|| JsonMismatch::new("an object"))?;
                let mut out = Vec::with_capacity(fields.len());
                for f in fields.iter() {
                    let x = o
                        .get(&*f.name)
                        .ok_or_else(|| JsonMismatch::new("a value").within(&*f.name))?;
                    let v = self
                        .value_from_json(f.ty, x, d)
                        .map_err(|e| e.within(&*f.name))?;
                    out.push((f.name.clone(), v));
                }
                Value::Object(out)
            }
            Node::Tuple { elems, .. } => {
                let a = j
                    .as_array()
                    .filter(|a| a.len() == elems.len())
                    .ok_or_else(|| JsonMismatch::new("an array of the tuple's length"))?;
                let mut out = Vec::with_capacity(a.len());
                for (i, (e, x)) in elems.iter().zip(a).enumerate() {
                    out.push(
                        self.value_from_json(*e, x, d)
                            .map_err(|m| m.within(format!("[{i}]")))?,
                    );
                }
                Value::Array(out)
            }
            Node::Enum { variants } => match j {
                J::String(s) => {
                    let v = variants
                        .iter()
                        .find(|v| *v.name == **s && matches!(v.kind, VariantKind::Unit))
                        .ok_or_else(|| JsonMismatch::new("a unit variant name"))?;
                    Value::Str(v.name.clone())
                }
                J::Object(o) if o.len() == 1 => {
                    let (name, x) = o.iter().next().expect("one entry");
                    let var = variants
                        .iter()
                        .find(|v| *v.name == **name)
                        .ok_or_else(|| JsonMismatch::new("a variant name"))?;
                    let inner = match &var.kind {
                        VariantKind::Unit => {
                            return Err(JsonMismatch::new("a unit variant as a string"))
                        }
                        VariantKind::Named(fs) => {
                            let o = x.as_object().ok_or_else(|| {
                                JsonMismatch::new("an object").within(name.clone())
                            })?;
                            let mut out = Vec::with_capacity(fs.len());
                            for f in fs.iter() {
                                let fx = o.get(&*f.name).ok_or_else(|| {
                                    JsonMismatch::new("a value")
                                        .within(&*f.name)
                                        .within(name.clone())
                                })?;
                                let v = self
                                    .value_from_json(f.ty, fx, d)
                                    .map_err(|e| e.within(&*f.name).within(name.clone()))?;
                                out.push((f.name.clone(), v));
                            }
                            Value::Object(out)
                        }
                        VariantKind::Tuple(es) if es.len() == 1 => self
                            .value_from_json(es[0], x, d)
                            .map_err(|e| e.within(name.clone()))?,
                        VariantKind::Tuple(es) => {
                            let a =
                                x.as_array()
                                    .filter(|a| a.len() == es.len())
                                    .ok_or_else(|| {
                                        JsonMismatch::new("an array of the variant's length")
                                            .within(name.clone())
                                    })?;
                            let mut out = Vec::with_capacity(a.len());
                            for (i, (e, y)) in es.iter().zip(a).enumerate() {
                                out.push(self.value_from_json(*e, y, d).map_err(|m| {
                                    m.within(format!("[{i}]")).within(name.clone())
                                })?);
                            }
                            Value::Array(out)
                        }
                    };
                    Value::Object(vec![(var.name.clone(), inner)])
                }
                _ => {
                    return Err(JsonMismatch::new(
                        "a variant name or a one-key variant object",
                    ))
                }
            },
        })
    }

    fn elems_from_json(&self, elem: u32, a: &[J], d: u32) -> Result<Vec<Value>, JsonMismatch> {
        a.iter()
            .enumerate()
            .map(|(i, x)| {
                self.value_from_json(elem, x, d)
                    .map_err(|e| e.within(format!("[{i}]")))
            })
            .collect()
    }
}
