//! One client connection: the socket, tungstenite's view of it, and the outbound queue.
//!
//! ## Who writes to the socket
//! Only [`Conn::flush`]. tungstenite is given an [`Io`] whose `Write` never touches the socket:
//! whatever tungstenite writes (the HTTP handshake answer, pongs, our pings, close frames) lands
//! in a small in-memory control buffer (bounded by [`CTRL_CAP`]). `flush` moves that buffer onto
//! the wire only at a message boundary, so control frames slot in *between* our data messages
//! and never inside one; while control output waits behind a partly written frame, a write
//! stops at that frame's end, so pongs and closes never wait for the whole queue. Data frames are [`SharedFrame`]s, complete unmasked WebSocket messages:
//! the queue holds `Arc` clones and `flush` hands their bytes to `write_vectored` directly, up
//! to [`IOV_MAX`] slices per call, with no copy and no allocation per frame.
//!
//! tungstenite stays consistent because it owns the protocol state it needs: it reads and
//! parses every inbound frame (masking, fragmentation, UTF-8, size limits, close handshake),
//! and every control frame we send goes through it. It never sees our data frames, which
//! need no state beyond "not after our close frame": once a connection closes, its queue of
//! unstarted data frames is dropped and nothing more is enqueued.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use stackcore_engine::frame::SharedFrame;
use stackcore_engine::view::SubId;
use tungstenite::handshake::server::{ErrorResponse, Request, Response, ServerHandshake};
use tungstenite::handshake::MidHandshake;
use tungstenite::WebSocket;

use super::auth::{AuthConfig, AuthDeny, AuthRequest, Session};
use super::shared::{CountGuard, CountKey, Shared};
use crate::metrics::Metrics;

/// Most bytes tungstenite may park in a connection's control buffer (pongs, pings, close,
/// handshake answer) before the connection is dropped: a peer that floods pings while not
/// reading cannot grow it.
pub const CTRL_CAP: usize = 64 * 1024;
/// Slices per `write_vectored` call.
pub const IOV_MAX: usize = 64;

/// The socket plus the control-output buffer, shared between the connection and tungstenite.
pub struct ConnIo {
    pub tcp: mio::net::TcpStream,
    pub ctrl: RefCell<Vec<u8>>,
}

/// What tungstenite reads from and "writes" to.
pub struct Io(pub Rc<ConnIo>);

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.0.tcp).read(buf)
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut c = self.0.ctrl.borrow_mut();
        if c.len() + buf.len() > CTRL_CAP {
            return Err(io::Error::other("control buffer full"));
        }
        c.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a successful upgrade leaves behind: the session and its counted connection slots
/// (subject, and IP / origin when those are limited), released when the connection is dropped.
pub struct Admission {
    pub session: Session,
    pub guards: Vec<CountGuard>,
}

/// The handshake callback: runs auth, then the per-IP, per-subject and per-origin connection
/// limits (the reference's order), and leaves the outcome behind.
pub struct Gate {
    pub auth: AuthConfig,
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
    /// The peer's address (IPv4-mapped IPv6 as IPv4); `None` if the socket could not tell.
    pub peer: Option<IpAddr>,
    pub outcome: Rc<Cell<Option<Admission>>>,
}

use std::sync::Arc;

impl Gate {
    /// Counts this connection under `key`, or refuses it with HTTP 429.
    fn take(
        &self,
        guards: &mut Vec<CountGuard>,
        key: CountKey,
        limit: Option<usize>,
        refused: &AtomicU64,
    ) -> Result<(), ErrorResponse> {
        match self.shared.acquire(key.clone(), limit) {
            Ok(g) => {
                guards.push(g);
                Ok(())
            }
            Err(current) => {
                let max = limit.unwrap_or(0);
                Metrics::add(refused, 1);
                tracing::debug!(%key, current, max, "upgrade refused: connection limit");
                Err(
                    AuthDeny::connection_limit_exceeded(&key.to_string(), current, max)
                        .http_response(),
                )
            }
        }
    }
}

