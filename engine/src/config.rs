//! Limits of the engine's bounded structures, with the defaults of the HyperStack server.

use std::fmt;

/// A configuration value that makes no sense. Returned by `validate` and by the server builder;
/// the caller should fix the value it names: nothing is clamped silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {field}: {reason}")]
pub struct ConfigError {
    /// The dotted name of the offending setting, e.g. `state_table.max_entries`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: &'static str, reason: impl fmt::Display) -> Self {
        ConfigError {
            field,
            reason: reason.to_string(),
        }
    }
}

/// Bounds of the VM's per-entity state tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTableConfig {
    /// Entities kept per entity type; the least recently touched is evicted beyond it. Default 2,500.
    pub max_entries: usize,
    /// Elements kept per array field (the newest). Default 100.
    pub max_array_length: usize,
}

impl Default for StateTableConfig {
    fn default() -> Self {
        StateTableConfig {
            max_entries: 2_500,
            max_array_length: 100,
        }
    }
}

impl StateTableConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_entries == 0 {
            return Err(ConfigError::new(
                "state_table.max_entries",
                "must be at least 1",
            ));
        }
        if self.max_array_length == 0 {
            return Err(ConfigError::new(
                "state_table.max_array_length",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Bounds of the per-view entity cache that snapshots are served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityCacheConfig {
    /// Entities kept per view (LRU). Default 500.
    pub max_entities_per_view: usize,
    /// Elements kept per array field of a cached entity (the newest). Default 100.
    pub max_array_length: usize,
    /// Rows in the first snapshot frame. Default 50.
    pub initial_snapshot_batch_size: usize,
    /// Rows in every later snapshot frame. Default 100.
    pub subsequent_snapshot_batch_size: usize,
}

impl Default for EntityCacheConfig {
    fn default() -> Self {
        EntityCacheConfig {
            max_entities_per_view: 500,
            max_array_length: 100,
            initial_snapshot_batch_size: 50,
            subsequent_snapshot_batch_size: 100,
        }
    }
}

impl EntityCacheConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            (
                "entity_cache.max_entities_per_view",
                self.max_entities_per_view,
            ),
            ("entity_cache.max_array_length", self.max_array_length),
            (
                "entity_cache.initial_snapshot_batch_size",
                self.initial_snapshot_batch_size,
            ),
            (
                "entity_cache.subsequent_snapshot_batch_size",
                self.subsequent_snapshot_batch_size,
            ),
        ];
        for (field, value) in checks {
            if value == 0 {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_reference() {
        let s = StateTableConfig::default();
        assert_eq!((s.max_entries, s.max_array_length), (2_500, 100));
        let c = EntityCacheConfig::default();
        assert_eq!(c.max_entities_per_view, 500);
        assert_eq!(
            (
                c.initial_snapshot_batch_size,
                c.subsequent_snapshot_batch_size
            ),
            (50, 100)
        );
        assert!(s.validate().is_ok() && c.validate().is_ok());
    }

    #[test]
    fn zero_sizes_are_rejected_with_the_field_named() {
        let s = StateTableConfig {
            max_entries: 0,
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().field, "state_table.max_entries");
        let c = EntityCacheConfig {
            subsequent_snapshot_batch_size: 0,
            ..Default::default()
        };
        assert_eq!(
            c.validate().unwrap_err().field,
            "entity_cache.subsequent_snapshot_batch_size"
        );
    }
}
