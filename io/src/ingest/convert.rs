//! Yellowstone protobuf ↔ engine [`Update`], in both directions.
//!
//! Inbound ([`Converter::convert`]) is the only place that looks inside a `SubscribeUpdate`:
//! - an account write becomes one [`Update::Account`];
//! - a transaction becomes one [`Update::Instruction`] per instruction, outer and inner, whose
//!   program is one of the stack's, in execution order (outer instruction `i`, then the inner
//!   instructions recorded under index `i`). Account indexes resolve through the message's static
//!   keys followed by the loaded writable and loaded read-only addresses (the v0 key order);
//! - a slot status at the subscription's commitment becomes one [`Update::Slot`].
//!
//! Time is the ingest clock (`now_unix`, unix seconds), passed in so that replay can use the
//! recorded receive time and reproduce the same updates.
//!
//! Outbound ([`to_proto`]) serves the mock server and the synthetic chain: it wraps an engine
//! update in the wire message a Geyser server would send, so the client path is exercised for real.

use stackcore_engine::{AccountUpdate, InstructionUpdate, Pubkey, Signature, Update};
use yellowstone_grpc_proto::geyser::{
    subscribe_update::UpdateOneof, SlotStatus, SubscribeUpdate, SubscribeUpdateAccount,
    SubscribeUpdateAccountInfo, SubscribeUpdateSlot, SubscribeUpdateTransaction,
    SubscribeUpdateTransactionInfo,
};
use yellowstone_grpc_proto::solana::storage::confirmed_block::{
    CompiledInstruction, Message, MessageHeader, Transaction, TransactionStatusMeta,
};

use crate::config::Commitment;

/// Why an upstream update could not be converted. The caller counts it
/// (`upstream_errors_total`, `HealthMonitor::record_error`), skips the update and reads on: one
/// malformed update never ends the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{field} has {len} bytes, expected {expected}")]
    BadLength {
        field: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{what} index {index} is out of range (transaction has {len} account keys)")]
    IndexOutOfRange {
        what: &'static str,
        index: usize,
        len: usize,
    },
    /// Outbound only: a transaction message addresses at most 256 keys.
    #[error("an instruction with {0} distinct keys cannot be encoded (at most 256)")]
    TooManyKeys(usize),
}

/// What one upstream message was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Account, transaction or slot: zero or more updates were appended.
    Data,
    /// The server's keep-alive: answer it with a ping request.
    Ping,
    /// The answer to our ping.
    Pong,
    /// A message this client does not subscribe to (blocks, entries, other slot statuses...).
    Ignored,
}

/// Inbound conversion for one stack.
#[derive(Debug, Clone)]
pub struct Converter {
    program_ids: Vec<Pubkey>,
    slot_status: SlotStatus,
}

impl Converter {
    pub fn new(program_ids: Vec<Pubkey>, commitment: Commitment) -> Self {
        let slot_status = match commitment {
            Commitment::Processed => SlotStatus::SlotProcessed,
            Commitment::Confirmed => SlotStatus::SlotConfirmed,
            Commitment::Finalized => SlotStatus::SlotFinalized,
        };
        Converter {
            program_ids,
            slot_status,
        }
    }

    fn is_ours(&self, program: &[u8]) -> bool {
        self.program_ids.iter().any(|p| p[..] == *program)
    }

    /// Appends the updates carried by `msg` to `out`. On error nothing is appended.
    pub fn convert(
        &self,
        msg: &SubscribeUpdate,
        now_unix: i64,
        out: &mut Vec<Update>,
    ) -> Result<Kind, ConvertError> {
        match &msg.update_oneof {
            Some(UpdateOneof::Account(a)) => {
                out.push(Update::Account(account(a, now_unix)?));
                Ok(Kind::Data)
            }
            Some(UpdateOneof::Transaction(t)) => {
                let start = out.len();
                let r = self.transaction(t, now_unix, out);
                if r.is_err() {
                    out.truncate(start);
                }
                r.map(|_| Kind::Data)
            }
            Some(UpdateOneof::Slot(s)) => {
                if s.status == self.slot_status as i32 {
                    out.push(Update::Slot {
                        slot: s.slot,
                        timestamp: now_unix,
                    });
                    Ok(Kind::Data)
                } else {
                    Ok(Kind::Ignored)
                }
            }
            Some(UpdateOneof::Ping(_)) => Ok(Kind::Ping),
            Some(UpdateOneof::Pong(_)) => Ok(Kind::Pong),
            Some(_) => Ok(Kind::Ignored),
            None => Err(ConvertError::Missing("update_oneof")),
        }
    }

