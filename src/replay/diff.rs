//! Comparing output lines with expected lines, JSON-aware.
//!
//! Lines are compared as JSON values, not as text: key order and whitespace do not matter, but
//! number forms do (`1` and `1.0` differ, as they do on the wire). A difference is reported at the
//! deepest JSON path where the two values part: `patch.trading.volume_sol`, `patch.events.buys[0]`.

use serde_json::Value;

/// One place where an actual value and the expected value differ.
#[derive(Debug, Clone, PartialEq)]
pub struct PathDiff {
    /// Dotted path from the line's root (`patch.state.total_miners`, `append[1]`); empty for the
    /// whole line.
    pub path: String,
    /// The expected value there; `None` when the expected line has nothing at that path.
    pub expected: Option<Value>,
    /// The actual value there; `None` when the output has nothing at that path.
    pub actual: Option<Value>,
}

/// The paths where `actual` differs from `expected`, in document order (object keys sorted),
/// at most `limit` of them.
pub fn diff_values(expected: &Value, actual: &Value, limit: usize) -> Vec<PathDiff> {
    let mut out = Vec::new();
    walk(String::new(), Some(expected), Some(actual), limit, &mut out);
    out
}

fn walk(
    path: String,
    expected: Option<&Value>,
    actual: Option<&Value>,
    limit: usize,
    out: &mut Vec<PathDiff>,
) {
    if out.len() >= limit || expected == actual {
        return;
    }
    match (expected, actual) {
        (Some(Value::Object(e)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(p, e.get(k), a.get(k), limit, out);
            }
        }
        (Some(Value::Array(e)), Some(Value::Array(a))) => {
            for i in 0..e.len().max(a.len()) {
                walk(format!("{path}[{i}]"), e.get(i), a.get(i), limit, out);
            }
        }
        _ => out.push(PathDiff {
            path,
            expected: expected.cloned(),
            actual: actual.cloned(),
        }),
    }
}

/// `value` as compact JSON, cut to about `max` characters (on a char boundary) with `…`.
pub fn short(value: &Value, max: usize) -> String {
    let s = value.to_string();
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_have_no_difference_whatever_the_key_order() {
        let a = json!({"a": 1, "b": {"c": [1, 2]}});
        let b: Value = serde_json::from_str(r#"{"b":{"c":[1,2]},"a":1}"#).unwrap();
        assert!(diff_values(&a, &b, 10).is_empty());
    }

    #[test]
    fn changed_nested_field_is_reported_at_its_dotted_path() {
        let e = json!({"patch": {"trading": {"volume_sol": 5, "count": 1}}});
        let a = json!({"patch": {"trading": {"volume_sol": 6, "count": 1}}});
        assert_eq!(
            diff_values(&e, &a, 10),
            vec![PathDiff {
                path: "patch.trading.volume_sol".into(),
                expected: Some(json!(5)),
                actual: Some(json!(6)),
            }]
        );
    }

    #[test]
    fn missing_and_extra_fields_and_array_elements_are_reported() {
        let e = json!({"a": 1, "l": [1, 2]});
        let a = json!({"b": 2, "l": [1, 2, 3]});
        let d = diff_values(&e, &a, 10);
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["a", "b", "l[2]"]);
        assert_eq!(d[0].actual, None);
        assert_eq!(d[1].expected, None);
        assert_eq!(d[2].actual, Some(json!(3)));
    }

    #[test]
    fn integer_and_float_forms_differ() {
        let d = diff_values(&json!({"x": 325}), &json!({"x": 325.0}), 10);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "x");
    }

    #[test]
    fn differences_stop_at_the_limit() {
        let e = json!({"a": 1, "b": 2, "c": 3});
        let a = json!({"a": 0, "b": 0, "c": 0});
        assert_eq!(diff_values(&e, &a, 2).len(), 2);
    }

    #[test]
    fn long_values_are_shortened_on_a_char_boundary() {
        let v = json!("ééééé");
        let s = short(&v, 4);
        assert!(s.ends_with('…'));
        assert!(s.len() < v.to_string().len() + 3);
    }
}
