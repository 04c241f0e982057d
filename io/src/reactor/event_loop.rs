//! The reactor thread: one mio `Poll`, its connections, subscriptions and fan-out index.
//! The design is described in the module docs of [`super`].

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError, TrySendError};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use stackcore_engine::frame::SharedFrame;
use stackcore_engine::view::{Output, SubId, SubscribeError, Subscription, ViewId};
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::auth::{AuthDeny, AuthErrorCode, RetryPolicy};
use super::conn::{Conn, Enqueue, Phase, Sent};
use super::messages::{self, ClientMessage};
use super::shared::Shared;
use super::{ReactorContext, INBOX_BATCH, WAKER_TOKEN};
use crate::channels::{sub_id, ToReactor, ToWorker};
use crate::metrics::Metrics;

/// Inbound messages read from one connection per turn (fairness between connections).
const READS_PER_TURN: usize = 256;
/// Close code after a fatal `rate-limit-exceeded` or `egress-limit-exceeded` issue (4000 + HTTP
/// 429); the reason is the bare code.
const LIMIT_CLOSE_CODE: u16 = 4029;
/// How long a shutting-down reactor keeps flushing close frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

struct SubEntry {
    conn: usize,
    worker: usize,
    key: Option<String>,
    /// Where it sits in the fan-out index once active.
    active: Option<(ViewId, Slot)>,
    /// Its `subscribed` frame has not been seen yet.
    awaiting_first: bool,
}

#[derive(Clone, PartialEq, Eq)]
enum Slot {
    AnyKey,
    Key(String),
}

#[derive(Default)]
struct Fanout {
    any: Vec<(SubId, usize)>,
    by_key: HashMap<String, Vec<(SubId, usize)>>,
}

impl Fanout {
    fn insert(&mut self, slot: &Slot, sub: SubId, conn: usize) {
        match slot {
            Slot::AnyKey => self.any.push((sub, conn)),
            Slot::Key(k) => self.by_key.entry(k.clone()).or_default().push((sub, conn)),
        }
    }
    fn remove(&mut self, slot: &Slot, sub: SubId) {
        let v = match slot {
            Slot::AnyKey => &mut self.any,
            Slot::Key(k) => match self.by_key.get_mut(k) {
                Some(v) => v,
                None => return,
            },
        };
        if let Some(i) = v.iter().position(|(s, _)| *s == sub) {
            v.swap_remove(i);
        }
        if let Slot::Key(k) = slot {
            if v.is_empty() {
                self.by_key.remove(k);
            }
        }
    }
    fn is_empty(&self) -> bool {
        self.any.is_empty() && self.by_key.is_empty()
    }
}

pub struct Reactor {
    index: usize,
    poll: Poll,
    inbox: Receiver<ToReactor>,
    ctx: Arc<ReactorContext>,
    shared: Arc<Shared>,
    ws_cfg: tungstenite::protocol::WebSocketConfig,
    conns: Vec<Option<Conn>>,
    gens: Vec<u32>,
    free: Vec<usize>,
    live: usize,
    subs: HashMap<SubId, SubEntry>,
    fanout: HashMap<ViewId, Fanout>,
    next_local: u64,
    dirty: Vec<usize>,
    read_pending: Vec<usize>,
    retry: VecDeque<(usize, ToWorker)>,
    sent: Sent,
    slow: Vec<usize>,
    /// Connections that passed their egress budget this turn.
    over_egress: Vec<usize>,
    /// The clock of this turn (read once after each poll): what egress budgets are kept by.
    now: Instant,
    shutdown_deadline: Option<Instant>,
    tick: Duration,
    next_sweep: Instant,
}

fn token(slot: usize, gen: u32) -> Token {
    Token(slot | ((gen as usize) << 32))
}