    fn transaction(
        &self,
        t: &SubscribeUpdateTransaction,
        now_unix: i64,
        out: &mut Vec<Update>,
    ) -> Result<(), ConvertError> {
        let info = t
            .transaction
            .as_ref()
            .ok_or(ConvertError::Missing("transaction.transaction"))?;
        if info.is_vote {
            return Ok(());
        }
        let meta = info.meta.as_ref();
        if meta.is_some_and(|m| m.err.is_some()) {
            // A failed transaction changed nothing.
            return Ok(());
        }
        let signature: Signature = fixed(&info.signature, "transaction.signature")?;
        let message = info
            .transaction
            .as_ref()
            .and_then(|tx| tx.message.as_ref())
            .ok_or(ConvertError::Missing("transaction.message"))?;
        let loaded = meta.into_iter().flat_map(|m| {
            m.loaded_writable_addresses
                .iter()
                .chain(&m.loaded_readonly_addresses)
        });
        let keys = message
            .account_keys
            .iter()
            .chain(loaded)
            .map(|k| fixed::<32>(k, "transaction account key"))
            .collect::<Result<Vec<Pubkey>, _>>()?;
        let key = |what, index: usize| {
            keys.get(index)
                .copied()
                .ok_or(ConvertError::IndexOutOfRange {
                    what,
                    index,
                    len: keys.len(),
                })
        };
        let mut emit = |program_index: u32, accounts: &[u8], data: &[u8]| {
            let program_id = key("program id", program_index as usize)?;
            if !self.is_ours(&program_id) {
                return Ok(());
            }
            let accounts = accounts
                .iter()
                .map(|&i| key("instruction account", i as usize))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Update::Instruction(InstructionUpdate {
                slot: t.slot,
                txn_index: info.index,
                signature,
                program_id,
                accounts,
                data: data.to_vec(),
                timestamp: now_unix,
            }));
            Ok(())
        };
        let inner = meta.map(|m| &m.inner_instructions[..]).unwrap_or(&[]);
        for (i, ix) in message.instructions.iter().enumerate() {
            emit(ix.program_id_index, &ix.accounts, &ix.data)?;
            for group in inner.iter().filter(|g| g.index as usize == i) {
                for ix in &group.instructions {
                    emit(ix.program_id_index, &ix.accounts, &ix.data)?;
                }
            }
        }
        Ok(())
    }
}

fn account(a: &SubscribeUpdateAccount, now_unix: i64) -> Result<AccountUpdate, ConvertError> {
    let info = a
        .account
        .as_ref()
        .ok_or(ConvertError::Missing("account.account"))?;
    Ok(AccountUpdate {
        slot: a.slot,
        write_version: info.write_version,
        pubkey: fixed(&info.pubkey, "account.pubkey")?,
        owner: fixed(&info.owner, "account.owner")?,
        data: info.data.clone(),
        signature: info
            .txn_signature
            .as_ref()
            .map(|s| fixed(s, "account.txn_signature"))
            .transpose()?,
        timestamp: now_unix,
    })
}

fn fixed<const N: usize>(bytes: &[u8], field: &'static str) -> Result<[u8; N], ConvertError> {
    bytes.try_into().map_err(|_| ConvertError::BadLength {
        field,
        len: bytes.len(),
        expected: N,
    })
}

