//! Derived view definitions as the stack file states them (`entities[*].views`).
//!
//! The shapes follow the reference AST (`hyperstack-interpreter` 0.6.9, `ast.rs`): externally tagged
//! enums, unit variants as bare strings (`"First"`, `"Collection"`), `order` defaulting to `asc`,
//! `output` defaulting to `Collection`, and typed filter predicates.

use serde::Deserialize;

/// A dotted field path as the stack file writes it: `{"segments": ["id", "round_id"], "offsets": null}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FieldPath {
    pub segments: Vec<String>,
    #[serde(default)]
    pub offsets: Option<Vec<usize>>,
}

impl FieldPath {
    /// A path from its segments, without offsets.
    pub fn new(segments: &[&str]) -> Self {
        FieldPath {
            segments: segments.iter().map(|s| s.to_string()).collect(),
            offsets: None,
        }
    }
}

/// `ViewDef { id, source, pipeline, output }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ViewDef {
    pub id: String,
    pub source: ViewSource,
    #[serde(default)]
    pub pipeline: Vec<ViewTransform>,
    #[serde(default)]
    pub output: ViewOutput,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum ViewSource {
    Entity { name: String },
    View { id: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum ViewTransform {
    Filter {
        predicate: Predicate,
    },
    Sort {
        key: FieldPath,
        #[serde(default)]
        order: SortOrder,
    },
    Take {
        count: usize,
    },
    Skip {
        count: usize,
    },
    First,
    Last,
    MaxBy {
        key: FieldPath,
    },
    MinBy {
        key: FieldPath,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

impl SortOrder {
    /// The wire spelling, as in `subscribed.sort.order`.
    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::Asc => "asc",
            SortOrder::Desc => "desc",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub enum ViewOutput {
    #[default]
    Collection,
    Single,
    Keyed {
        key_field: FieldPath,
    },
}

/// A filter predicate over an entity.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum Predicate {
    /// `field op value`.
    Compare {
        field: FieldPath,
        op: CompareOp,
        value: PredicateValue,
    },
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
    Not(Box<Predicate>),
    /// The field is present and not null.
    Exists {
        field: FieldPath,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum PredicateValue {
    Literal(serde_json::Value),
    /// A runtime value such as `now()`. The engine has no clock, so these are unsupported: a view
    /// using one is refused when the views are built.
    Dynamic(String),
    /// Another field of the same entity.
    Field(FieldPath),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_transform_and_output_shape_of_the_reference_ast() {
        let json = r#"{"id":"T/x","source":{"View":{"id":"T/list"}},"pipeline":[
            {"Filter":{"predicate":{"And":[
                {"Compare":{"field":{"segments":["a"],"offsets":null},"op":"Gte","value":{"Literal":3}}},
                {"Not":{"Exists":{"field":{"segments":["b"],"offsets":[0]}}}},
                {"Or":[{"Compare":{"field":{"segments":["c"],"offsets":null},"op":"Eq","value":{"Field":{"segments":["d"],"offsets":null}}}}]}
            ]}}},
            {"Sort":{"key":{"segments":["id","n"],"offsets":null}}},
            {"Take":{"count":5}},{"Skip":{"count":1}},"First","Last",
            {"MaxBy":{"key":{"segments":["v"],"offsets":null}}},
            {"MinBy":{"key":{"segments":["v"],"offsets":null}}}
        ],"output":{"Keyed":{"key_field":{"segments":["k"],"offsets":null}}}}"#;
        let v: ViewDef = serde_json::from_str(json).unwrap();
        assert_eq!(
            v.source,
            ViewSource::View {
                id: "T/list".into()
            }
        );
        assert_eq!(v.pipeline.len(), 8);
        assert_eq!(
            v.pipeline[1],
            ViewTransform::Sort {
                key: FieldPath::new(&["id", "n"]),
                order: SortOrder::Asc
            }
        );
        assert_eq!(v.pipeline[4], ViewTransform::First);
        assert_eq!(
            v.output,
            ViewOutput::Keyed {
                key_field: FieldPath::new(&["k"])
            }
        );
        let bare: ViewDef =
            serde_json::from_str(r#"{"id":"T/y","source":{"Entity":{"name":"T"}}}"#).unwrap();
        assert_eq!(bare.output, ViewOutput::Collection);
        assert!(bare.pipeline.is_empty());
    }

    #[test]
    fn parses_the_ore_stack_views() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/stacks/OreStream.stack.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let stack: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut n = 0;
        for e in stack["entities"].as_array().unwrap() {
            let views: Vec<ViewDef> = serde_json::from_value(e["views"].clone()).unwrap();
            n += views.len();
            for v in views {
                if v.id == "OreRound/latest" {
                    assert_eq!(
                        v.pipeline,
                        vec![ViewTransform::Sort {
                            key: FieldPath::new(&["id", "round_id"]),
                            order: SortOrder::Desc
                        }]
                    );
                }
            }
        }
        assert!(n >= 1);
    }
}
