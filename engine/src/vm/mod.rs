//! The VM: compiled handlers run over decoded events against bounded state tables.

use crate::config::StateTableConfig;
use crate::event::Update;
use crate::mutation::Mutation;
use crate::stack::Stack;

/// Why an update produced nothing. The caller counts it and goes on; the update is skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("decode: {0}")]
    Decode(String),
}

/// The state of one VM: entity tables, indexes, pending queues. CONTRACT (filled in by the engine work).
pub struct VmContext {
    _cfg: StateTableConfig,
}

impl VmContext {
    pub fn new() -> Self {
        Self::new_with_config(StateTableConfig::default())
    }

    pub fn new_with_config(cfg: StateTableConfig) -> Self {
        VmContext { _cfg: cfg }
    }

    /// Decodes one update with the stack's IDLs and runs its handlers; pushes the mutations.
    pub fn apply(
        &mut self,
        _stack: &Stack,
        _update: &Update,
        _out: &mut Vec<Mutation>,
    ) -> Result<(), ApplyError> {
        todo!("engine")
    }
}

impl Default for VmContext {
    fn default() -> Self {
        Self::new()
    }
}
