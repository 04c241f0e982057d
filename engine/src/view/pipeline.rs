//! A derived view's pipeline, normalized, and its filter predicates.
//!
//! Any pipeline is brought into one canonical shape, evaluated incrementally per update:
//!
//! ```text
//! filter (every Filter, AND-ed) → order → skip (sum of Skip) → take (smallest limit)
//! ```
//! * `Sort{key, order}` sets the order; without one the order is `_seq` descending (the default
//!   client sort of list views), so `First` means "most recently changed".
//! * `MaxBy{key}` = order by `key` descending, take 1; `MinBy{key}` = ascending, take 1.
//! * `First` = take 1; `Last` = reverse the order so far, take 1. `Single` output implies take 1.
//! * A later `Sort` replaces an earlier order; a `Take` placed before a `Sort` still applies after it.
//!
//! Departures from the reference (`protocol.md` §2.3) on purpose: filters are applied, `Skip` is
//! honoured, and views without a `Sort` work (ordered by `_seq`) instead of receiving nothing.

use serde_json::Value;

use super::json::{get_path, SortValue};
use super::spec::{CompareOp, Predicate, PredicateValue, SortOrder, ViewOutput, ViewTransform};

/// How a derived view orders its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub path: Vec<String>,
    pub order: SortOrder,
}

impl Order {
    /// `_seq` descending.
    pub fn default_seq() -> Self {
        Order {
            path: vec!["_seq".to_string()],
            order: SortOrder::Desc,
        }
    }
}

/// A normalized pipeline (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub filters: Vec<Predicate>,
    pub order: Order,
    pub offset: usize,
    pub limit: Option<usize>,
    /// `Some(path)` for `Keyed` output.
    pub keyed: Option<Vec<String>>,
    /// `Single` output: frames carry `mode:"state"`. As in the reference, the mode follows the
    /// output alone (`Collection` → `list`, even when the pipeline ends in one row).
    pub single: bool,
}

/// Why a pipeline cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// `PredicateValue::Dynamic` needs a clock the engine does not have. Remove the filter or
    /// compare with a literal.
    #[error("dynamic predicate value `{0}` is not supported")]
    DynamicValue(String),
}

impl Pipeline {
    /// Normalizes `transforms` (the source chain's first, then the view's own) and `output`.
    pub fn normalize<'a>(
        transforms: impl IntoIterator<Item = &'a ViewTransform>,
        output: &ViewOutput,
    ) -> Result<Pipeline, PipelineError> {
        let mut p = Pipeline {
            filters: Vec::new(),
            order: Order::default_seq(),
            offset: 0,
            limit: None,
            keyed: None,
            single: false,
        };
        let limit = |p: &mut Pipeline, n: usize| p.limit = Some(p.limit.map_or(n, |l| l.min(n)));
        for t in transforms {
            match t {
                ViewTransform::Filter { predicate } => {
                    check(predicate)?;
                    p.filters.push(predicate.clone());
                }
                ViewTransform::Sort { key, order } => {
                    p.order = Order {
                        path: key.segments.clone(),
                        order: *order,
                    };
                }
                ViewTransform::Take { count } => limit(&mut p, *count),
                ViewTransform::Skip { count } => p.offset += count,
                ViewTransform::First => limit(&mut p, 1),
                ViewTransform::Last => {
                    p.order.order = match p.order.order {
                        SortOrder::Asc => SortOrder::Desc,
                        SortOrder::Desc => SortOrder::Asc,
                    };
                    limit(&mut p, 1)
                }
                ViewTransform::MaxBy { key } | ViewTransform::MinBy { key } => {
                    let order = if matches!(t, ViewTransform::MaxBy { .. }) {
                        SortOrder::Desc
                    } else {
                        SortOrder::Asc
                    };
                    p.order = Order {
                        path: key.segments.clone(),
                        order,
                    };
                    limit(&mut p, 1)
                }
            }
        }
        match output {
            ViewOutput::Collection => {}
            ViewOutput::Single => {
                p.single = true;
                limit(&mut p, 1);
            }
            ViewOutput::Keyed { key_field } => p.keyed = Some(key_field.segments.clone()),
        }
        Ok(p)
    }

    /// Whether `entity` passes every filter.
    pub fn admits(&self, entity: &Value) -> bool {
        self.filters.iter().all(|f| eval(f, entity))
    }
}

fn check(p: &Predicate) -> Result<(), PipelineError> {
    match p {
        Predicate::Compare {
            value: PredicateValue::Dynamic(d),
            ..
        } => Err(PipelineError::DynamicValue(d.clone())),
        Predicate::Compare { .. } | Predicate::Exists { .. } => Ok(()),
        Predicate::And(ps) | Predicate::Or(ps) => ps.iter().try_for_each(check),
        Predicate::Not(p) => check(p),
    }
}

/// Evaluates a predicate. Missing fields read as `null`. Ordering comparisons hold only between
/// values of the same kind (two numbers, two strings, two bools); equality compares numbers by
/// value (`1 == 1.0`) and everything else structurally.
pub fn eval(p: &Predicate, entity: &Value) -> bool {
    match p {
        Predicate::And(ps) => ps.iter().all(|p| eval(p, entity)),
        Predicate::Or(ps) => ps.iter().any(|p| eval(p, entity)),
        Predicate::Not(p) => !eval(p, entity),
        Predicate::Exists { field } => {
            get_path(entity, &field.segments).is_some_and(|v| !v.is_null())
        }
        Predicate::Compare { field, op, value } => {
            let lhs = get_path(entity, &field.segments).unwrap_or(&Value::Null);
            let rhs = match value {
                PredicateValue::Literal(v) => v,
                PredicateValue::Field(f) => get_path(entity, &f.segments).unwrap_or(&Value::Null),
                PredicateValue::Dynamic(_) => return false,
            };
            compare(lhs, *op, rhs)
        }
    }
}

