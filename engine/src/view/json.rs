//! JSON helpers shared by the cache, the windows and the projector: deep merge with append paths,
//! array caps, big-integer stringification, key rendering and the sort order of values.
//!
//! The merge is the one both SDKs apply to `patch` frames, so the server cache and every client
//! converge on the same entity: objects merge recursively, arrays are replaced unless their dotted
//! path is listed in `append` (then the new elements are concatenated), anything else overwrites
//! (`null` included). After the merge every array touched by the patch keeps only its newest
//! `max_array` elements.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::mutation::Seq;

/// The largest integer a JavaScript number holds exactly (2^53 − 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Rewrites every integer beyond ±(2^53 − 1) into its decimal string, in place.
pub fn stringify_big_ints(v: &mut Value) {
    match v {
        Value::Number(n) => {
            let big = if let Some(i) = n.as_i64() {
                i.unsigned_abs() > MAX_SAFE_INTEGER
            } else if let Some(u) = n.as_u64() {
                u > MAX_SAFE_INTEGER
            } else {
                false
            };
            if big {
                *v = Value::String(n.to_string());
            }
        }
        Value::Array(a) => a.iter_mut().for_each(stringify_big_ints),
        Value::Object(m) => m.values_mut().for_each(stringify_big_ints),
        _ => {}
    }
}

/// The entity key as clients see it (`protocol.md` §3.5 step 1): a JSON string as is, an integer
/// in decimal, an array of bytes in lowercase hex, anything else as its JSON text. `None` for
/// `null` (such a mutation has no entity).
pub fn render_key(key: &Value) -> Option<String> {
    match key {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(a)
            if !a.is_empty() && a.iter().all(|x| x.as_u64().is_some_and(|b| b <= 255)) =>
        {
            let mut s = String::with_capacity(a.len() * 2);
            for b in a {
                let b = b.as_u64().unwrap_or(0) as u8;
                s.push(char::from(HEX[(b >> 4) as usize]));
                s.push(char::from(HEX[(b & 15) as usize]));
            }
            Some(s)
        }
        other => Some(other.to_string()),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Deep-merges `patch` into `target` (see the module docs) and caps the arrays it touched.
/// Takes the patch by value: its parts move into the entity.
pub fn merge(target: &mut Value, patch: Value, append: &[String], max_array: usize) {
    let mut path = String::new();
    merge_at(target, patch, append, max_array, &mut path);
}

fn merge_at(
    target: &mut Value,
    patch: Value,
    append: &[String],
    max_array: usize,
    path: &mut String,
) {
    let Value::Object(p) = patch else {
        *target = capped(patch, max_array);
        return;
    };
    let Value::Object(t) = target else {
        *target = capped(Value::Object(p), max_array);
        return;
    };
    for (k, pv) in p {
        let len = path.len();
        if !append.is_empty() {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&k);
        }
        match (t.get_mut(&k), pv) {
            (Some(Value::Array(ta)), Value::Array(pa))
                if !append.is_empty() && append.iter().any(|a| a == path) =>
            {
                ta.extend(pa.into_iter().map(|x| capped(x, max_array)));
                cap_front(ta, max_array);
            }
            (Some(tv @ Value::Object(_)), pv @ Value::Object(_)) => {
                merge_at(tv, pv, append, max_array, path)
            }
            (Some(tv), pv) => *tv = capped(pv, max_array),
            (None, pv) => {
                t.insert(k, capped(pv, max_array));
            }
        }
        path.truncate(len);
    }
}

fn cap_front(a: &mut Vec<Value>, max: usize) {
    if a.len() > max {
        a.drain(..a.len() - max);
    }
}

/// `v` with every array in it cut to its newest `max` elements.
pub fn capped(mut v: Value, max: usize) -> Value {
    cap_all(&mut v, max);
    v
}

fn cap_all(v: &mut Value, max: usize) {
    match v {
        Value::Array(a) => {
            cap_front(a, max);
            a.iter_mut().for_each(|x| cap_all(x, max));
        }
        Value::Object(m) => m.values_mut().for_each(|x| cap_all(x, max)),
        _ => {}
    }
}

/// The value at a dotted path, `None` if any step is missing or not an object.
pub fn get_path<'a>(v: &'a Value, segments: &[String]) -> Option<&'a Value> {
    segments.iter().try_fold(v, |v, s| v.as_object()?.get(s))
}

/// The `_seq` of an entity, parsed. `None` if absent or malformed.
pub fn seq_of(entity: &Value) -> Option<Seq> {
    entity.get("_seq")?.as_str().and_then(Seq::parse)
}

/// A value reduced to what orders it. Order: null (and missing, arrays, objects) < bools <
/// numbers < strings; integers compare exactly, an integer against a float as floats; a `_seq`
/// path compares as `(slot, index)` numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Seq(Seq),
    Str(Box<str>),
}

