//! # stackcore-engine
//!
//! The pure core of stackcore. Everything a stack does to data happens here, and nothing else does:
//! no sockets, no threads, no clock and no randomness of its own. Slot and time arrive with events,
//! so the same input always gives the same output, and tests step the engine like quinn steps
//! `quinn-proto`: push an event, look at what came out.
//!
//! ```text
//! Update (raw account / instruction bytes, slot, time)
//!   └─ idl::decode ─► vm::VmContext::apply ─► Mutation ─► view::Views::apply ─► Output(SharedFrame)
//! ```
//!
//! | module     | concept |
//! |------------|---------|
//! | [`spec`]   | the `*.stack.json` model, version check, errors with JSON paths |
//! | [`idl`]    | IDL layouts compiled at load time; decode (borrowing reader) and encode |
//! | [`vm`]     | handlers compiled at load time (rows as slots, event fields by index), the exec loop, computed fields, state tables |
//! | [`view`]   | projector, entity cache, sorted windows, subscriptions and snapshots |
//! | [`frame`]  | the wire envelope, `seq`, gzip, the WebSocket header in front of every frame |

pub mod b58;
pub mod config;
pub mod event;
pub mod frame;
pub mod idl;
pub mod mutation;
pub mod spec;
pub mod stack;
pub mod synth;
pub mod value;
pub mod view;
pub mod vm;

pub use config::{ConfigError, EntityCacheConfig, StateTableConfig};
pub use event::{AccountUpdate, InstructionUpdate, Pubkey, Signature, Update};
pub use frame::SharedFrame;
pub use mutation::{Mutation, Patch, Seq};
pub use stack::Stack;
pub use view::{Output, SubId, Subscription, ViewId, Views};
pub use vm::VmContext;