impl tungstenite::handshake::server::Callback for Gate {
    fn on_request(self, req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
        let request = AuthRequest::from_http(req);
        let session = self
            .auth
            .authorize(&request)
            .map_err(|d| d.http_response())?;
        let limits = &self.auth.limits;
        let m = &self.metrics;
        let mut guards = Vec::with_capacity(4);
        if let (Some(max), Some(ip)) = (limits.max_connections_per_ip, self.peer) {
            self.take(
                &mut guards,
                CountKey::Ip(ip),
                Some(max),
                &m.ip_limit_refusals_total,
            )?;
        }
        self.take(
            &mut guards,
            CountKey::Subject(session.subject.clone()),
            session.max_connections,
            &m.subject_limit_refusals_total,
        )?;
        if let Some(max) = limits.max_connections_per_metering_key {
            self.take(
                &mut guards,
                CountKey::MeteringKey(session.metering_key.clone()),
                Some(max),
                &m.metering_key_limit_refusals_total,
            )?;
        }
        if let (Some(max), Some(origin)) = (limits.max_connections_per_origin, request.origin) {
            self.take(
                &mut guards,
                CountKey::Origin(origin.to_owned()),
                Some(max),
                &m.origin_limit_refusals_total,
            )?;
        }
        self.outcome.set(Some(Admission { session, guards }));
        Ok(resp)
    }
}

/// A fixed-window budget: at most `limit` units (messages, bytes) per window, a window starting
/// at the first unit taken after the previous one ended. The caller passes the time (the
/// reactor's clock for this message or turn), so the budget reads no clock and tests drive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBudget {
    limit: u64,
    start: Instant,
    used: u64,
}

impl RateBudget {
    pub fn new(limit: u64, now: Instant) -> Self {
        RateBudget {
            limit,
            start: now,
            used: 0,
        }
    }

    /// Takes `n` units at `now`. `false` (nothing taken) when that would pass the limit within
    /// the current window; a single take larger than the limit always fails.
    pub fn take(&mut self, n: u64, now: Instant, window: Duration) -> bool {
        if now.saturating_duration_since(self.start) >= window {
            self.start = now;
            self.used = 0;
        }
        match self.used.checked_add(n) {
            Some(total) if total <= self.limit => {
                self.used = total;
                true
            }
            _ => false,
        }
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    /// A budget under a new limit: what the current window has used still counts.
    pub fn relimit(budget: Option<RateBudget>, limit: Option<u64>, now: Instant) -> Option<Self> {
        match (budget, limit) {
            (_, None) => None,
            (None, Some(l)) => Some(RateBudget::new(l, now)),
            (Some(b), Some(l)) => Some(RateBudget { limit: l, ..b }),
        }
    }
}

pub type Handshake = MidHandshake<ServerHandshake<Io, Gate>>;

pub enum Phase {
    /// Reading the upgrade request. `None` only transiently while it is being advanced.
    Handshake(Option<Box<Handshake>>),
    Open(Box<WebSocket<Io>>),
    /// Refused at the upgrade: the HTTP answer is flushed, then the write side is shut and the
    /// peer's remaining input drained until EOF or the deadline.
    Rejected,
}

/// Why a connection is ending, for the close frame.
pub struct Closing {
    pub deadline: Instant,
}

pub struct Conn {
    pub io: Rc<ConnIo>,
    pub gen: u32,
    pub phase: Phase,
    pub outcome: Rc<Cell<Option<Admission>>>,
    pub session: Option<Session>,
    /// Connection slots counted for the limits; released when the connection is dropped.
    pub _counted: Vec<CountGuard>,
    /// Inbound text messages left this window (`max_messages_per_minute`); set at the upgrade.
    pub inbound_budget: Option<RateBudget>,
    /// Frame payload bytes left this window (`max_bytes_per_minute`); set at the upgrade.
    pub egress_budget: Option<RateBudget>,
    /// Passed its egress budget: nothing more is queued; it is being closed.
    pub egress_exceeded: bool,
    pub accepted_at: Instant,
    pub last_inbound: Instant,
    pub last_ping: Option<Instant>,
    /// Set once we sent or answered a close (or refused the upgrade): the connection is dropped
    /// when the peer finishes, its output is flushed, or the deadline passes.
    pub closing: Option<Closing>,
    /// The peer's side is done (EOF, close handshake finished): drop once flushed.
    pub peer_done: bool,
    pub write_shut: bool,
    /// (sub-key, id) of this connection's subscriptions, pending or active. Bounded by the
    /// session's subscription limit.
    pub subs: Vec<(String, SubId)>,
    queue: VecDeque<SharedFrame>,
    front_off: usize,
    queued_bytes: usize,
    ctrl_inflight: Vec<u8>,
    ctrl_off: usize,
    /// On the reactor's dirty list (has output to flush this turn).
    pub dirty: bool,
    /// Has unread input left from a turn that hit the per-turn message cap.
    pub read_pending: bool,
}

/// Result of enqueuing a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Enqueue {
    Queued,
    /// The connection is closing; the frame was dropped.
    Dropped,
    /// Past the outbound budget even after a write attempt.
    OverBudget,
}

