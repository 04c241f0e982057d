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

    /// Whether [`Value::to_json`] would equal `j`, worked out without building it: a write of an
    /// unchanged field is found without rendering keys or copying strings.
    pub fn eq_json(&self, j: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        match (self, j) {
            (Value::Null, J::Null) => true,
            (Value::Bool(a), J::Bool(b)) => a == b,
            // Integers render as JSON integers: non-negative ones as unsigned (`as_u64` answers
            // only for those), negative ones as signed.
            (Value::I64(n), J::Number(x)) if *n >= 0 => x.as_u64() == Some(*n as u64),
            (Value::I64(n), J::Number(x)) => x.as_i64() == Some(*n),
            (Value::U64(n), J::Number(x)) => x.as_u64() == Some(*n),
            (Value::F64(_), J::Number(_) | J::Null) => self.to_json() == *j,
            (Value::I128(n), J::String(s)) => eq_display(n, s),
            (Value::U128(n), J::String(s)) => eq_display(n, s),
            (Value::Str(a), J::String(b)) => **a == **b,
            (Value::Pubkey(k), J::String(s)) => crate::b58::with_key(k, |t| t == s),
            (Value::Bytes(b), J::Array(a)) => {
                b.len() == a.len() && b.iter().zip(a).all(|(x, y)| y.as_u64() == Some(*x as u64))
            }
            // Integer elements (an account's per-square amounts) compared inline, not by a call
            // each.
            (Value::Array(v), J::Array(a)) => {
                v.len() == a.len()
                    && v.iter().zip(a).all(|(x, y)| match (x, y) {
                        (Value::U64(n), J::Number(m)) => m.as_u64() == Some(*n),
                        _ => x.eq_json(y),
                    })
            }
            (Value::Object(fields), J::Object(m)) => {
                if fields.len() != m.len() {
                    // Repeated names fold together when rendered: compare the rendering.
                    return self.to_json() == *j;
                }
                // Equal lengths: a repeated name would leave one of `m`'s keys uncovered.
                let distinct = (fields.iter().enumerate())
                    .all(|(i, (k, _))| fields[..i].iter().all(|(k2, _)| k2 != k));
                distinct && (fields.iter()).all(|(k, v)| m.get(&**k).is_some_and(|x| v.eq_json(x)))
            }
            _ => false,
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

/// Whether `n`'s decimal text is `s`, without building the text.
fn eq_display(n: &dyn std::fmt::Display, s: &str) -> bool {
    use std::io::Write;
    let mut buf = [0u8; 48];
    let mut w = &mut buf[..];
    write!(w, "{n}").expect("128-bit integers fit in 48 bytes");
    let len = 48 - w.len();
    &buf[..len] == s.as_bytes()
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

    /// A random value of every kind, small enough that two draws are often equal.
    fn draw(rng: &mut crate::synth::Rng, depth: u32) -> Value {
        let leaf = depth >= 2;
        match rng.below(if leaf { 9 } else { 11 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 0),
            2 => Value::I64(rng.below(5) as i64 - 2),
            3 => Value::U64(rng.below(3)),
            4 => Value::I128(rng.below(5) as i128 - 2),
            5 => Value::U128(rng.below(3) as u128 + (rng.below(2) as u128) * (1 << 100)),
            6 => Value::F64([0.0, 1.0, -2.5, f64::NAN][rng.below(4) as usize]),
            7 => Value::Str(
                ["", "1", "a", "11111111111111111111111111111111"][rng.below(4) as usize].into(),
            ),
            8 => Value::Pubkey([rng.below(2) as u8 * 7; 32]),
            9 => {
                let n = rng.below(3) as usize;
                match rng.below(2) {
                    0 => Value::Bytes((0..n).map(|_| rng.below(3) as u8).collect()),
                    _ => Value::Array((0..n).map(|_| draw(rng, depth + 1)).collect()),
                }
            }
            _ => Value::Object(
                (0..rng.below(3))
                    .map(|_| {
                        (
                            ["a", "b"][rng.below(2) as usize].into(),
                            draw(rng, depth + 1),
                        )
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn comparing_with_json_agrees_with_rendering_then_comparing() {
        let mut rng = crate::synth::Rng(11);
        let (mut equal, mut differ) = (0, 0);
        for _ in 0..20_000 {
            let v = draw(&mut rng, 0);
            // Against another value's rendering, its own, a JSON number of another kind (`1` vs
            // `1.0`) or a plain string, where only the rendering decides.
            let j = match rng.below(5) {
                0 => serde_json::json!(rng.below(3) as f64),
                1 => serde_json::json!(rng.below(3).to_string()),
                2 => v.to_json(),
                _ => draw(&mut rng, 0).to_json(),
            };
            let want = v.to_json() == j;
            assert_eq!(v.eq_json(&j), want, "{v:?} against {j}");
            if want {
                equal += 1
            } else {
                differ += 1
            }
        }
        assert!(
            equal > 2_000 && differ > 2_000,
            "{equal} equal, {differ} different"
        );
    }
}
