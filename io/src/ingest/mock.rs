//! A Geyser (Yellowstone gRPC) server on loopback, for tests, perf and the embedded synthetic
//! source.
//!
//! It speaks the real protocol through tonic, so a client talking to it exercises the same path
//! as against Yellowstone:
//! - **filters**: account filters (`account`, `owner`), transaction filters (`vote`, `failed`,
//!   `account_include` / `exclude` / `required`, over static and loaded keys) and slot filters.
//!   A request carrying `ping` is answered with a pong and leaves the filters alone (Yellowstone's
//!   rule); any other request replaces them.
//! - **`from_slot`**: everything published is kept in a bounded history; a subscription with
//!   `from_slot = S` first gets every kept message published once the chain reached slot `S`
//!   (the "chain slot" is the highest slot published so far, so a late write for an older slot
//!   is replayed with the slot it was published in). A slot older than the history is refused
//!   with `OutOfRange`, as Yellowstone does.
//! - **`x-token`**: when configured, a mismatch is refused with `Unauthenticated`.
//! - **pings** every `ping_interval` (Yellowstone: 10 s) on every stream.
//! - **faults** on command ([`MockHandle::fault`]): drop every stream, stall, send malformed
//!   messages, restart (stop listening, wait, listen again on the same port).
//!
//! Each subscription reads the shared history at its own cursor; there are no per-subscriber
//! queues besides tonic's bounded response channel. A subscriber that falls behind the history
//! is ended with `DataLoss`. [`MockHandle::publish_wait`] gives a publisher backpressure instead.
//!
//! [`MockGeyser::start`] runs the server on its own thread and runtime (tests, perf);
//! [`MockGeyser::spawn`] runs it as tasks of the current runtime (the embedded synthetic source).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use stackcore_engine::{Pubkey, Update};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use yellowstone_grpc_proto::geyser::geyser_server::{Geyser, GeyserServer};
use yellowstone_grpc_proto::geyser::subscribe_update::UpdateOneof;
use yellowstone_grpc_proto::geyser::*;
use yellowstone_grpc_proto::solana::storage::confirmed_block::{
    CompiledInstruction, Message, Transaction,
};

use super::convert::{to_proto, ConvertError};

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Default `127.0.0.1:0` (any free port; see [`MockHandle::addr`]).
    pub bind: SocketAddr,
    /// The `x-token` clients must send; `None` (default) accepts any.
    pub x_token: Option<String>,
    /// Server pings on every stream. Default 10 s (Yellowstone's interval).
    pub ping_interval: Duration,
    /// Messages kept for `from_slot` and slow subscribers. Default 65,536.
    pub history: usize,
    /// Messages queued per stream in tonic's response channel. Default 256.
    pub stream_buffer: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            x_token: None,
            ping_interval: Duration::from_secs(10),
            history: 65_536,
            stream_buffer: 256,
        }
    }
}

/// A fault to inject.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// End every open stream with `Unavailable` (the server keeps listening).
    DropStreams,
    /// Stop sending anything (data and pings) on every stream open now, until [`Fault::Resume`];
    /// streams opened later are served normally (a reconnect gets around a stalled stream).
    Stall,
    /// End a [`Fault::Stall`].
    Resume,
    /// Publish [`MALFORMED_COUNT`] malformed messages that bypass the filters: an account with a
    /// 31-byte pubkey, a transaction whose program index is out of range, a message without
    /// payload.
    Malformed,
    /// End every stream, stop listening, wait `down_for`, listen again on the same address.
    Restart { down_for: Duration },
}

/// How many messages one [`Fault::Malformed`] publishes.
pub const MALFORMED_COUNT: u64 = 3;

/// The mock server. See the module docs.
pub struct MockGeyser;

