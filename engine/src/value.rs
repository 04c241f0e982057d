//! The compact value type of the hot path.
//!
//! Decoded account and instruction fields are [`Value`]s: a handler's record (`vm` module `record`)
//! holds them by position and renders a field to JSON only when a mapping reads it. Unlike
//! `serde_json::Value` it keeps the IDL's integer widths, holds public keys as 32 bytes (base58
//! only when rendered) and keeps object fields in a small ordered vector. A record captured whole
//! stays these values in its row until something reads it as JSON (`vm` module `capture`); entity
//! rows and expression results are otherwise `serde_json::Value`s (`perf/RESULTS.md` "VM, session
//! 4" says where the time goes now).
//!
//! [`Value::to_json`] renders the reference interpreter's JSON form (`../shared/protocol.md` §8.1):
//! pubkey → base58 string; integers up to 64 bits → numbers; u128/i128 → decimal strings; bytes →
//! arrays of numbers.

use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Str(Arc<str>),
    Pubkey([u8; 32]),
    Bytes(Arc<[u8]>),
    Array(Vec<Value>),
    /// Fields in declaration order.
    Object(Vec<(Arc<str>, Value)>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A field of an object by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(fields) => fields.iter().find(|(k, _)| &**k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The reference interpreter's JSON form of this value.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::I64(n) => J::from(*n),
            Value::U64(n) => J::from(*n),
            Value::I128(n) => J::String(n.to_string()),
            Value::U128(n) => J::String(n.to_string()),
            Value::F64(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) => J::String(String::from(&**s)),
            Value::Pubkey(k) => J::String(crate::b58::encode(k)),
            Value::Bytes(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Object(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| (String::from(&**k), v.to_json()))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_reference_json_shapes() {
        let v = Value::Object(vec![
            ("a".into(), Value::U64(7)),
            ("big".into(), Value::U128(1 << 100)),
            ("key".into(), Value::Pubkey([0; 32])),
            ("bytes".into(), Value::Bytes(Arc::from(&[1u8, 2][..]))),
        ]);
        assert_eq!(
            v.to_json(),
            serde_json::json!({"a": 7, "big": (1u128 << 100).to_string(),
                "key": "11111111111111111111111111111111", "bytes": [1, 2]})
        );
        assert_eq!(v.get("a"), Some(&Value::U64(7)));
        assert_eq!(v.get("zz"), None);
    }
}