impl Conn {
    pub fn new(
        tcp: mio::net::TcpStream,
        gen: u32,
        now: Instant,
        auth: &AuthConfig,
        shared: Arc<Shared>,
        metrics: Arc<Metrics>,
        ws_cfg: tungstenite::protocol::WebSocketConfig,
    ) -> Conn {
        let peer = tcp.peer_addr().ok().map(|a| a.ip().to_canonical());
        let io = Rc::new(ConnIo {
            tcp,
            ctrl: RefCell::new(Vec::new()),
        });
        let outcome = Rc::new(Cell::new(None));
        let gate = Gate {
            auth: auth.clone(),
            shared,
            metrics,
            peer,
            outcome: outcome.clone(),
        };
        let hs = ServerHandshake::start(Io(io.clone()), gate, Some(ws_cfg));
        Conn {
            io,
            gen,
            phase: Phase::Handshake(Some(Box::new(hs))),
            outcome,
            session: None,
            _counted: Vec::new(),
            inbound_budget: None,
            egress_budget: None,
            egress_exceeded: false,
            accepted_at: now,
            last_inbound: now,
            last_ping: None,
            closing: None,
            peer_done: false,
            write_shut: false,
            subs: Vec::new(),
            queue: VecDeque::new(),
            front_off: 0,
            queued_bytes: 0,
            ctrl_inflight: Vec::new(),
            ctrl_off: 0,
            dirty: false,
            read_pending: false,
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_)) && self.closing.is_none()
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub fn queued_frames(&self) -> usize {
        self.queue.len()
    }

    /// Queues a data frame within the budget (`max_frames` frames, `max_bytes` bytes; a frame
    /// into an empty queue is always accepted). Over budget, one write is attempted first.
    /// Returns the change in queued bytes with the outcome.
    pub fn enqueue(
        &mut self,
        f: &SharedFrame,
        max_frames: usize,
        max_bytes: usize,
        sent: &mut Sent,
    ) -> Enqueue {
        if self.closing.is_some() || !matches!(self.phase, Phase::Open(_)) {
            return Enqueue::Dropped;
        }
        let over = |c: &Conn| {
            !c.queue.is_empty()
                && (c.queue.len() >= max_frames || c.queued_bytes + f.wire_len() > max_bytes)
        };
        if over(self) {
            if self.flush(sent).is_err() {
                return Enqueue::Dropped;
            }
            if over(self) {
                return Enqueue::OverBudget;
            }
        }
        self.queued_bytes += f.wire_len();
        sent.pending_delta += f.wire_len() as i64;
        self.queue.push_back(f.clone());
        Enqueue::Queued
    }

    /// Drops every queued frame not yet started (the partly written one stays, so the stream
    /// of frames stays valid). Used before a close frame.
    pub fn truncate_queue(&mut self, sent: &mut Sent) {
        let keep = if self.front_off > 0 { 1 } else { 0 };
        while self.queue.len() > keep {
            if let Some(f) = self.queue.pop_back() {
                self.queued_bytes -= f.wire_len();
                sent.pending_delta -= f.wire_len() as i64;
            }
        }
    }

    /// Appends raw bytes (complete frames) to the control output.
    pub fn push_ctrl(&mut self, bytes: &[u8]) {
        let mut c = self.io.ctrl.borrow_mut();
        if c.len() + bytes.len() <= CTRL_CAP {
            c.extend_from_slice(bytes);
        }
    }

    pub fn has_output(&self) -> bool {
        !self.queue.is_empty()
            || self.ctrl_off < self.ctrl_inflight.len()
            || !self.io.ctrl.borrow().is_empty()
    }