impl MockGeyser {
    /// Starts the server on its own thread (named `mock-geyser`) and tokio runtime. Usable from
    /// plain threads; [`MockHandle::stop`] or drop stops it.
    pub fn start(cfg: MockConfig) -> std::io::Result<MockHandle> {
        let (listener, shared) = bind(cfg)?;
        let s = shared.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("mock-geyser".into())
            .spawn(move || {
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => supervise(s, l).await,
                        Err(e) => tracing::error!("mock geyser: {e}"),
                    }
                })
            })?;
        Ok(MockHandle {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Starts the server as tasks of the current tokio runtime (must be called inside one).
    pub fn spawn(cfg: MockConfig) -> std::io::Result<MockHandle> {
        let (listener, shared) = bind(cfg)?;
        let l = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(supervise(shared.clone(), l));
        Ok(MockHandle {
            shared,
            thread: Mutex::new(None),
        })
    }
}

fn bind(cfg: MockConfig) -> std::io::Result<(std::net::TcpListener, Arc<Shared>)> {
    let listener = std::net::TcpListener::bind(cfg.bind)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        addr,
        state: Mutex::new(State {
            history: VecDeque::new(),
            next_seq: 0,
            chain_slot: 0,
            evicted_chain_slot: None,
            cursors: HashMap::new(),
        }),
        changed: watch::Sender::new(0),
        consumed: watch::Sender::new(0),
        control: watch::Sender::new(Control::default()),
        generation: AtomicU64::new(0),
        stall_below: AtomicU64::new(0),
        subscribe_calls: AtomicU64::new(0),
        rejected_calls: AtomicU64::new(0),
        pongs: AtomicU64::new(0),
        next_sub: AtomicU64::new(0),
        cfg,
    });
    Ok((listener, shared))
}

