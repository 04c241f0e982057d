//! The compact value type of the hot path.