fn compare(lhs: &Value, op: CompareOp, rhs: &Value) -> bool {
    let scalar = |v: &Value| match v {
        Value::Number(n) => Some(SortValue::of(&Value::Number(n.clone()), &[])),
        Value::String(s) => Some(SortValue::Str(s.as_str().into())),
        Value::Bool(b) => Some(SortValue::Bool(*b)),
        _ => None,
    };
    let same_kind = |a: &SortValue, b: &SortValue| {
        matches!(
            (a, b),
            (SortValue::Str(_), SortValue::Str(_))
                | (SortValue::Bool(_), SortValue::Bool(_))
                | (
                    SortValue::Int(_) | SortValue::Float(_),
                    SortValue::Int(_) | SortValue::Float(_)
                )
        )
    };
    let ord = match (scalar(lhs), scalar(rhs)) {
        (Some(a), Some(b)) if same_kind(&a, &b) => Some(a.cmp(&b)),
        _ => None,
    };
    use std::cmp::Ordering::*;
    match op {
        CompareOp::Eq => ord.map_or(lhs == rhs, |o| o == Equal),
        CompareOp::Ne => ord.map_or(lhs != rhs, |o| o != Equal),
        CompareOp::Gt => ord == Some(Greater),
        CompareOp::Gte => matches!(ord, Some(Greater | Equal)),
        CompareOp::Lt => ord == Some(Less),
        CompareOp::Lte => matches!(ord, Some(Less | Equal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::spec::FieldPath;
    use serde_json::json;

    fn cmp(field: &str, op: CompareOp, v: Value) -> Predicate {
        Predicate::Compare {
            field: FieldPath::new(&[field]),
            op,
            value: PredicateValue::Literal(v),
        }
    }

    #[test]
    fn predicates_compare_same_kinds_and_treat_missing_as_null() {
        let e = json!({"n": 5, "s": "b", "f": 1.0, "z": null});
        assert!(eval(&cmp("n", CompareOp::Gt, json!(4.5)), &e));
        assert!(eval(&cmp("f", CompareOp::Eq, json!(1)), &e));
        assert!(
            !eval(&cmp("s", CompareOp::Gt, json!(1)), &e),
            "string vs number never orders"
        );
        assert!(eval(&cmp("s", CompareOp::Lte, json!("b")), &e));
        assert!(eval(&cmp("missing", CompareOp::Eq, Value::Null), &e));
        assert!(eval(
            &Predicate::Exists {
                field: FieldPath::new(&["n"])
            },
            &e
        ));
        assert!(!eval(
            &Predicate::Exists {
                field: FieldPath::new(&["z"])
            },
            &e
        ));
        let both = Predicate::And(vec![
            cmp("n", CompareOp::Ne, json!(5)),
            cmp("s", CompareOp::Eq, json!("b")),
        ]);
        assert!(!eval(&both, &e));
        assert!(eval(&Predicate::Not(Box::new(both)), &e));
        let field = Predicate::Compare {
            field: FieldPath::new(&["n"]),
            op: CompareOp::Gt,
            value: PredicateValue::Field(FieldPath::new(&["f"])),
        };
        assert!(eval(&field, &e));
    }

    #[test]
    fn pipelines_normalize_to_filter_order_skip_take() {
        let k = FieldPath::new(&["v"]);
        let p = Pipeline::normalize(
            &[
                ViewTransform::Take { count: 10 },
                ViewTransform::Sort {
                    key: k.clone(),
                    order: SortOrder::Asc,
                },
                ViewTransform::Skip { count: 2 },
                ViewTransform::Take { count: 5 },
            ],
            &ViewOutput::Collection,
        )
        .unwrap();
        assert_eq!(
            (p.order.order, p.offset, p.limit, p.single),
            (SortOrder::Asc, 2, Some(5), false)
        );
        let p = Pipeline::normalize(
            &[ViewTransform::MaxBy { key: k.clone() }],
            &ViewOutput::Collection,
        )
        .unwrap();
        assert_eq!(
            (p.order.order, p.limit, p.single),
            (SortOrder::Desc, Some(1), false)
        );
        let p = Pipeline::normalize(
            &[
                ViewTransform::Sort {
                    key: k,
                    order: SortOrder::Asc,
                },
                ViewTransform::Last,
            ],
            &ViewOutput::Collection,
        )
        .unwrap();
        assert_eq!(p.order.order, SortOrder::Desc);
        let p = Pipeline::normalize(&[], &ViewOutput::Single).unwrap();
        assert_eq!(
            (p.order, p.limit, p.single),
            (Order::default_seq(), Some(1), true)
        );
        let dynamic = ViewTransform::Filter {
            predicate: Predicate::Compare {
                field: FieldPath::new(&["t"]),
                op: CompareOp::Lt,
                value: PredicateValue::Dynamic("now()".into()),
            },
        };
        assert_eq!(
            Pipeline::normalize(&[dynamic], &ViewOutput::Collection),
            Err(PipelineError::DynamicValue("now()".into()))
        );
    }
}
