//! What enters the engine: raw upstream updates, exactly as the chain gave them.
//!
//! Ingest fills these from Yellowstone protobuf (or a recording, or the synthetic chain) and hands
//! them over without looking inside: decoding is the engine's job. Time is part of the event: the
//! engine has no clock.

/// A Solana public key (32 bytes).
pub type Pubkey = [u8; 32];
/// A transaction signature (64 bytes).
pub type Signature = [u8; 64];

/// One upstream update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    Account(AccountUpdate),
    Instruction(InstructionUpdate),
    /// A slot was observed; drives slot-scheduled resolvers and `ContextSlot` reads.
    Slot {
        slot: u64,
        timestamp: i64,
    },
}

impl Update {
    pub fn slot(&self) -> u64 {
        match self {
            Update::Account(a) => a.slot,
            Update::Instruction(i) => i.slot,
            Update::Slot { slot, .. } => *slot,
        }
    }
}

/// An account write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUpdate {
    pub slot: u64,
    /// Orders writes to the same account within a slot; the `seq` index of its mutations.
    pub write_version: u64,
    pub pubkey: Pubkey,
    /// The owning program; selects the IDL that decodes `data`.
    pub owner: Pubkey,
    pub data: Vec<u8>,
    /// The transaction that wrote it, when known.
    pub signature: Option<Signature>,
    /// Unix seconds, as given by the source (block time or the ingest clock).
    pub timestamp: i64,
}

/// One instruction of a transaction, addressed to a program the stack knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstructionUpdate {
    pub slot: u64,
    /// Position of the transaction in its slot; the `seq` index of its mutations.
    pub txn_index: u64,
    pub signature: Signature,
    pub program_id: Pubkey,
    /// The instruction's accounts in order; the IDL names them.
    pub accounts: Vec<Pubkey>,
    pub data: Vec<u8>,
    /// Unix seconds, as given by the source.
    pub timestamp: i64,
}
