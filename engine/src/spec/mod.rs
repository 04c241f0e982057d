//! The `*.stack.json` model.

/// A stack file that cannot be used, with the JSON path of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    /// JSON path of the offending value, e.g. `$.entities[0].handlers[2].key_resolution`.
    pub path: String,
    /// What was expected there.
    pub message: String,
}