    /// Writes as much queued output as the socket takes. `Err` means the socket is dead.
    pub fn flush(&mut self, sent: &mut Sent) -> io::Result<()> {
        loop {
            if self.ctrl_off >= self.ctrl_inflight.len() && self.front_off == 0 {
                let mut c = self.io.ctrl.borrow_mut();
                if !c.is_empty() {
                    self.ctrl_inflight.clear();
                    std::mem::swap(&mut self.ctrl_inflight, &mut c);
                    self.ctrl_off = 0;
                }
            }
            let mut iov = [IoSlice::new(&[]); IOV_MAX];
            let mut n = 0;
            let ctrl_left = self.ctrl_inflight.len() - self.ctrl_off;
            if ctrl_left > 0 {
                iov[0] = IoSlice::new(&self.ctrl_inflight[self.ctrl_off..]);
                n = 1;
            }
            // Control output waiting behind a partly written frame: write only to the end of
            // that frame, so the control frames go out at the next boundary instead of waiting
            // for the whole queue (a write rarely ends exactly on a boundary).
            let ctrl_waiting = self.front_off > 0 && !self.io.ctrl.borrow().is_empty();
            for (i, f) in self.queue.iter().enumerate() {
                if n == IOV_MAX || (ctrl_waiting && i > 0) {
                    break;
                }
                let off = if i == 0 { self.front_off } else { 0 };
                iov[n] = IoSlice::new(&f.wire()[off..]);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            match (&self.io.tcp).write_vectored(&iov[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut w) => {
                    sent.bytes += w as u64;
                    let c = w.min(ctrl_left);
                    self.ctrl_off += c;
                    w -= c;
                    while w > 0 {
                        let Some(front) = self.queue.front() else {
                            break;
                        };
                        let rest = front.wire_len() - self.front_off;
                        if w >= rest {
                            w -= rest;
                            self.queue.pop_front();
                            self.front_off = 0;
                            self.queued_bytes -= rest;
                            sent.pending_delta -= rest as i64;
                            sent.frames += 1;
                        } else {
                            self.front_off += w;
                            self.queued_bytes -= w;
                            sent.pending_delta -= w as i64;
                            w = 0;
                        }
                    }
                    if self.ctrl_off >= self.ctrl_inflight.len() {
                        self.ctrl_inflight.clear();
                        self.ctrl_off = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes over an accepted upgrade: the session, its counted slots and its rate budgets.
    pub fn admit(&mut self, a: Admission, now: Instant) {
        self.inbound_budget = a
            .session
            .max_messages_per_minute
            .map(|l| RateBudget::new(l, now));
        self.egress_budget = a
            .session
            .max_bytes_per_minute
            .map(|l| RateBudget::new(l, now));
        self.session = Some(a.session);
        self._counted = a.guards;
    }

    /// Applies a `refresh_auth` token's session: its expiry and its limits (subscriptions,
    /// snapshot rows, message and byte rates; the rate budgets keep what this window has used).
    /// The subject must be the session's own, or nothing changes (`false`); the metering key and
    /// the per-subject connection cap stay as admitted, since connections were counted under them.
    pub fn refresh_session(&mut self, fresh: Session, now: Instant) -> bool {
        let Some(s) = self.session.as_mut() else {
            return false;
        };
        if s.subject != fresh.subject {
            return false;
        }
        s.expires_at = fresh.expires_at;
        s.max_subscriptions = fresh.max_subscriptions;
        s.max_snapshot_rows = fresh.max_snapshot_rows;
        s.max_messages_per_minute = fresh.max_messages_per_minute;
        s.max_bytes_per_minute = fresh.max_bytes_per_minute;
        self.inbound_budget =
            RateBudget::relimit(self.inbound_budget, fresh.max_messages_per_minute, now);
        self.egress_budget =
            RateBudget::relimit(self.egress_budget, fresh.max_bytes_per_minute, now);
        true
    }

    /// Bytes still owed to the pending-outbound gauge when the connection is dropped.
    pub fn release(&mut self, sent: &mut Sent) {
        sent.pending_delta -= self.queued_bytes as i64;
        self.queued_bytes = 0;
        self.queue.clear();
    }
}

/// Counters accumulated over one reactor turn and published to [`crate::metrics::Metrics`] once.
#[derive(Debug, Default)]
pub struct Sent {
    pub frames: u64,
    pub bytes: u64,
    pub pending_delta: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_budget_refuses_past_its_limit_and_refills_when_the_window_ends() {
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        let mut b = RateBudget::new(3, t0);
        assert!(b.take(1, t0, w));
        assert!(b.take(2, t0 + Duration::from_secs(1), w));
        assert!(
            !b.take(1, t0 + Duration::from_secs(59), w),
            "4th within the window"
        );
        assert_eq!(b.used(), 3, "a refused take takes nothing");
        // The window that started at t0 is over: the budget is full again.
        assert!(b.take(3, t0 + w, w));
        assert!(!b.take(1, t0 + w + Duration::from_secs(1), w));
        // One take larger than the whole budget never fits.
        let mut b = RateBudget::new(10, t0);
        assert!(!b.take(11, t0, w));
        assert!(b.take(10, t0, w));
        // Time going backwards (it cannot, but) does not open a new window.
        let mut b = RateBudget::new(1, t0 + w);
        assert!(b.take(1, t0 + w, w));
        assert!(!b.take(1, t0, w));
    }
}
