//! WebSocket reactors. CONTRACT STUB: replaced by the reactor work (branch `reactor`).

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::channels::{ReactorHandle, ToReactor, ToWorker};
use crate::config::WebSocketConfig;
use crate::metrics::Metrics;

pub struct ReactorParts {
    pub handle: ReactorHandle,
    pub poll: mio::Poll,
    pub inbox: Receiver<ToReactor>,
}

impl ReactorParts {
    pub fn new(queue_capacity: usize) -> std::io::Result<ReactorParts> {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(usize::MAX))?);
        let (tx, inbox) = crossbeam_channel::bounded(queue_capacity);
        Ok(ReactorParts { handle: ReactorHandle { tx, waker }, poll, inbox })
    }
}

pub struct Router {
    pub workers: Vec<Sender<ToWorker>>,
    pub view_owner: HashMap<String, usize>,
}

pub struct ReactorContext {
    pub config: WebSocketConfig,
    pub router: Router,
    pub metrics: Arc<Metrics>,
    pub pin: bool,
}

pub fn spawn_reactor(
    _index: usize,
    _poll: mio::Poll,
    _inbox: Receiver<ToReactor>,
    _ctx: Arc<ReactorContext>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    unimplemented!("reactor work")
}

pub fn spawn_acceptor(
    _listener: std::net::TcpListener,
    _reactors: Vec<ReactorHandle>,
    _ctx: Arc<ReactorContext>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    unimplemented!("reactor work")
}
