//! The synthetic chain: valid, deterministic account and instruction updates for any stack.

use crate::idl::IdlSet;
use crate::Update;

/// What the generator produces.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    pub seed: u64,
    /// Size of the address pool per account type (default 8).
    pub addresses_per_account_type: usize,
    pub start_slot: u64,
    pub updates_per_slot: u32,
    /// Share of updates that re-deliver a past update.
    pub duplicate_ratio: f64,
    /// Share of updates that deliver an older write late.
    pub out_of_order_ratio: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 1,
            addresses_per_account_type: 8,
            start_slot: 300_000_000,
            updates_per_slot: 4,
            duplicate_ratio: 0.02,
            out_of_order_ratio: 0.02,
        }
    }
}

pub struct Generator {
    cfg: SynthConfig,
}

impl Generator {
    pub fn new(_idls: &IdlSet, cfg: SynthConfig) -> Generator {
        Generator { cfg }
    }

    pub fn next_update(&mut self) -> Update {
        Update::Slot {
            slot: self.cfg.start_slot,
            timestamp: 0,
        }
    }
}
