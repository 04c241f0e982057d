//! Every cross-thread channel of the process, typed. Each is bounded; each says what happens when
//! it is full.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use stackcore_engine::view::{Output, SubId, SubscribeError, Subscription, ViewId};
use stackcore_engine::vm::ResolverRequest;
use stackcore_engine::Update;

/// Into a VM worker. Bounded; when full, ingest blocks (so it stops polling the gRPC stream and
/// HTTP/2 flow control holds the upstream) and reactors retry on their next turn.
#[derive(Debug)]
pub enum ToWorker {
    /// A raw upstream update for this worker's shard.
    Update(Update),
    /// Start a subscription; the worker answers on the reactor's [`ToReactor`] queue. A snapshot
    /// of more than `max_snapshot_rows` rows (the connection's limit; `None` unlimited) is
    /// refused with [`ToReactor::Rejected`] (`snapshot-limit-exceeded`) and nothing is sent.
    Subscribe {
        sub: SubId,
        req: Subscription,
        max_snapshot_rows: Option<usize>,
    },
    /// End a subscription (client unsubscribed or disconnected).
    Unsubscribe { sub: SubId },
    /// A value fetched for a resolver request this worker's VM emitted; the worker applies it
    /// (`VmContext::apply_resolver_result`) and routes the mutation like an update's. Comes from
    /// the worker's resolver thread on a queue of its own (bounded, `max_in_flight`; the resolver
    /// thread waits when it is full), so it never competes with ingest for the update queue.
    ResolverResult {
        request: ResolverRequest,
        value: Arc<serde_json::Value>,
    },
}

/// Into a reactor. Bounded; when full, the worker waits: frames are never dropped between stages.
/// After each batch the sender wakes the reactor's mio `Poll` through its `Waker`.
#[derive(Debug)]
pub enum ToReactor {
    /// The subscription is live: frames for it follow, in order, starting with its
    /// `subscribed` frame and snapshot (as [`Output::To`]).
    Subscribed { sub: SubId, view: ViewId },
    /// The subscription was refused; tell the client.
    Rejected { sub: SubId, error: SubscribeError },
    /// A frame to fan out or deliver.
    Frame(Output),
    /// A freshly accepted client socket (non-blocking); the reactor does the upgrade.
    Accept(mio::net::TcpStream),
    /// Close every WebSocket with 1001 "going away", flush best effort for a short while, exit.
    Shutdown,
}

/// One reactor's inbox and the waker that makes its poll loop look at it.
#[derive(Clone)]
pub struct ReactorHandle {
    pub tx: Sender<ToReactor>,
    pub waker: Arc<mio::Waker>,
}

impl ReactorHandle {
    /// Sends a message, waiting while the queue is full; `false` if the reactor is gone.
    /// The caller calls [`ReactorHandle::wake`] once per batch.
    pub fn send(&self, msg: ToReactor) -> bool {
        self.tx.send(msg).is_ok()
    }

    pub fn wake(&self) {
        let _ = self.waker.wake();
    }
}

/// The reactor index encoded in a [`SubId`]: its top 16 bits.
pub fn reactor_of(sub: SubId) -> usize {
    (sub.0 >> 48) as usize
}

/// Builds a [`SubId`] from a reactor index and a reactor-local number (low 48 bits).
pub fn sub_id(reactor: usize, local: u64) -> SubId {
    SubId(((reactor as u64) << 48) | (local & ((1 << 48) - 1)))
}

/// A bounded channel; `cap` comes from configuration.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    crossbeam_channel::bounded(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_ids_carry_their_reactor() {
        let s = sub_id(3, 77);
        assert_eq!(reactor_of(s), 3);
        assert_eq!(s.0 & 0xffff, 77);
        assert_ne!(sub_id(1, 77), sub_id(2, 77));
    }
}