/// The wire message a Geyser server sends for `update` (slot statuses as processed; no
/// `created_at`: the server stamps it when it sends).
///
/// An instruction becomes a one-instruction transaction whose account keys are the program and
/// the instruction's accounts, deduplicated in order of first use.
pub fn to_proto(update: &Update) -> Result<SubscribeUpdate, ConvertError> {
    let oneof = match update {
        Update::Account(a) => UpdateOneof::Account(SubscribeUpdateAccount {
            account: Some(SubscribeUpdateAccountInfo {
                pubkey: a.pubkey.to_vec(),
                owner: a.owner.to_vec(),
                data: a.data.clone(),
                write_version: a.write_version,
                txn_signature: a.signature.map(|s| s.to_vec()),
                ..Default::default()
            }),
            slot: a.slot,
            ..Default::default()
        }),
        Update::Instruction(ix) => {
            let mut keys: Vec<Pubkey> = vec![ix.program_id];
            let mut index_of = |k: &Pubkey| match keys.iter().position(|x| x == k) {
                Some(i) => i,
                None => {
                    keys.push(*k);
                    keys.len() - 1
                }
            };
            let accounts: Vec<usize> = ix.accounts.iter().map(&mut index_of).collect();
            if keys.len() > 256 {
                return Err(ConvertError::TooManyKeys(keys.len()));
            }
            let message = Message {
                header: Some(MessageHeader {
                    num_required_signatures: 1,
                    ..Default::default()
                }),
                account_keys: keys.iter().map(|k| k.to_vec()).collect(),
                instructions: vec![CompiledInstruction {
                    program_id_index: 0,
                    accounts: accounts.iter().map(|&i| i as u8).collect(),
                    data: ix.data.clone(),
                }],
                ..Default::default()
            };
            UpdateOneof::Transaction(SubscribeUpdateTransaction {
                transaction: Some(SubscribeUpdateTransactionInfo {
                    signature: ix.signature.to_vec(),
                    is_vote: false,
                    transaction: Some(Transaction {
                        signatures: vec![ix.signature.to_vec()],
                        message: Some(message),
                    }),
                    meta: Some(TransactionStatusMeta::default()),
                    index: ix.txn_index,
                }),
                slot: ix.slot,
                bank_id: 0,
            })
        }
        Update::Slot { slot, .. } => UpdateOneof::Slot(SubscribeUpdateSlot {
            slot: *slot,
            parent: slot.checked_sub(1),
            status: SlotStatus::SlotProcessed as i32,
            ..Default::default()
        }),
    };
    Ok(SubscribeUpdate {
        filters: Vec::new(),
        update_oneof: Some(oneof),
        created_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use yellowstone_grpc_proto::solana::storage::confirmed_block::{
        InnerInstruction, InnerInstructions,
    };

    const PROG: Pubkey = [7; 32];

    fn conv() -> Converter {
        Converter::new(vec![PROG], Commitment::Processed)
    }

    fn tx(
        keys: Vec<Vec<u8>>,
        ixs: Vec<CompiledInstruction>,
        meta: TransactionStatusMeta,
    ) -> SubscribeUpdate {
        SubscribeUpdate {
            update_oneof: Some(UpdateOneof::Transaction(SubscribeUpdateTransaction {
                transaction: Some(SubscribeUpdateTransactionInfo {
                    signature: vec![9; 64],
                    transaction: Some(Transaction {
                        signatures: vec![vec![9; 64]],
                        message: Some(Message {
                            account_keys: keys,
                            instructions: ixs,
                            ..Default::default()
                        }),
                    }),
                    meta: Some(meta),
                    index: 5,
                    is_vote: false,
                }),
                slot: 42,
                bank_id: 0,
            })),
            ..Default::default()
        }
    }

    #[test]
    fn engine_updates_survive_the_wire_round_trip() {
        let updates = vec![
            Update::Account(AccountUpdate {
                slot: 3,
                write_version: 11,
                pubkey: [1; 32],
                owner: PROG,
                data: vec![1, 2, 3],
                signature: Some([4; 64]),
                timestamp: 99,
            }),
            Update::Instruction(InstructionUpdate {
                slot: 3,
                txn_index: 2,
                signature: [5; 64],
                program_id: PROG,
                accounts: vec![[1; 32], [2; 32], [1; 32], PROG],
                data: vec![8, 8],
                timestamp: 99,
            }),
            Update::Slot {
                slot: 3,
                timestamp: 99,
            },
        ];
        let mut out = Vec::new();
        for u in &updates {
            let kind = conv().convert(&to_proto(u).unwrap(), 99, &mut out).unwrap();
            assert_eq!(kind, Kind::Data);
        }
        assert_eq!(out, updates);
    }

    #[test]
    fn outer_and_inner_instructions_of_the_stack_resolve_loaded_addresses() {
        let other = vec![3u8; 32];
        let meta = TransactionStatusMeta {
            loaded_writable_addresses: vec![vec![20; 32]],
            loaded_readonly_addresses: vec![vec![21; 32]],
            inner_instructions: vec![InnerInstructions {
                index: 0,
                instructions: vec![InnerInstruction {
                    program_id_index: 1,
                    accounts: vec![3, 2],
                    data: vec![2],
                    stack_height: Some(2),
                }],
            }],
            ..Default::default()
        };
        let ixs = vec![
            CompiledInstruction {
                program_id_index: 0,
                accounts: vec![1],
                data: vec![0],
            },
            CompiledInstruction {
                program_id_index: 1,
                accounts: vec![2],
                data: vec![1],
            },
        ];
        let msg = tx(vec![other.clone(), PROG.to_vec()], ixs, meta);
        let mut out = Vec::new();
        conv().convert(&msg, 1, &mut out).unwrap();
        let got: Vec<(Vec<u8>, Vec<Pubkey>)> = out
            .iter()
            .map(|u| match u {
                Update::Instruction(i) => (i.data.clone(), i.accounts.clone()),
                _ => panic!("not an instruction"),
            })
            .collect();
        // Outer 0 belongs to another program; its inner instruction (data 2) and outer 1 are ours.
        assert_eq!(
            got,
            vec![
                (vec![2], vec![[21; 32], [20; 32]]),
                (vec![1], vec![[20; 32]])
            ]
        );
        assert!(out
            .iter()
            .all(|u| matches!(u, Update::Instruction(i) if i.txn_index == 5 && i.slot == 42)));
    }

    #[test]
    fn malformed_updates_are_typed_errors_and_append_nothing() {
        let mut out = Vec::new();
        let bad_index = tx(
            vec![PROG.to_vec()],
            vec![CompiledInstruction {
                program_id_index: 0,
                accounts: vec![0, 9],
                data: vec![],
            }],
            TransactionStatusMeta::default(),
        );
        assert_eq!(
            conv().convert(&bad_index, 0, &mut out),
            Err(ConvertError::IndexOutOfRange {
                what: "instruction account",
                index: 9,
                len: 1
            })
        );
        let short_key = tx(vec![vec![1; 31]], vec![], TransactionStatusMeta::default());
        assert!(matches!(
            conv().convert(&short_key, 0, &mut out),
            Err(ConvertError::BadLength { len: 31, .. })
        ));
        assert_eq!(
            conv().convert(&SubscribeUpdate::default(), 0, &mut out),
            Err(ConvertError::Missing("update_oneof"))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn slot_statuses_other_than_the_commitment_are_ignored() {
        let confirmed = SubscribeUpdate {
            update_oneof: Some(UpdateOneof::Slot(SubscribeUpdateSlot {
                slot: 8,
                status: SlotStatus::SlotConfirmed as i32,
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut out = Vec::new();
        assert_eq!(conv().convert(&confirmed, 0, &mut out), Ok(Kind::Ignored));
        let c = Converter::new(vec![PROG], Commitment::Confirmed);
        assert_eq!(c.convert(&confirmed, 0, &mut out), Ok(Kind::Data));
        assert_eq!(
            out,
            vec![Update::Slot {
                slot: 8,
                timestamp: 0
            }]
        );
    }
}