impl SortValue {
    /// The sort value of the field at `path` of `entity`.
    pub fn of(entity: &Value, path: &[String]) -> SortValue {
        let v = get_path(entity, path);
        if path.len() == 1 && path[0] == "_seq" {
            if let Some(s) = v.and_then(Value::as_str).and_then(Seq::parse) {
                return SortValue::Seq(s);
            }
        }
        match v {
            Some(Value::Bool(b)) => SortValue::Bool(*b),
            Some(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    SortValue::Int(i as i128)
                } else if let Some(u) = n.as_u64() {
                    SortValue::Int(u as i128)
                } else {
                    SortValue::Float(n.as_f64().unwrap_or(0.0))
                }
            }
            Some(Value::String(s)) => SortValue::Str(s.as_str().into()),
            _ => SortValue::Null,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortValue::Null => 0,
            SortValue::Bool(_) => 1,
            SortValue::Int(_) | SortValue::Float(_) => 2,
            SortValue::Seq(_) => 3,
            SortValue::Str(_) => 4,
        }
    }
}

impl Eq for SortValue {}

impl Ord for SortValue {
    fn cmp(&self, other: &Self) -> Ordering {
        use SortValue::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Int(a), Float(b)) => (*a as f64).total_cmp(b),
            (Float(a), Int(b)) => a.total_cmp(&(*b as f64)),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Seq(a), Seq(b)) => a.cmp(b),
            (Str(a), Str(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for SortValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// An empty JSON object.
pub fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn big_integers_become_strings_and_safe_ones_stay_numbers() {
        let mut v = json!({"a": 9007199254740991u64, "b": 9007199254740992u64, "c": -9007199254740992i64,
            "d": [18446744073709551615u64, 1.5e300], "e": {"f": -9007199254740991i64}});
        stringify_big_ints(&mut v);
        assert_eq!(
            v,
            json!({"a": 9007199254740991u64, "b": "9007199254740992", "c": "-9007199254740992",
                "d": ["18446744073709551615", 1.5e300], "e": {"f": -9007199254740991i64}})
        );
    }

    #[test]
    fn keys_render_as_the_reference_does() {
        assert_eq!(render_key(&json!("abc")).unwrap(), "abc");
        assert_eq!(render_key(&json!(42)).unwrap(), "42");
        assert_eq!(render_key(&json!([1, 171, 255])).unwrap(), "01abff");
        assert_eq!(render_key(&json!([1, 300])).unwrap(), "[1,300]");
        assert_eq!(render_key(&json!({"a": 1})).unwrap(), r#"{"a":1}"#);
        assert_eq!(render_key(&json!(true)).unwrap(), "true");
        assert_eq!(render_key(&Value::Null), None);
    }

    #[test]
    fn merge_recurses_into_objects_replaces_arrays_and_appends_listed_paths() {
        let mut e = json!({"a": {"x": 1, "y": [1, 2]}, "ev": {"t": [1]}, "z": 5});
        merge(
            &mut e,
            json!({"a": {"y": [9]}, "ev": {"t": [2, 3]}, "z": null}),
            &["ev.t".into()],
            100,
        );
        assert_eq!(
            e,
            json!({"a": {"x": 1, "y": [9]}, "ev": {"t": [1, 2, 3]}, "z": null})
        );
    }

    #[test]
    fn merge_caps_arrays_to_the_newest_elements() {
        let mut e = json!({"t": [1, 2, 3]});
        merge(&mut e, json!({"t": [4, 5]}), &["t".into()], 4);
        assert_eq!(e, json!({"t": [2, 3, 4, 5]}));
        merge(&mut e, json!({"n": {"u": [1, 2, 3, 4, 5, 6]}}), &[], 4);
        assert_eq!(e["n"]["u"], json!([3, 4, 5, 6]));
    }

    #[test]
    fn sort_values_order_types_then_values_numerically() {
        let v = |j: Value| SortValue::of(&json!({ "f": j }), &["f".to_string()]);
        let mut all = vec![
            v(json!("b")),
            v(json!(2.5)),
            v(json!(3)),
            v(json!(true)),
            v(Value::Null),
            v(json!("a")),
            v(json!(-1)),
        ];
        all.sort();
        assert_eq!(
            all,
            vec![
                v(Value::Null),
                v(json!(true)),
                v(json!(-1)),
                v(json!(2.5)),
                v(json!(3)),
                v(json!("a")),
                v(json!("b"))
            ]
        );
        let s = |x: &str| SortValue::of(&json!({ "_seq": x }), &["_seq".to_string()]);
        assert!(s("99:000000000001") < s("100:000000000000"));
    }
}
