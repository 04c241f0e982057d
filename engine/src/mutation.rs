//! What leaves the VM: per-entity changes, ready for the views.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

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

/// A change to one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// The entity type (`state_name`), e.g. `OreRound`.
    pub entity: Arc<str>,
    /// The primary key in the reference's JSON form (`42`, `"7xKX.."`).
    pub key: serde_json::Value,
    /// Only the emitted fields that changed, nested by path.
    pub patch: serde_json::Value,
    /// Dotted paths of arrays whose new elements alone are in `patch`.
    pub append: Vec<String>,
    pub seq: Seq,
}

#[cfg(test)]
mod tests {
    use super::*;

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