/// Controls a running mock. Dropping it stops the server.
pub struct MockHandle {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A cheap clone-able publisher into a running mock.
#[derive(Clone)]
pub struct MockPublisher {
    shared: Arc<Shared>,
}

impl MockHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://<addr>`, for a [`YellowstoneConfig`](crate::config::YellowstoneConfig).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    pub fn publisher(&self) -> MockPublisher {
        MockPublisher {
            shared: self.shared.clone(),
        }
    }

    /// Publishes a raw message to every matching stream (no backpressure).
    pub fn publish(&self, update: SubscribeUpdate) {
        self.shared.push(update, false);
    }

    /// Publishes an engine update as the wire message a Geyser server would send.
    pub fn publish_update(&self, update: &Update) -> Result<(), ConvertError> {
        self.publish(to_proto(update)?);
        Ok(())
    }

    pub fn fault(&self, fault: Fault) {
        self.shared.fault(fault);
    }

    /// `Subscribe` calls received, refused ones included.
    pub fn subscribe_calls(&self) -> u64 {
        self.shared.subscribe_calls.load(Ordering::Relaxed)
    }

    /// `Subscribe` calls refused for a bad `x-token`.
    pub fn rejected_calls(&self) -> u64 {
        self.shared.rejected_calls.load(Ordering::Relaxed)
    }

    /// Ping requests answered with a pong.
    pub fn pongs_sent(&self) -> u64 {
        self.shared.pongs.load(Ordering::Relaxed)
    }

    /// Streams open right now whose filters are set (publishing now reaches them).
    pub fn active_streams(&self) -> usize {
        self.shared.lock().cursors.len()
    }

    /// Stops serving; joins the server thread when it has one.
    pub fn stop(&self) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        self.shared.changed.send_modify(|v| *v += 1);
        self.shared.control.send_modify(|c| c.stop = true);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl MockPublisher {
    /// Publishes, first waiting while the slowest open stream is more than half the history
    /// behind (so a fast publisher never pushes a subscriber off the history).
    pub async fn publish_wait(&self, update: SubscribeUpdate) {
        if self.shared.has_room() {
            self.shared.push(update, false);
            return;
        }
        // Subscribe, then look again: a bump in between is not missed.
        let mut consumed = self.shared.consumed.subscribe();
        loop {
            if self.shared.has_room() {
                self.shared.push(update, false);
                return;
            }
            if consumed.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn publish(&self, update: SubscribeUpdate) {
        self.shared.push(update, false);
    }

    /// Waits until at least one stream has subscribed (its filters are set).
    pub async fn wait_for_subscriber(&self) {
        let mut consumed = self.shared.consumed.subscribe();
        while self.shared.lock().cursors.is_empty() {
            if consumed.changed().await.is_err() {
                return;
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Control {
    restarts: u64,
    down_for: Duration,
    stop: bool,
}

struct Entry {
    seq: u64,
    chain_slot: u64,
    update: Arc<SubscribeUpdate>,
    bypass_filters: bool,
}

struct State {
    history: VecDeque<Entry>,
    next_seq: u64,
    chain_slot: u64,
    evicted_chain_slot: Option<u64>,
    /// Next sequence number each open stream will look at.
    cursors: HashMap<u64, u64>,
}

struct Shared {
    cfg: MockConfig,
    addr: SocketAddr,
    state: Mutex<State>,
    /// Bumped on every publish and fault; streams wait on it.
    changed: watch::Sender<u64>,
    /// Bumped when streams advance; backpressured publishers wait on it.
    consumed: watch::Sender<u64>,
    control: watch::Sender<Control>,
    generation: AtomicU64,
    /// Streams with an id below this are stalled (0: none).
    stall_below: AtomicU64,
    subscribe_calls: AtomicU64,
    rejected_calls: AtomicU64,
    pongs: AtomicU64,
    next_sub: AtomicU64,
}

enum Next {
    Found(Box<SubscribeUpdate>, u64),
    Exhausted(u64),
    Lost,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, mut update: SubscribeUpdate, bypass_filters: bool) {
        if update.created_at.is_none() && !bypass_filters {
            update.created_at = Some(std::time::SystemTime::now().into());
        }
        {
            let mut st = self.lock();
            if let Some(s) = slot_of(&update) {
                st.chain_slot = st.chain_slot.max(s);
            }
            let entry = Entry {
                seq: st.next_seq,
                chain_slot: st.chain_slot,
                update: Arc::new(update),
                bypass_filters,
            };
            st.next_seq += 1;
            st.history.push_back(entry);
            while st.history.len() > self.cfg.history.max(1) {
                let e = st.history.pop_front().expect("non-empty");
                st.evicted_chain_slot = Some(e.chain_slot);
            }
        }
        self.changed.send_modify(|v| *v += 1);
    }

    fn has_room(&self) -> bool {
        let st = self.lock();
        match st.cursors.values().min() {
            None => true,
            Some(min) => st.next_seq - min < (self.cfg.history / 2).max(1) as u64,
        }
    }

    fn next_match(&self, sub: u64, cursor: u64, floor: u64, filter: &MockFilter) -> Next {
        let st = self.lock();
        let first = st.history.front().map_or(st.next_seq, |e| e.seq);
        if cursor < first {
            return Next::Lost;
        }
        let start = (cursor - first) as usize;
        let mut next = cursor;
        for e in st.history.iter().skip(start).take(4096) {
            next = e.seq + 1;
            if e.chain_slot < floor {
                continue;
            }
            if e.bypass_filters {
                return Next::Found(Box::new((*e.update).clone()), next);
            }
            let names = filter.matches(&e.update);
            if !names.is_empty() {
                let mut u = (*e.update).clone();
                u.filters = names;
                return Next::Found(Box::new(u), next);
            }
        }
        drop(st);
        let _ = sub;
        Next::Exhausted(next)
    }

    /// Where a new subscription with `from_slot` starts, or the Yellowstone error.
    fn start_cursor(&self, from_slot: Option<u64>) -> Result<u64, Status> {
        let st = self.lock();
        let Some(fs) = from_slot else {
            return Ok(st.next_seq);
        };
        if let Some(ev) = st.evicted_chain_slot {
            if ev >= fs {
                let last = st.history.front().map_or(st.chain_slot, |e| e.chain_slot);
                return Err(Status::out_of_range(format!(
                    "broadcast from {fs} is not available, last available: {last}"
                )));
            }
        }
        Ok(st
            .history
            .iter()
            .find(|e| e.chain_slot >= fs)
            .map_or(st.next_seq, |e| e.seq))
    }

    fn set_cursor(&self, sub: u64, cursor: u64) {
        self.lock().cursors.insert(sub, cursor);
        self.consumed.send_modify(|v| *v += 1);
    }

    fn fault(&self, fault: Fault) {
        match fault {
            Fault::DropStreams => {
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            Fault::Stall => self
                .stall_below
                .store(self.next_sub.load(Ordering::SeqCst), Ordering::SeqCst),
            Fault::Resume => self.stall_below.store(0, Ordering::SeqCst),
            Fault::Malformed => {
                for u in malformed() {
                    self.push(u, true);
                }
            }
            Fault::Restart { down_for } => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                self.control.send_modify(|c| {
                    c.restarts += 1;
                    c.down_for = down_for;
                });
            }
        }
        self.changed.send_modify(|v| *v += 1);
    }
}

fn slot_of(u: &SubscribeUpdate) -> Option<u64> {
    match &u.update_oneof {
        Some(UpdateOneof::Account(a)) => Some(a.slot),
        Some(UpdateOneof::Transaction(t)) => Some(t.slot),
        Some(UpdateOneof::Slot(s)) => Some(s.slot),
        _ => None,
    }
}

fn malformed() -> Vec<SubscribeUpdate> {
    let bad_account = SubscribeUpdate {
        update_oneof: Some(UpdateOneof::Account(SubscribeUpdateAccount {
            account: Some(SubscribeUpdateAccountInfo {
                pubkey: vec![1; 31],
                owner: vec![2; 32],
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let bad_tx = SubscribeUpdate {
        update_oneof: Some(UpdateOneof::Transaction(SubscribeUpdateTransaction {
            transaction: Some(SubscribeUpdateTransactionInfo {
                signature: vec![3; 64],
                transaction: Some(Transaction {
                    signatures: vec![vec![3; 64]],
                    message: Some(Message {
                        account_keys: vec![vec![4; 32]],
                        instructions: vec![CompiledInstruction {
                            program_id_index: 7,
                            accounts: vec![],
                            data: vec![],
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    vec![bad_account, bad_tx, SubscribeUpdate::default()]
}

/// The filters of one subscription.
#[derive(Debug, Default)]
struct MockFilter {
    accounts: Vec<(String, HashSet<Pubkey>, HashSet<Pubkey>)>,
    transactions: Vec<(
        String,
        SubscribeRequestFilterTransactions,
        [HashSet<Pubkey>; 3],
    )>,
    slots: Vec<String>,
}

fn keys(list: &[String], field: &str) -> Result<HashSet<Pubkey>, Status> {
    list.iter()
        .map(|s| {
            let v = bs58::decode(s)
                .into_vec()
                .map_err(|e| Status::invalid_argument(format!("{field}: `{s}`: {e}")))?;
            Pubkey::try_from(v.as_slice())
                .map_err(|_| Status::invalid_argument(format!("{field}: `{s}` is not 32 bytes")))
        })
        .collect()
}

impl MockFilter {
    fn new(req: &SubscribeRequest) -> Result<MockFilter, Status> {
        let mut f = MockFilter::default();
        for (name, a) in &req.accounts {
            f.accounts.push((
                name.clone(),
                keys(&a.account, "account")?,
                keys(&a.owner, "owner")?,
            ));
        }
        for (name, t) in &req.transactions {
            let sets = [
                keys(&t.account_include, "account_include")?,
                keys(&t.account_exclude, "account_exclude")?,
                keys(&t.account_required, "account_required")?,
            ];
            f.transactions.push((name.clone(), t.clone(), sets));
        }
        f.slots = req.slots.keys().cloned().collect();
        Ok(f)
    }

    fn matches(&self, u: &SubscribeUpdate) -> Vec<String> {
        let mut names = Vec::new();
        match &u.update_oneof {
            Some(UpdateOneof::Account(a)) => {
                let Some(info) = &a.account else { return names };
                for (name, accts, owners) in &self.accounts {
                    let acct_ok =
                        accts.is_empty() || accts.iter().any(|k| k[..] == info.pubkey[..]);
                    let owner_ok =
                        owners.is_empty() || owners.iter().any(|k| k[..] == info.owner[..]);
                    if acct_ok && owner_ok {
                        names.push(name.clone());
                    }
                }
            }
            Some(UpdateOneof::Transaction(t)) => {
                let Some(info) = &t.transaction else {
                    return names;
                };
                let failed = info.meta.as_ref().is_some_and(|m| m.err.is_some());
                let mut tx_keys: Vec<&[u8]> = Vec::new();
                if let Some(m) = info.transaction.as_ref().and_then(|t| t.message.as_ref()) {
                    tx_keys.extend(m.account_keys.iter().map(|k| &k[..]));
                }
                if let Some(m) = &info.meta {
                    tx_keys.extend(m.loaded_writable_addresses.iter().map(|k| &k[..]));
                    tx_keys.extend(m.loaded_readonly_addresses.iter().map(|k| &k[..]));
                }
                let has = |k: &Pubkey| tx_keys.iter().any(|x| *x == &k[..]);
                for (name, t, [include, exclude, required]) in &self.transactions {
                    let ok = t.vote.is_none_or(|v| v == info.is_vote)
                        && t.failed.is_none_or(|f| f == failed)
                        && (include.is_empty() || include.iter().any(has))
                        && !exclude.iter().any(has)
                        && required.iter().all(has);
                    if ok {
                        names.push(name.clone());
                    }
                }
            }
            Some(UpdateOneof::Slot(_)) => names.extend(self.slots.iter().cloned()),
            _ => {}
        }
        names
    }
}

struct Service {
    shared: Arc<Shared>,
}

type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Geyser for Service {
    type SubscribeStream = ReceiverStream<Result<SubscribeUpdate, Status>>;
    type SubscribeDeshredStream = BoxStream<SubscribeUpdateDeshred>;
    type SubscribeGossipStream = BoxStream<SubscribeUpdateGossip>;

    async fn subscribe(
        &self,
        request: Request<Streaming<SubscribeRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let sh = &self.shared;
        sh.subscribe_calls.fetch_add(1, Ordering::Relaxed);
        if let Some(expected) = &sh.cfg.x_token {
            let got = request
                .metadata()
                .get("x-token")
                .and_then(|v| v.to_str().ok());
            if got != Some(expected.as_str()) {
                sh.rejected_calls.fetch_add(1, Ordering::Relaxed);
                return Err(Status::unauthenticated("invalid x-token"));
            }
        }
        let (tx, rx) = mpsc::channel(sh.cfg.stream_buffer.max(1));
        let id = sh.next_sub.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(stream_task(sh.clone(), id, request.into_inner(), tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn subscribe_deshred(
        &self,
        _: Request<Streaming<SubscribeDeshredRequest>>,
    ) -> Result<Response<Self::SubscribeDeshredStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn subscribe_gossip(
        &self,
        _: Request<SubscribeGossipRequest>,
    ) -> Result<Response<Self::SubscribeGossipStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn subscribe_replay_info(
        &self,
        _: Request<SubscribeReplayInfoRequest>,
    ) -> Result<Response<SubscribeReplayInfoResponse>, Status> {
        let st = self.shared.lock();
        let first_available = st.history.front().map(|e| e.chain_slot);
        Ok(Response::new(SubscribeReplayInfoResponse {
            first_available,
        }))
    }
    async fn ping(&self, r: Request<PingRequest>) -> Result<Response<PongResponse>, Status> {
        Ok(Response::new(PongResponse {
            count: r.into_inner().count,
        }))
    }
    async fn get_latest_blockhash(
        &self,
        _: Request<GetLatestBlockhashRequest>,
    ) -> Result<Response<GetLatestBlockhashResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn get_block_height(
        &self,
        _: Request<GetBlockHeightRequest>,
    ) -> Result<Response<GetBlockHeightResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn get_slot(
        &self,
        _: Request<GetSlotRequest>,
    ) -> Result<Response<GetSlotResponse>, Status> {
        Ok(Response::new(GetSlotResponse {
            slot: self.shared.lock().chain_slot,
        }))
    }
    async fn is_blockhash_valid(
        &self,
        _: Request<IsBlockhashValidRequest>,
    ) -> Result<Response<IsBlockhashValidResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn get_version(
        &self,
        _: Request<GetVersionRequest>,
    ) -> Result<Response<GetVersionResponse>, Status> {
        Ok(Response::new(GetVersionResponse {
            version: "stackcore-mock".into(),
        }))
    }
}

fn ping_msg() -> SubscribeUpdate {
    SubscribeUpdate {
        update_oneof: Some(UpdateOneof::Ping(SubscribeUpdatePing {})),
        ..Default::default()
    }
}

/// One subscription: reads requests, walks the history, sends pings, obeys faults.
async fn stream_task(
    sh: Arc<Shared>,
    id: u64,
    mut requests: Streaming<SubscribeRequest>,
    tx: mpsc::Sender<Result<SubscribeUpdate, Status>>,
) {
    let generation = sh.generation.load(Ordering::SeqCst);
    let mut changed = sh.changed.subscribe();
    let mut filter: Option<MockFilter> = None;
    let mut cursor = 0u64;
    let mut floor = 0u64;
    // Sends since the cursor was last published (for publishers' backpressure).
    let mut unreported = 0u32;
    let period = sh.cfg.ping_interval.max(Duration::from_millis(1));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end: Option<Status> = 'run: loop {
        if sh.generation.load(Ordering::SeqCst) != generation {
            break Some(Status::unavailable("mock geyser: stream dropped"));
        }
        let stalled = id < sh.stall_below.load(Ordering::SeqCst);
        if let (false, Some(f)) = (stalled, &filter) {
            match sh.next_match(id, cursor, floor, f) {
                Next::Lost => {
                    break Some(Status::data_loss(
                        "mock geyser: subscriber fell behind the history",
                    ))
                }
                Next::Found(update, next) => {
                    tokio::select! {
                        biased;
                        permit = tx.reserve() => {
                            let Ok(permit) = permit else { break None };
                            permit.send(Ok(*update));
                            cursor = next;
                            unreported += 1;
                            if unreported >= 64 {
                                unreported = 0;
                                sh.set_cursor(id, cursor);
                            }
                            continue;
                        }
                        _ = changed.changed() => continue,
                    }
                }
                Next::Exhausted(next) => {
                    if next != cursor {
                        cursor = next;
                        sh.set_cursor(id, cursor);
                        continue;
                    }
                    sh.set_cursor(id, cursor);
                }
            }
        }
        tokio::select! {
            req = requests.message() => match req {
                Ok(Some(req)) => {
                    if let Some(p) = req.ping {
                        let pong = SubscribeUpdate {
                            update_oneof: Some(UpdateOneof::Pong(SubscribeUpdatePong { id: p.id })),
                            ..Default::default()
                        };
                        sh.pongs.fetch_add(1, Ordering::Relaxed);
                        if tx.send(Ok(pong)).await.is_err() {
                            break 'run None;
                        }
                        continue;
                    }
                    match MockFilter::new(&req) {
                        Ok(f) => {
                            if filter.is_none() || req.from_slot.is_some() {
                                match sh.start_cursor(req.from_slot) {
                                    Ok(c) => {
                                        cursor = c;
                                        floor = req.from_slot.unwrap_or(0);
                                        sh.set_cursor(id, cursor);
                                    }
                                    Err(status) => break Some(status),
                                }
                            }
                            filter = Some(f);
                        }
                        Err(status) => break Some(status),
                    }
                }
                _ => break None,
            },
            _ = changed.changed() => {}
            _ = ping.tick() => {
                if id >= sh.stall_below.load(Ordering::SeqCst) && tx.send(Ok(ping_msg())).await.is_err() {
                    break None;
                }
            }
            _ = tx.closed() => break None,
        }
    };
    if let Some(status) = end {
        let _ = tx.send(Err(status)).await;
    }
    sh.lock().cursors.remove(&id);
    sh.consumed.send_modify(|v| *v += 1);
}

/// Serves until stopped; on a restart request stops listening, waits, and listens again.
async fn supervise(sh: Arc<Shared>, first: tokio::net::TcpListener) {
    let mut control = sh.control.subscribe();
    let mut listener = Some(first);
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => match rebind(sh.addr).await {
                Some(l) => l,
                None => {
                    tracing::error!(addr = %sh.addr, "mock geyser: cannot listen again");
                    return;
                }
            },
        };
        control.borrow_and_update();
        let mut signal = control.clone();
        let svc = GeyserServer::new(Service { shared: sh.clone() })
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024);
        let server = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(l), async move {
                let _ = signal.changed().await;
            });
        let mut server = std::pin::pin!(server);
        // Serve; once told to stop or restart, give open connections a moment to close.
        tokio::select! {
            r = &mut server => {
                if let Err(e) = r {
                    tracing::warn!("mock geyser: {e}");
                }
            }
            _ = control.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut server).await;
            }
        }
        let c = control.borrow().clone();
        if c.stop {
            return;
        }
        tokio::time::sleep(c.down_for).await;
    }
}

async fn rebind(addr: SocketAddr) -> Option<tokio::net::TcpListener> {
    for _ in 0..100 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
