//! WebSocket reactors: mio event loops that own client connections, their subscriptions and
//! the fan-out of frames (`../shared/protocol.md` §1).
//!
//! ```text
//! acceptor ──ToReactor::Accept──▶ reactor i (mio Poll: sockets + Waker)
//!                                   │ client subscribe ──ToWorker::Subscribe──▶ worker owning the view
//!   worker ──ToReactor::{Subscribed,Rejected,Frame} + wake──▶ reactor i ──▶ per-connection queues
//! ```
//!
//! ## Threads
//! - One **acceptor** ([`spawn_acceptor`]) accepts TCP connections and hands each to a reactor
//!   round-robin with [`ToReactor::Accept`] + wake. Past `max_clients` open connections it
//!   answers HTTP 503 with a JSON body itself and never hands the socket on. It stops when any
//!   reactor receives [`ToReactor::Shutdown`] (a shared flag plus a mio `Waker` in its own
//!   `Poll`), or when a reactor is gone.
//! - R **reactors** ([`spawn_reactor`]), each a single thread with a mio `Poll`, optionally
//!   pinned. A reactor owns its connections outright; nothing about a connection is shared.
//!
//! ## A turn of the loop
//! 1. Socket events: read (handshake or WebSocket messages) and flush writable sockets.
//! 2. The inbox, up to [`INBOX_BATCH`] messages: `Subscribed` activates a subscription,
//!    `Frame(Broadcast)` goes to every active subscription of the view whose key filter admits
//!    the key (list/append: no key or equal key; state: equal key), `Frame(To)` to one.
//! 3. Subscribe/unsubscribe messages that did not fit a full worker queue are retried in order
//!    (while any wait, client input is not read, so that backlog cannot grow without bound).
//! 4. Every connection that got output is flushed; a timer sweep pings silent peers, closes
//!    idle ones and ends closings that overran their deadline.
//!
//! ## Output, zero-copy
//! A frame arrives once as a [`SharedFrame`](stackcore_engine::frame::SharedFrame) (complete WebSocket message, already framed).
//! Fan-out pushes an `Arc` clone into each target connection's queue; a connection drains its
//! queue with `write_vectored` over the frames' bytes (see [`conn`]). No payload copy per client,
//! no allocation per frame once queues have grown to their working size.
//!
//! ## Limits and the slow-consumer policy
//! Each connection may hold `message_queue_size` frames and `max_outbound_bytes` bytes queued.
//! When a new frame would pass either, the reactor first tries to write; if the socket still
//! refuses, the connection is a **slow consumer**: its unstarted frames are dropped, it gets a
//! text error `{"type":"error","error":"slow-consumer",..,"retryable":true,"fatal":true}` and a
//! close frame with code **4008** and reason `slow-consumer`, and it is dropped once those are
//! written or after one `ping_interval`. 4008 is an application code the TypeScript client treats
//! as a plain disconnect (it reconnects with backoff; only 1008 or a `code: msg` reason are read
//! as auth failures). The Rust SDK (`hyperstack-sdk` 0.6.9, read from its source) reconnects too:
//! the error frame's `retryable:true` decides (`SocketIssue::retryable`), and a close reason without
//! a `code:` prefix is retryable as well; `slow-consumer` is not one of its auth codes, so no token
//! refresh is attempted. Memory per connection is therefore bounded by the budget plus one frame.
//!
//! Other closes: idle (no inbound for `idle_timeout`) → 4000 `idle-timeout`; inbound message over
//! `max_message_size` → 1009; bad UTF-8 → 1007; protocol errors → 1002; shutdown → 1001
//! `going away`; token expired while connected → fatal error `token-expired` then 1008
//! `token-expired: ...` (so clients fetch a fresh token); over `max_messages_per_minute` inbound
//! text messages → fatal error `rate-limit-exceeded` (`retry_after` = the window) then 4029
//! `rate-limit-exceeded`; over `max_bytes_per_minute` of frame payload → the frames queued within
//! the budget are flushed, then fatal error `egress-limit-exceeded` and 4029
//! `egress-limit-exceeded` (both budgets are fixed windows kept on the loop's clock, see
//! [`conn::RateBudget`]; the bare reason keeps both published clients reconnecting with backoff).
//! A snapshot over `max_snapshot_rows` (passed to the worker with the subscribe) fails only that
//! subscription with the non-fatal error `snapshot-limit-exceeded`. Connections per subject, IP
//! and `Origin` are counted across reactors and refused at the upgrade with HTTP 429. A peer silent for `ping_interval` gets a
//! WebSocket ping; WebSocket pings are answered by tungstenite. The HTTP upgrade must complete
//! within `idle_timeout` of the accept.
//!
//! ## Metrics
//! `connected_clients` counts every socket the acceptor handed on until its reactor drops it
//! (handshaking and closing ones included); it is also what `max_clients` is checked against.
//! `subscriptions` counts active subscriptions (activated by the worker), `pending_outbound_bytes`
//! the bytes queued in all connections, `frames_sent_total` the data frames fully written,
//! `bytes_sent_total` every byte written. Counters are accumulated per turn and published once.
//!
//! ## Memory per connection
//! tungstenite's read buffer (4 KiB, growing only while a message up to `max_message_size` is
//! read), the control buffer (≤ [`conn::CTRL_CAP`]), the queue (≤ `message_queue_size` `Arc`s of
//! frames shared with every other subscriber, ≤ `max_outbound_bytes` of them counted against this
//! connection) and its subscriptions (≤ the session's subscription limit).
//!
//! ## Subscriptions
//! Sub-key `view:key` (or `view:*`) per connection; a duplicate subscribe keeps the existing
//! subscription and sends nothing (the reference killed the stream instead). An unknown view is
//! answered at once with an `unknown-view` error; unsubscribe of an unknown sub-key is a no-op. A
//! disconnect unsubscribes everything the connection had. A keyless subscription to a state view
//! only ever matches key `""` (as in the reference); the reactor learns the mode from the
//! subscription's own `subscribed` frame, the first frame the worker sends for it.

