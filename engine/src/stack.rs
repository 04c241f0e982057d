//! A loaded stack: the parsed file, its compiled IDL layouts and its compiled handlers.
//!
//! CONTRACT (filled in by the engine work): `Stack::from_json` parses, validates and compiles;
//! it is immutable afterwards and shared by every VM worker that runs the stack.

use crate::event::Pubkey;
use crate::spec::SpecError;
use crate::view::ViewDef;

pub struct Stack {
    name: String,
}

impl Stack {
    /// Parses, validates and compiles a `*.stack.json` file.
    pub fn from_json(_bytes: &[u8]) -> Result<Stack, SpecError> {
        todo!("engine")
    }

    /// `stack_name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The programs whose accounts and instructions the stack reads (the upstream filter).
    pub fn program_ids(&self) -> Vec<Pubkey> {
        todo!("engine")
    }

    /// Each entity's `state_name` with its derived views, in file order.
    pub fn entity_views(&self) -> Vec<(&str, &[ViewDef])> {
        todo!("engine")
    }
}
