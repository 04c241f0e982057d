//! What leaves the VM: per-entity changes, ready for the views.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use crate::vm::capture::Stored;

/// Position of a change in the chain: `(slot, write_version)` for account updates,
/// `(slot, txn_index)` for instructions, `(slot, 0)` for scheduled callbacks.
///
/// Ordered numerically; rendered on the wire as `"{slot}:{index:012}"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq {
    pub slot: u64,
    pub index: u64,
}

impl Seq {
    pub const fn new(slot: u64, index: u64) -> Self {
        Seq { slot, index }
    }

    /// Parses the wire form `"{slot}:{index}"` (any number of index digits). `None` if malformed.
    pub fn parse(s: &str) -> Option<Seq> {
        let (slot, index) = s.split_once(':')?;
        Some(Seq {
            slot: slot.parse().ok()?,
            index: index.parse().ok()?,
        })
    }
}

impl Ord for Seq {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.slot, self.index).cmp(&(other.slot, other.index))
    }
}

impl PartialOrd for Seq {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{:012}", self.slot, self.index)
    }
}

/// The emitted fields of an entity that one update changed: each field's path and new value, in
/// the order the handler changed them (an appended array's entry holds its new elements alone).
///
/// Values are shared with the VM's row: building a patch copies no field, and the VM copies a
/// field's value only if it changes it again while a patch still holds it. A captured update
/// stays a record until the patch is rendered. [`Patch::to_json`] is the nested form the wire and
/// the reference interpreter use.
#[derive(Clone, Default)]
pub struct Patch {
    fields: Vec<Field>,
}

/// One patch field: its path's segments and its value.
type Field = (Arc<[Box<str>]>, Stored);

impl Patch {
    /// Room for `n` more fields.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.fields.reserve(n);
    }

    /// Empties the patch, keeping its allocation, and hands back the values it held.
    pub(crate) fn drain_values(&mut self) -> impl Iterator<Item = Stored> + '_ {
        self.fields.drain(..).map(|(_, v)| v)
    }

    /// Adds a field; an empty path stands for the whole patch.
    pub(crate) fn push(&mut self, path: Arc<[Box<str>]>, value: Stored) {
        self.fields.push((path, value));
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The patch nested by path (`{"state": {"round_id": 7}}`), as the wire carries it. Fields
    /// are written in order; a later field replaces any non-object on its way.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Value::Object(serde_json::Map::new());
        for (path, value) in &self.fields {
            let value = value.json().into_owned();
            if path.is_empty() {
                out = value;
            } else {
                crate::vm::json::set_nested(&mut out, path, value);
            }
        }
        out
    }
}

/// A whole patch given nested (tests, replays): one field at the root.
impl From<serde_json::Value> for Patch {
    fn from(v: serde_json::Value) -> Self {
        Patch {
            fields: vec![(Arc::from(Vec::new()), Stored::new(v))],
        }
    }
}

impl fmt::Debug for Patch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_json(), f)
    }
}

/// Patches are equal when their nested forms are.
impl PartialEq for Patch {
    fn eq(&self, other: &Patch) -> bool {
        self.to_json() == other.to_json()
    }
}

impl PartialEq<serde_json::Value> for Patch {
    fn eq(&self, other: &serde_json::Value) -> bool {
        self.to_json() == *other
    }
}

impl serde::Serialize for Patch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// A change to one entity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mutation {
    /// The entity type (`state_name`), e.g. `OreRound`.
    pub entity: Arc<str>,
    /// The primary key in the reference's JSON form (`42`, `"7xKX.."`).
    pub key: serde_json::Value,
    /// Only the emitted fields that changed.
    pub patch: Patch,
    /// Dotted paths of arrays whose new elements alone are in `patch`.
    pub append: Vec<String>,
    pub seq: Seq,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Arc<[Box<str>]> {
        p.split('.').map(Box::from).collect()
    }

    #[test]
    fn a_patch_nests_its_fields_in_order_and_equals_its_nested_form() {
        use serde_json::json;
        let mut p = Patch::default();
        assert!(p.is_empty());
        assert_eq!(p.to_json(), json!({}));
        p.push(path("state.round_id"), Stored::new(json!(7)));
        p.push(path("state.motherlode"), Stored::new(json!(1.5)));
        p.push(path("id"), Stored::new(json!({"round_id": 7})));
        let nested = json!({"state": {"round_id": 7, "motherlode": 1.5}, "id": {"round_id": 7}});
        assert_eq!(p.to_json(), nested);
        assert_eq!(p, nested);
        assert_eq!(
            p,
            Patch::from(nested.clone()),
            "equal by nested form, not by fields"
        );
        // A later field replaces a non-object on its way, as the reference's patch writer does.
        p.push(path("id.round_id.x"), Stored::new(json!(1)));
        assert_eq!(p.to_json()["id"], json!({"round_id": {"x": 1}}));
        // A field at the root path stands for the whole patch (patches given nested).
        assert_eq!(Patch::from(json!([1])).to_json(), json!([1]));
        assert_eq!(serde_json::to_value(&p).unwrap(), p.to_json());
        assert_eq!(format!("{p:?}"), format!("{:?}", p.to_json()));
    }

    #[test]
    fn seq_renders_padded_and_compares_numerically() {
        let a = Seq::new(99, 5);
        let b = Seq::new(100, 1);
        assert_eq!(a.to_string(), "99:000000000005");
        assert!(a < b, "slot digit count must not matter");
        assert_eq!(Seq::parse("100:000000000001"), Some(b));
        assert_eq!(Seq::parse("100:1"), Some(b));
        assert_eq!(Seq::parse("100"), None);
        assert_eq!(Seq::parse("x:1"), None);
        let big = Seq::new(1, 1_234_567_890_123);
        assert_eq!(big.to_string(), "1:1234567890123");
    }
}