mod acceptor;
pub mod auth;
pub mod conn;
mod event_loop;
pub mod messages;
mod shared;

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::channels::{ReactorHandle, ToReactor, ToWorker};
use crate::config::WebSocketConfig;
use crate::metrics::Metrics;

pub use acceptor::spawn_acceptor;

/// Inbox messages handled per turn before sockets are looked at again.
pub const INBOX_BATCH: usize = 4_096;

/// Token of the reactor's waker in its `Poll`.
pub(crate) const WAKER_TOKEN: mio::Token = mio::Token(usize::MAX);

/// A reactor's `Poll`, the handle others use to reach it, and its inbox.
pub struct ReactorParts {
    pub handle: ReactorHandle,
    pub poll: mio::Poll,
    pub inbox: Receiver<ToReactor>,
}

impl ReactorParts {
    /// A `Poll` with a waker registered, and an inbox of `queue_capacity` messages.
    pub fn new(queue_capacity: usize) -> std::io::Result<ReactorParts> {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER_TOKEN)?);
        let (tx, inbox) = crate::channels::bounded(queue_capacity);
        Ok(ReactorParts {
            handle: ReactorHandle { tx, waker },
            poll,
            inbox,
        })
    }
}

/// Which worker owns each view; an unknown view is answered with an error at once.
pub struct Router {
    pub workers: Vec<Sender<ToWorker>>,
    pub view_owner: HashMap<String, usize>,
}

/// Everything a reactor and the acceptor share, read-only.
pub struct ReactorContext {
    pub config: WebSocketConfig,
    pub router: Router,
    pub metrics: Arc<Metrics>,
    pub pin: bool,
}

/// Starts reactor `index` on its own thread (pinned to core `index` when `ctx.pin`).
pub fn spawn_reactor(
    index: usize,
    poll: mio::Poll,
    inbox: Receiver<ToReactor>,
    ctx: Arc<ReactorContext>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("reactor-{index}"))
        .spawn(move || {
            if ctx.pin {
                crate::pin::pin_current(crate::pin::Role::Reactor, index);
            }
            event_loop::Reactor::new(index, poll, inbox, ctx).run();
        })
}
