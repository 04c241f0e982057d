//! What a client asks for when it subscribes (`../shared/protocol.md` §1.3–1.4).

use serde::Deserialize;

/// The options of a `subscribe` message (camelCase on the wire). Unknown fields are ignored.
///
/// Which view kinds honour which option (`protocol.md` §1.4, §2.1):
///
/// | option         | list / append        | state / keyed        | sorted window (derived)    |
/// |----------------|----------------------|----------------------|----------------------------|
/// | `key`          | filter               | selects the row      | ignored                    |
/// | `take`/`skip`  | ignored              | ignored              | the slice (default: the pipeline's `Take`, else 100) |
/// | `withSnapshot` | `false`: empty snapshot | `false`: empty snapshot | ignored (window always sent) |
/// | `after`        | rows with newer `_seq`, ascending | ignored | ignored                    |
/// | `snapshotLimit`| newest N by `_seq` (or first N after the cursor) | ignored | ignored |
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub view: String,
    #[serde(default)]
    pub key: Option<String>,
    /// Parsed for compatibility; unused.
    #[serde(default)]
    pub partition: Option<String>,
    #[serde(default)]
    pub take: Option<usize>,
    #[serde(default)]
    pub skip: Option<usize>,
    /// Default true.
    #[serde(default)]
    pub with_snapshot: Option<bool>,
    /// A `_seq` cursor: only rows newer than it.
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub snapshot_limit: Option<usize>,
}

impl Subscription {
    /// The dedup / unsubscribe key: `"{view}:{key}"` or `"{view}:*"`.
    pub fn sub_key(&self) -> String {
        format!("{}:{}", self.view, self.key.as_deref().unwrap_or("*"))
    }
}
