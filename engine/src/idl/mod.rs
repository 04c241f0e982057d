//! IDL layouts: decode account and instruction bytes, and encode them back.

use std::sync::Arc;

use crate::event::Pubkey;
use crate::spec::SpecError;
use crate::value::Value;

/// Every IDL of a stack, compiled.
pub struct IdlSet {
    event_types: Vec<EventType>,
}

/// One event type a stack can receive: an account type or an instruction of one of its programs.
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    /// `"ore::RoundState"` for accounts, `"ore::DeployIxState"` for instructions.
    pub name: Arc<str>,
    /// The IDL's name, e.g. `"ore"`.
    pub program: Arc<str>,
    pub program_id: Pubkey,
    pub is_account: bool,
    /// Top-level fields (accounts) or args (instructions), in IDL order.
    pub field_names: Vec<Arc<str>>,
    /// Instruction accounts in IDL order; empty for account types.
    pub account_names: Vec<Arc<str>>,
}

/// A decoded event record, reused across events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    pub event_type: u32,
    /// One value per `EventType::field_names` entry.
    pub fields: Vec<Value>,
    /// Instruction accounts, one per `EventType::account_names` entry (may be shorter when trailing
    /// optional accounts are absent).
    pub accounts: Vec<Pubkey>,
    /// The account address (`__account_address`), for account updates.
    pub address: Option<Pubkey>,
}

/// Bytes built from a reference-shaped JSON event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Account data or instruction data, discriminator included.
    pub data: Vec<u8>,
    /// Instruction accounts in IDL order; empty for accounts.
    pub accounts: Vec<Pubkey>,
}

/// Why an update could not be decoded. Every variant: count it, skip the event, carry on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The update's program is not one of the stack's IDLs. Counted, the event skipped.
    #[error("unknown program {}", bs58::encode(.program_id).into_string())]
    UnknownProgram { program_id: Pubkey },
    /// No account type / instruction of the program has this discriminator. Counted, the event skipped.
    #[error("unknown discriminator for program {program}")]
    UnknownDiscriminator { program: Arc<str>, is_account: bool },
}

/// Why a JSON event could not be encoded (tests and the synthetic chain only).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// No such event type id.
    #[error("unknown event type {0}")]
    UnknownEventType(u32),
}

impl IdlSet {
    /// `idls` is the stack file's `idls` array. Errors carry JSON paths like `$.idls[0].types[3].type`.
    pub fn from_json(_idls: &serde_json::Value) -> Result<IdlSet, SpecError> {
        Err(SpecError {
            path: "$.idls".into(),
            message: "not implemented yet".into(),
        })
    }

    pub fn event_types(&self) -> &[EventType] {
        &self.event_types
    }

    pub fn event_type_id(&self, name: &str) -> Option<u32> {
        self.event_types
            .iter()
            .position(|e| &*e.name == name)
            .map(|i| i as u32)
    }

    /// Decodes an Account or Instruction update into `out`, reusing its buffers.
    pub fn decode(&self, _update: &crate::Update, _out: &mut Decoded) -> Result<(), DecodeError> {
        Err(DecodeError::UnknownProgram {
            program_id: [0; 32],
        })
    }

    /// The reference-shaped decoded JSON event (§8.1) → the same record.
    pub fn decoded_from_json(
        &self,
        _event_type: u32,
        _v: &serde_json::Value,
        _out: &mut Decoded,
    ) -> Result<(), DecodeError> {
        Err(DecodeError::UnknownProgram {
            program_id: [0; 32],
        })
    }

    /// Record → the reference-shaped JSON event.
    pub fn to_reference_json(&self, _d: &Decoded) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Reference-shaped JSON → account data or instruction data bytes (+ instruction accounts).
    pub fn encode(&self, event_type: u32, _v: &serde_json::Value) -> Result<Encoded, EncodeError> {
        Err(EncodeError::UnknownEventType(event_type))
    }

    pub fn program_ids(&self) -> Vec<Pubkey> {
        Vec::new()
    }
}