impl Reactor {
    pub fn new(
        index: usize,
        poll: Poll,
        inbox: Receiver<ToReactor>,
        ctx: Arc<ReactorContext>,
    ) -> Reactor {
        let c = &ctx.config;
        let ws_cfg = tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(Some(c.max_message_size))
            .max_frame_size(Some(c.max_message_size));
        let tick = (c.ping_interval.min(c.idle_timeout) / 4)
            .clamp(Duration::from_millis(5), Duration::from_secs(1));
        let shared = Shared::of(&ctx);
        Reactor {
            index,
            poll,
            inbox,
            shared,
            ws_cfg,
            conns: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            live: 0,
            subs: HashMap::new(),
            fanout: HashMap::new(),
            next_local: 1,
            dirty: Vec::new(),
            read_pending: Vec::new(),
            retry: VecDeque::new(),
            sent: Sent::default(),
            slow: Vec::new(),
            over_egress: Vec::new(),
            now: Instant::now(),
            shutdown_deadline: None,
            tick,
            next_sweep: Instant::now() + tick,
            ctx,
        }
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut busy = false;
        loop {
            let now = Instant::now();
            let timeout = if busy || (!self.read_pending.is_empty() && self.retry.is_empty()) {
                Duration::ZERO
            } else if !self.retry.is_empty() {
                Duration::from_millis(1)
            } else {
                self.next_sweep.saturating_duration_since(now)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(reactor = self.index, error = %e, "poll failed; reactor stops");
                    break;
                }
            }
            self.now = Instant::now();
            for ev in events.iter() {
                if ev.token() == WAKER_TOKEN {
                    continue;
                }
                let slot = ev.token().0 & 0xffff_ffff;
                let gen = (ev.token().0 >> 32) as u32;
                if self.gens.get(slot) != Some(&gen) || self.conns[slot].is_none() {
                    continue;
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.on_readable(slot);
                }
                if ev.is_writable() || ev.is_write_closed() {
                    self.mark_dirty(slot);
                }
            }
            if self.retry.is_empty() && !self.read_pending.is_empty() {
                let pending = std::mem::take(&mut self.read_pending);
                for slot in pending {
                    if let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                        if c.read_pending {
                            c.read_pending = false;
                            self.on_readable(slot);
                        }
                    }
                }
            }
            let stop;
            (busy, stop) = self.drain_inbox();
            self.retry_workers();
            self.handle_slow();
            self.handle_over_egress();
            self.flush_dirty();
            if Instant::now() >= self.next_sweep {
                self.sweep();
                self.next_sweep = Instant::now() + self.tick;
            }
            self.publish();
            if stop && self.shutdown_deadline.is_none() {
                self.begin_shutdown();
            }
            if let Some(d) = self.shutdown_deadline {
                if self.live == 0 || Instant::now() >= d {
                    break;
                }
            }
        }
        for slot in 0..self.conns.len() {
            if self.conns[slot].is_some() {
                self.remove(slot);
            }
        }
        self.retry_workers();
        self.publish();
    }

    fn publish(&mut self) {
        let m: &Metrics = &self.ctx.metrics;
        let s = std::mem::take(&mut self.sent);
        if s.frames > 0 {
            Metrics::add(&m.frames_sent_total, s.frames);
        }
        if s.bytes > 0 {
            Metrics::add(&m.bytes_sent_total, s.bytes);
        }
        if s.pending_delta > 0 {
            m.pending_outbound_bytes
                .fetch_add(s.pending_delta as u64, Ordering::Relaxed);
        } else if s.pending_delta < 0 {
            m.pending_outbound_bytes
                .fetch_sub((-s.pending_delta) as u64, Ordering::Relaxed);
        }
    }

    fn mark_dirty(&mut self, slot: usize) {
        if let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(slot);
            }
        }
    }

    // ---------------------------------------------------------------- connections

    fn accept(&mut self, tcp: mio::net::TcpStream) {
        if self.shutdown_deadline.is_some() {
            self.ctx
                .metrics
                .connected_clients
                .fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.gens.push(0);
            self.conns.len() - 1
        });
        let gen = self.gens[slot];
        let fd = tcp.as_raw_fd();
        if let Err(e) = self.poll.registry().register(
            &mut SourceFd(&fd),
            token(slot, gen),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(error = %e, "cannot register a client socket");
            self.free.push(slot);
            self.ctx
                .metrics
                .connected_clients
                .fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let conn = Conn::new(
            tcp,
            gen,
            Instant::now(),
            &self.ctx.config.auth,
            self.shared.clone(),
            self.ctx.metrics.clone(),
            self.ws_cfg,
        );
        self.conns[slot] = Some(conn);
        self.live += 1;
        self.on_readable(slot);
    }

    /// Drops a connection now: unsubscribes everything it had and closes the socket.
    fn remove(&mut self, slot: usize) {
        let Some(mut conn) = self.conns[slot].take() else {
            return;
        };
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&conn.io.tcp.as_raw_fd()));
        for (_, sub) in std::mem::take(&mut conn.subs) {
            self.drop_sub(sub, true);
        }
        conn.release(&mut self.sent);
        self.gens[slot] = self.gens[slot].wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
        self.ctx
            .metrics
            .connected_clients
            .fetch_sub(1, Ordering::Relaxed);
    }

    fn on_readable(&mut self, slot: usize) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        match &mut conn.phase {
            Phase::Handshake(_) => self.advance_handshake(slot),
            Phase::Open(_) => {
                if !self.retry.is_empty() {
                    // Worker queues are backed up: leave client input unread for now.
                    if !conn.read_pending {
                        conn.read_pending = true;
                        self.read_pending.push(slot);
                    }
                    return;
                }
                self.read_messages(slot);
            }
            Phase::Rejected => {
                // Discard input until EOF; a bounded amount per turn, so a flooding peer
                // cannot hold the loop (it is dropped at its deadline anyway).
                let mut buf = [0u8; 4096];
                let mut budget = READS_PER_TURN;
                loop {
                    if budget == 0 {
                        if !conn.read_pending {
                            conn.read_pending = true;
                            self.read_pending.push(slot);
                        }
                        break;
                    }
                    budget -= 1;
                    match (&conn.io.tcp).read(&mut buf) {
                        Ok(0) => {
                            conn.peer_done = true;
                            break;
                        }
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            conn.peer_done = true;
                            break;
                        }
                    }
                }
                self.mark_dirty(slot);
            }
        }
    }

    fn advance_handshake(&mut self, slot: usize) {
        let conn = self.conns[slot].as_mut().expect("live slot");
        let Phase::Handshake(hs) = &mut conn.phase else {
            return;
        };
        let Some(mid) = hs.take() else { return };
        match (*mid).handshake() {
            Ok(ws) => {
                conn.phase = Phase::Open(Box::new(ws));
                let now = Instant::now();
                if let Some(admission) = conn.outcome.take() {
                    conn.admit(admission, now);
                }
                conn.last_inbound = now;
                self.mark_dirty(slot);
                // Input that arrived with the upgrade request is read now (edge-triggered).
                self.read_messages(slot);
            }
            Err(HandshakeError::Interrupted(mid)) => {
                conn.phase = Phase::Handshake(Some(Box::new(mid)));
            }
            Err(HandshakeError::Failure(tungstenite::Error::Http(_))) => {
                // Refused by auth or a limit: the answer is in the control buffer.
                Metrics::add(&self.ctx.metrics.rejected_connections_total, 1);
                self.reject(slot);
            }
            Err(HandshakeError::Failure(tungstenite::Error::Io(_))) => self.remove(slot),
            Err(HandshakeError::Failure(_)) => {
                // Not a WebSocket upgrade (garbage, wrong method, bad key...).
                let conn = self.conns[slot].as_mut().expect("live slot");
                conn.push_ctrl(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                self.reject(slot);
            }
        }
    }

    fn reject(&mut self, slot: usize) {
        let linger = self.ctx.config.ping_interval;
        let conn = self.conns[slot].as_mut().expect("live slot");
        conn.phase = Phase::Rejected;
        conn.closing = Some(super::conn::Closing {
            deadline: Instant::now() + linger,
        });
        self.mark_dirty(slot);
    }

    fn read_messages(&mut self, slot: usize) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns[slot].as_mut() else {
                return;
            };
            let Phase::Open(ws) = &mut conn.phase else {
                return;
            };
            let result = ws.read();
            if !conn.io.ctrl.borrow().is_empty() {
                self.mark_dirty(slot);
            }
            let conn = self.conns[slot].as_mut().expect("live slot");
            match result {
                Ok(msg) => {
                    let now = Instant::now();
                    conn.last_inbound = now;
                    match msg {
                        Message::Text(t) => {
                            if conn.closing.is_none() {
                                let window = self.ctx.config.auth.limits.rate_limit_window;
                                let within = conn
                                    .inbound_budget
                                    .as_mut()
                                    .is_none_or(|b| b.take(1, now, window));
                                if within {
                                    self.on_text(slot, t.as_str());
                                } else {
                                    self.rate_limited(slot);
                                }
                            }
                        }
                        Message::Close(_) => {
                            // tungstenite queued its answer (or this acknowledges ours).
                            conn.truncate_queue(&mut self.sent);
                            if conn.closing.is_none() {
                                conn.closing = Some(super::conn::Closing {
                                    deadline: Instant::now() + self.ctx.config.ping_interval,
                                });
                                self.release_subs(slot);
                            }
                            self.mark_dirty(slot);
                        }
                        Message::Binary(_) | Message::Ping(_) | Message::Pong(_) => {}
                        Message::Frame(_) => {}
                    }
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return
                }
                Err(tungstenite::Error::ConnectionClosed)
                | Err(tungstenite::Error::AlreadyClosed) => {
                    conn.peer_done = true;
                    self.mark_dirty(slot);
                    return;
                }
                Err(tungstenite::Error::Capacity(_)) => {
                    self.fail(slot, 1009, "message too big");
                    return;
                }
                Err(tungstenite::Error::Utf8(_)) => {
                    self.fail(slot, 1007, "invalid utf-8");
                    return;
                }
                Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                )) => {
                    self.remove(slot);
                    return;
                }
                Err(tungstenite::Error::Protocol(_)) => {
                    self.fail(slot, 1002, "protocol error");
                    return;
                }
                Err(_) => {
                    self.remove(slot);
                    return;
                }
            }
        }
        if let Some(conn) = self.conns[slot].as_mut() {
            if !conn.read_pending {
                conn.read_pending = true;
                self.read_pending.push(slot);
            }
        }
    }

    /// The inbound stream is unusable (tungstenite must not be read again after such an
    /// error): send the close frame, then only flush, shut our side and drain until EOF.
    fn fail(&mut self, slot: usize, code: u16, reason: &str) {
        self.close_with(slot, code, reason, None);
        if let Some(conn) = self.conns[slot].as_mut() {
            conn.phase = Phase::Rejected;
        }
    }

    /// Sends a close frame (after an optional text error), drops unstarted output and every
    /// subscription; the connection lingers until flushed and acknowledged or one ping interval.
    fn close_with(&mut self, slot: usize, code: u16, reason: &str, error: Option<Vec<u8>>) {
        let linger = self.ctx.config.ping_interval;
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        if conn.closing.is_some() {
            return;
        }
        conn.truncate_queue(&mut self.sent);
        if let Some(text) = error {
            conn.push_ctrl(SharedFrame::text(&text).wire());
        }
        if let Phase::Open(ws) = &mut conn.phase {
            let _ = ws.close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_owned().into(),
            }));
        }
        conn.closing = Some(super::conn::Closing {
            deadline: Instant::now() + linger,
        });
        self.release_subs(slot);
        self.mark_dirty(slot);
    }

    fn release_subs(&mut self, slot: usize) {
        let subs = match self.conns[slot].as_mut() {
            Some(c) => std::mem::take(&mut c.subs),
            None => return,
        };
        for (_, sub) in subs {
            self.drop_sub(sub, true);
        }
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for slot in dirty.iter().copied() {
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            conn.dirty = false;
            if conn.flush(&mut self.sent).is_err() {
                self.remove(slot);
                continue;
            }
            let has_output = conn.has_output();
            if matches!(conn.phase, Phase::Rejected) && !has_output && !conn.write_shut {
                let _ = conn.io.tcp.shutdown(std::net::Shutdown::Write);
                conn.write_shut = true;
            }
            if conn.peer_done && !has_output {
                self.remove(slot);
            }
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    fn handle_slow(&mut self) {
        while let Some(slot) = self.slow.pop() {
            let open = self.conns[slot].as_ref().is_some_and(|c| c.is_open());
            if open {
                Metrics::add(&self.ctx.metrics.slow_consumers_closed_total, 1);
                let text = messages::socket_issue_with(
                    "slow-consumer",
                    "Outbound queue exceeded its budget; the connection is closed. Reconnect and resume with `after`.",
                    true,
                    true,
                    Some("Read frames faster or subscribe to fewer views"),
                );
                self.close_with(slot, 4008, "slow-consumer", Some(text));
            }
        }
    }

    /// Inbound messages over `max_messages_per_minute`: the fatal socket issue
    /// `rate-limit-exceeded` (`retry_after` = the window), then close 4029 with reason
    /// `rate-limit-exceeded` (no `code:` prefix and not 1008, so the TypeScript client reconnects
    /// with backoff as it does after the reference drops it).
    fn rate_limited(&mut self, slot: usize) {
        let limits = &self.ctx.config.auth.limits;
        let window = limits.window_secs();
        let (limit, subject) = match self.conns[slot].as_ref().and_then(|c| c.session.as_ref()) {
            Some(s) => (s.max_messages_per_minute, s.subject.clone()),
            None => (None, String::new()),
        };
        Metrics::add(&self.ctx.metrics.rate_limited_closed_total, 1);
        tracing::info!(
            reactor = self.index,
            %subject,
            limit,
            window_secs = window,
            "client over its inbound message rate; closing (rate-limit-exceeded)"
        );
        let deny = AuthDeny::rate_limited(window, "inbound websocket messages");
        let text = messages::socket_issue_for(&deny, true);
        self.close_with(slot, LIMIT_CLOSE_CODE, "rate-limit-exceeded", Some(text));
    }

    /// Connections past their egress budget: the frames queued within the budget are written as
    /// far as the socket takes them, then the fatal socket issue `egress-limit-exceeded`
    /// (`retry_after` = the window) and close 4029 `egress-limit-exceeded`. The reference
    /// removes such a client without a word; the published clients take a fatal, retryable issue
    /// as "reconnect with backoff" (the same path as `slow-consumer`).
    fn handle_over_egress(&mut self) {
        while let Some(slot) = self.over_egress.pop() {
            let Some(conn) = self.conns[slot].as_ref().filter(|c| c.is_open()) else {
                continue;
            };
            let window = self.ctx.config.auth.limits.window_secs();
            let (limit, subject) = match conn.session.as_ref() {
                Some(s) => (s.max_bytes_per_minute, s.subject.clone()),
                None => (None, String::new()),
            };
            Metrics::add(&self.ctx.metrics.egress_limited_closed_total, 1);
            tracing::info!(
                reactor = self.index,
                %subject,
                limit,
                window_secs = window,
                "client over its egress budget; closing (egress-limit-exceeded)"
            );
            // Frames queued within the budget go out first, as far as the socket takes them
            // now (the close frame must not overtake them; whatever is left is dropped).
            if let Some(conn) = self.conns[slot].as_mut() {
                if conn.flush(&mut self.sent).is_err() {
                    self.remove(slot);
                    continue;
                }
            }
            let mut deny = AuthDeny::new(
                AuthErrorCode::EgressLimitExceeded,
                format!(
                    "Egress limit exceeded: more than {} bytes in {window}s",
                    limit.unwrap_or(0)
                ),
            )
            .with_action("Subscribe to fewer or smaller views, or reconnect after the window");
            deny.retry = RetryPolicy::RetryAfter(window);
            let text = messages::socket_issue_for(&deny, true);
            self.close_with(slot, LIMIT_CLOSE_CODE, "egress-limit-exceeded", Some(text));
        }
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        let cfg = &self.ctx.config;
        let (idle, ping) = (cfg.idle_timeout, cfg.ping_interval);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for slot in 0..self.conns.len() {
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            if let Some(c) = &conn.closing {
                if now >= c.deadline {
                    self.remove(slot);
                }
                continue;
            }
            match &mut conn.phase {
                Phase::Handshake(_) => {
                    if now.duration_since(conn.accepted_at) >= idle {
                        self.remove(slot);
                    }
                }
                Phase::Rejected => {}
                Phase::Open(ws) => {
                    let expired = conn
                        .session
                        .as_ref()
                        .and_then(|s| s.expires_at)
                        .is_some_and(|e| e <= unix);
                    let silent = now.duration_since(conn.last_inbound);
                    if expired {
                        let text = messages::socket_issue(
                            "token-expired",
                            "Session token has expired",
                            true,
                            true,
                        );
                        self.close_with(slot, 1008, "token-expired: Token has expired", Some(text));
                    } else if silent >= idle {
                        self.close_with(slot, 4000, "idle-timeout", None);
                    } else if silent >= ping
                        && conn.last_ping.is_none_or(|p| now.duration_since(p) >= ping)
                    {
                        conn.last_ping = Some(now);
                        let _ = ws.write(Message::Ping(Default::default()));
                        let _ = ws.flush();
                        self.mark_dirty(slot);
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- client messages

    fn on_text(&mut self, slot: usize, text: &str) {
        match messages::parse_client_message(text) {
            Err(e) => self.send_issue(slot, e.code(), &e.to_string(), false, None),
            Ok(ClientMessage::Ping) => {}
            Ok(ClientMessage::Subscribe(req)) => self.subscribe(slot, req),
            Ok(ClientMessage::Unsubscribe { sub_key }) => {
                let Some(conn) = self.conns[slot].as_mut() else {
                    return;
                };
                if let Some(i) = conn.subs.iter().position(|(k, _)| *k == sub_key) {
                    let (_, sub) = conn.subs.swap_remove(i);
                    self.drop_sub(sub, true);
                }
            }
            Ok(ClientMessage::RefreshAuth { token }) => {
                let auth = &self.ctx.config.auth;
                let reply = match auth.refresh(&token) {
                    Ok(session) => {
                        let exp = session.expires_at.unwrap_or(u64::MAX);
                        let now = self.now;
                        let Some(conn) = self.conns[slot].as_mut() else {
                            return;
                        };
                        if conn.refresh_session(session, now) {
                            messages::refresh_reply(Ok(exp))
                        } else {
                            // Another subject's token does not take over this connection.
                            messages::refresh_reply(Err("token-invalid"))
                        }
                    }
                    Err(d) => {
                        use super::auth::{AuthErrorCode as C, AuthPlugin};
                        let code = match (&auth.plugin, d.code) {
                            (
                                AuthPlugin::SignedSession(_),
                                c @ (C::TokenExpired
                                | C::TokenInvalidSignature
                                | C::TokenInvalidIssuer
                                | C::TokenInvalidAudience),
                            ) => c.as_str(),
                            _ => "token-invalid",
                        };
                        messages::refresh_reply(Err(code))
                    }
                };
                self.send_text(slot, &reply);
            }
        }
    }

    fn send_text(&mut self, slot: usize, payload: &[u8]) {
        let frame = SharedFrame::text(payload);
        self.deliver(slot, &frame);
    }

    fn send_issue(
        &mut self,
        slot: usize,
        code: &str,
        message: &str,
        retryable: bool,
        action: Option<&str>,
    ) {
        let text = messages::socket_issue_with(code, message, retryable, false, action);
        self.send_text(slot, &text);
    }

    fn deliver(&mut self, slot: usize, frame: &SharedFrame) {
        Outbox::of(self).deliver(slot, frame);
    }

    fn subscribe(&mut self, slot: usize, req: Subscription) {
        let Some(&worker) = self.ctx.router.view_owner.get(&req.view) else {
            let msg = format!("unknown view `{}`", req.view);
            self.send_issue(slot, "unknown-view", &msg, false, None);
            return;
        };
        let sub_key = req.sub_key();
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        if conn.subs.iter().any(|(k, _)| *k == sub_key) {
            return; // duplicate: the existing subscription stays as it is
        }
        let limit = conn
            .session
            .as_ref()
            .map(|s| s.max_subscriptions)
            .unwrap_or(self.ctx.config.auth.limits.max_subscriptions_per_connection);
        if conn.subs.len() >= limit {
            Metrics::add(&self.ctx.metrics.subscription_limit_refusals_total, 1);
            let msg = format!(
                "Subscription limit exceeded: {} of {} subscriptions for this connection",
                conn.subs.len(),
                limit
            );
            self.send_issue(
                slot,
                "subscription-limit-exceeded",
                &msg,
                true,
                Some("Unsubscribe from an existing view before creating another subscription"),
            );
            return;
        }
        let max_snapshot_rows = match &conn.session {
            Some(s) => s.max_snapshot_rows,
            None => self.ctx.config.auth.limits.max_snapshot_rows,
        };
        let sub = sub_id(self.index, self.next_local);
        self.next_local += 1;
        conn.subs.push((sub_key, sub));
        self.subs.insert(
            sub,
            SubEntry {
                conn: slot,
                worker,
                key: req.key.clone(),
                active: None,
                awaiting_first: true,
            },
        );
        self.send_worker(
            worker,
            ToWorker::Subscribe {
                sub,
                req,
                max_snapshot_rows,
            },
        );
    }

    /// Forgets a subscription (already removed from its connection's list).
    fn drop_sub(&mut self, sub: SubId, notify: bool) {
        let Some(e) = self.subs.remove(&sub) else {
            return;
        };
        if let Some((view, slot)) = &e.active {
            if let Some(f) = self.fanout.get_mut(view) {
                f.remove(slot, sub);
                if f.is_empty() {
                    self.fanout.remove(view);
                }
            }
            self.ctx
                .metrics
                .subscriptions
                .fetch_sub(1, Ordering::Relaxed);
        }
        if notify {
            self.send_worker(e.worker, ToWorker::Unsubscribe { sub });
        }
    }

    // ---------------------------------------------------------------- workers

    fn send_worker(&mut self, worker: usize, msg: ToWorker) {
        if !self.retry.is_empty() {
            self.retry.push_back((worker, msg));
            return;
        }
        let Some(tx) = self.ctx.router.workers.get(worker) else {
            return;
        };
        match tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(m)) => self.retry.push_back((worker, m)),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn retry_workers(&mut self) {
        while let Some((w, m)) = self.retry.pop_front() {
            let Some(tx) = self.ctx.router.workers.get(w) else {
                continue;
            };
            match tx.try_send(m) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) => {
                    self.retry.push_front((w, m));
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Handles up to [`INBOX_BATCH`] messages. Returns (more are waiting, shut down now).
    fn drain_inbox(&mut self) -> (bool, bool) {
        for _ in 0..INBOX_BATCH {
            match self.inbox.try_recv() {
                Ok(msg) => {
                    if self.handle(msg) {
                        return (false, true);
                    }
                }
                Err(TryRecvError::Empty) => return (false, false),
                Err(TryRecvError::Disconnected) => return (false, true),
            }
        }
        (true, false)
    }

    /// Returns true on shutdown.
    fn handle(&mut self, msg: ToReactor) -> bool {
        match msg {
            ToReactor::Accept(tcp) => self.accept(tcp),
            ToReactor::Shutdown => return true,
            ToReactor::Subscribed { sub, view } => {
                let Some(e) = self.subs.get_mut(&sub) else {
                    return false;
                };
                if e.active.is_some() {
                    return false;
                }
                let slot = match &e.key {
                    Some(k) => Slot::Key(k.clone()),
                    None => Slot::AnyKey,
                };
                self.fanout
                    .entry(view)
                    .or_default()
                    .insert(&slot, sub, e.conn);
                e.active = Some((view, slot));
                Metrics::add(&self.ctx.metrics.subscriptions, 1);
            }
            ToReactor::Rejected { sub, error } => {
                let Some(e) = self.subs.get(&sub) else {
                    return false;
                };
                let slot = e.conn;
                if let Some(conn) = self.conns[slot].as_mut() {
                    conn.subs.retain(|(_, s)| *s != sub);
                }
                self.drop_sub(sub, false);
                if let SubscribeError::SnapshotLimitExceeded { rows, limit } = error {
                    // The reference's wording; non-fatal: only this subscription fails.
                    Metrics::add(&self.ctx.metrics.snapshot_limit_refusals_total, 1);
                    tracing::debug!(
                        reactor = self.index,
                        rows,
                        limit,
                        "subscription refused: snapshot-limit-exceeded"
                    );
                    let deny = AuthDeny::new(
                        AuthErrorCode::SnapshotLimitExceeded,
                        format!("Snapshot limit exceeded: requested {rows} rows, max allowed is {limit} for this connection"),
                    )
                    .with_action("Request fewer rows or lower the snapshotLimit on the subscription");
                    let text = messages::socket_issue_for(&deny, false);
                    self.send_text(slot, &text);
                } else {
                    self.send_issue(slot, error.code(), &error.to_string(), false, None);
                }
            }
            ToReactor::Frame(Output::To { sub, frame }) => {
                let Some(e) = self.subs.get_mut(&sub) else {
                    return false;
                };
                if e.awaiting_first {
                    e.awaiting_first = false;
                    if e.key.is_none() && is_state_subscribed(&frame) {
                        if let Some((view, Slot::AnyKey)) = e.active.clone() {
                            let conn = e.conn;
                            let key = Slot::Key(String::new());
                            e.active = Some((view, key.clone()));
                            let f = self.fanout.entry(view).or_default();
                            f.remove(&Slot::AnyKey, sub);
                            f.insert(&key, sub, conn);
                        }
                    }
                }
                let slot = e.conn;
                self.deliver(slot, &frame);
            }
            ToReactor::Frame(Output::Broadcast { view, key, frame }) => {
                let Some(f) = self.fanout.get(&view) else {
                    return false;
                };
                let mut outbox = Outbox {
                    cfg: &self.ctx.config,
                    conns: &mut self.conns,
                    sent: &mut self.sent,
                    dirty: &mut self.dirty,
                    slow: &mut self.slow,
                    over_egress: &mut self.over_egress,
                    now: self.now,
                };
                let targets = f
                    .any
                    .iter()
                    .chain(f.by_key.get(&*key).into_iter().flatten());
                for &(_, slot) in targets {
                    outbox.deliver(slot, &frame);
                }
            }
        }
        false
    }

    fn begin_shutdown(&mut self) {
        self.shared.begin_shutdown();
        self.shutdown_deadline = Some(Instant::now() + SHUTDOWN_GRACE);
        for slot in 0..self.conns.len() {
            let Some(conn) = self.conns[slot].as_ref() else {
                continue;
            };
            match conn.phase {
                Phase::Open(_) => self.close_with(slot, 1001, "going away", None),
                Phase::Handshake(_) | Phase::Rejected => self.remove(slot),
            }
        }
        self.flush_dirty();
    }

    /// Test support: live connections and subscriptions of this reactor.
    #[allow(dead_code)]
    pub fn counts(&self) -> (usize, usize) {
        (self.live, self.subs.len())
    }
}

/// Whether a subscription's first frame says it is a state-mode subscription.
fn is_state_subscribed(frame: &SharedFrame) -> bool {
    #[derive(serde::Deserialize)]
    struct Head {
        op: Option<String>,
        mode: Option<String>,
    }
    serde_json::from_slice::<Head>(frame.payload())
        .map(|h| h.op.as_deref() == Some("subscribed") && h.mode.as_deref() == Some("state"))
        .unwrap_or(false)
}

/// The parts of a [`Reactor`] that queueing a frame touches, borrowed apart from the fan-out index
/// so that a broadcast can walk the index while it queues.
struct Outbox<'a> {
    cfg: &'a crate::config::WebSocketConfig,
    conns: &'a mut [Option<Conn>],
    sent: &'a mut Sent,
    dirty: &'a mut Vec<usize>,
    slow: &'a mut Vec<usize>,
    over_egress: &'a mut Vec<usize>,
    now: Instant,
}

impl<'a> Outbox<'a> {
    fn of(r: &'a mut Reactor) -> Self {
        Outbox {
            cfg: &r.ctx.config,
            conns: &mut r.conns,
            sent: &mut r.sent,
            dirty: &mut r.dirty,
            slow: &mut r.slow,
            over_egress: &mut r.over_egress,
            now: r.now,
        }
    }

    /// Queues `frame` on connection `slot`: marks it for flushing, or for the slow-consumer
    /// policy when it is over its queue budget. A frame that would pass the connection's egress
    /// budget (`max_bytes_per_minute`, counted in payload bytes as the reference does) is not
    /// queued; the connection is marked for the egress policy and gets nothing more.
    fn deliver(&mut self, slot: usize, frame: &SharedFrame) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        if conn.egress_exceeded {
            return;
        }
        if let Some(b) = conn.egress_budget.as_mut() {
            let n = frame.payload().len() as u64;
            if conn.closing.is_none()
                && !b.take(n, self.now, self.cfg.auth.limits.rate_limit_window)
            {
                conn.egress_exceeded = true;
                self.over_egress.push(slot);
                return;
            }
        }
        match conn.enqueue(
            frame,
            self.cfg.message_queue_size,
            self.cfg.max_outbound_bytes,
            self.sent,
        ) {
            Enqueue::Queued => {
                if !conn.dirty {
                    conn.dirty = true;
                    self.dirty.push(slot);
                }
            }
            Enqueue::Dropped => {}
            Enqueue::OverBudget => self.slow.push(slot),
        }
    }
}
