//! Derived view definitions as the stack file states them (`entities[*].views`).

use serde::Deserialize;

/// A dotted field path as the stack file writes it: `{"segments": ["id", "round_id"], "offsets": null}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FieldPath {
    pub segments: Vec<String>,
    #[serde(default)]
    pub offsets: Option<serde_json::Value>,
}

/// `ViewDef { id, source, pipeline, output }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ViewDef {
    pub id: String,
    pub source: ViewSource,
    #[serde(default)]
    pub pipeline: Vec<ViewTransform>,
    pub output: ViewOutput,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum ViewSource {
    Entity { name: String },
    View { id: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum ViewTransform {
    Filter { predicate: serde_json::Value },
    Sort { key: FieldPath, order: SortOrder },
    Take { count: usize },
    Skip { count: usize },
    First,
    Last,
    MaxBy { key: FieldPath },
    MinBy { key: FieldPath },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum ViewOutput {
    Collection,
    Single,
    Keyed { key_field: FieldPath },
}
