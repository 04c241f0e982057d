//! Test harness for the reactor tests: a server on 127.0.0.1 with R reactors, an acceptor and a
//! fake VM worker that answers subscribes with hand-built frames, plus a blocking tungstenite
//! client.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use stackcore_engine::frame::SharedFrame;
use stackcore_engine::view::{Output, SubId, SubscribeError, Subscription, ViewId};
use stackcore_io::channels::{reactor_of, ReactorHandle, ToReactor, ToWorker};
use stackcore_io::config::WebSocketConfig;
use stackcore_io::metrics::Metrics;
use stackcore_io::reactor::{spawn_acceptor, spawn_reactor, ReactorContext, ReactorParts, Router};
use tungstenite::protocol::WebSocket;
use tungstenite::Message;

/// The fake worker's live subscriptions: id → the request as the worker received it.
pub type WorkerSubs = Arc<Mutex<HashMap<SubId, Subscription>>>;

/// The views the fake worker serves: (name, mode).
pub const VIEWS: &[(&str, &str)] = &[
    ("OreRound/list", "list"),
    ("OreRound/state", "state"),
    ("OreRound/latest", "list"),
    // Always refused by the worker with snapshot-limit-exceeded.
    ("Huge/list", "list"),
];

pub fn view_id(name: &str) -> ViewId {
    ViewId(VIEWS.iter().position(|(n, _)| *n == name).unwrap() as u32)
}

pub struct Server {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub reactors: Vec<ReactorHandle>,
    /// Subscriptions the fake worker currently holds.
    pub worker_subs: WorkerSubs,
    threads: Vec<JoinHandle<()>>,
    acceptor: Option<JoinHandle<()>>,
    worker: Option<JoinHandle<()>>,
    worker_tx: crossbeam_channel::Sender<ToWorker>,
}

pub fn subscribed_frame(view: &str, mode: &str) -> SharedFrame {
    let body = if mode == "state" {
        format!(r#"{{"op":"subscribed","view":"{view}","mode":"state"}}"#)
    } else {
        format!(
            r#"{{"op":"subscribed","view":"{view}","mode":"{mode}","sort":{{"field":["_seq"],"order":"desc"}}}}"#
        )
    };
    SharedFrame::binary(body.as_bytes())
}

pub fn snapshot_frame(view: &str, mode: &str, key: &str) -> SharedFrame {
    SharedFrame::binary(
        format!(
            r#"{{"mode":"{mode}","entity":"{view}","op":"snapshot","data":[{{"key":"{key}","data":{{"n":0}}}}],"complete":true}}"#
        )
        .as_bytes(),
    )
}

pub fn patch_frame(view: &str, key: &str, n: u64) -> SharedFrame {
    SharedFrame::binary(
        format!(
            r#"{{"mode":"list","entity":"{view}","op":"patch","key":"{key}","data":{{"n":{n}}},"seq":"1:{n:012}"}}"#
        )
        .as_bytes(),
    )
}

impl Server {
    pub fn start(config: WebSocketConfig, reactors: usize) -> Server {
        let worker_subs: WorkerSubs = Arc::new(Mutex::new(HashMap::new()));
        let subs = worker_subs.clone();
        let mut s = Server::start_with(
            config,
            reactors,
            VIEWS.iter().map(|(n, _)| n.to_string()).collect(),
            move |rx, handles| fake_worker(rx, handles, subs),
        );
        s.worker_subs = worker_subs;
        s
    }

    /// A server whose worker is `worker`, run on its own thread with the worker inbox and the
    /// reactors' handles; `views` are routed to it. It must return when it receives
    /// `ToWorker::Unsubscribe { sub: SubId(u64::MAX) }` (sent at shutdown).
    pub fn start_with(
        config: WebSocketConfig,
        reactors: usize,
        views: Vec<String>,
        worker: impl FnOnce(crossbeam_channel::Receiver<ToWorker>, Vec<ReactorHandle>) + Send + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let (worker_tx, worker_rx) = crossbeam_channel::bounded::<ToWorker>(1024);
        let mut parts: Vec<ReactorParts> = (0..reactors)
            .map(|_| ReactorParts::new(65_536).unwrap())
            .collect();
        let handles: Vec<ReactorHandle> = parts.iter().map(|p| p.handle.clone()).collect();
        let ctx = Arc::new(ReactorContext {
            config,
            router: Router {
                workers: vec![worker_tx.clone()],
                view_owner: views.into_iter().map(|n| (n, 0)).collect(),
            },
            metrics: metrics.clone(),
            pin: false,
        });
        let worker = {
            let handles = handles.clone();
            std::thread::spawn(move || worker(worker_rx, handles))
        };
        let mut threads = Vec::new();
        for (i, p) in parts.drain(..).enumerate() {
            threads.push(spawn_reactor(i, p.poll, p.inbox, ctx.clone()).unwrap());
        }
        let acceptor = spawn_acceptor(listener, handles.clone(), ctx).unwrap();
        Server {
            addr,
            metrics,
            reactors: handles,
            worker_subs: Arc::new(Mutex::new(HashMap::new())),
            threads,
            acceptor: Some(acceptor),
            worker: Some(worker),
            worker_tx,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Sends a frame to every subscription of `view` admitting `key`, on every reactor.
    pub fn broadcast(&self, view: &str, key: &str, frame: &SharedFrame) {
        for r in &self.reactors {
            r.send(ToReactor::Frame(Output::Broadcast {
                view: view_id(view),
                key: Arc::from(key),
                frame: frame.clone(),
            }));
            r.wake();
        }
    }

    pub fn gauge(&self, f: impl Fn(&Metrics) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.metrics).load(Ordering::Relaxed)
    }

    /// The requests the fake worker currently holds.
    pub fn worker_requests(&self) -> Vec<Subscription> {
        self.worker_subs.lock().unwrap().values().cloned().collect()
    }

    pub fn worker_sub_count(&self) -> usize {
        self.worker_subs.lock().unwrap().len()
    }

    /// Shuts every reactor down and waits for all threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for r in &self.reactors {
            r.send(ToReactor::Shutdown);
            r.wake();
        }
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        if let Some(a) = self.acceptor.take() {
            a.join().unwrap();
        }
        let _ = self.worker_tx.send(ToWorker::Unsubscribe {
            sub: SubId(u64::MAX),
        });
        if let Some(w) = self.worker.take() {
            w.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
        }
    }
}

/// Answers subscribes like a VM worker would: `Subscribed`, then the `subscribed` frame and a
/// one-row snapshot for the requested key (or "k0"). `Huge/list` is refused.
fn fake_worker(
    rx: crossbeam_channel::Receiver<ToWorker>,
    reactors: Vec<ReactorHandle>,
    subs: WorkerSubs,
) {
    while let Ok(msg) = rx.recv() {
        match msg {
            ToWorker::Subscribe { sub, req, .. } => {
                let r = &reactors[reactor_of(sub)];
                let view = view_id(&req.view);
                let mode = VIEWS[view.0 as usize].1;
                if req.view == "Huge/list" {
                    r.send(ToReactor::Rejected {
                        sub,
                        error: SubscribeError::SnapshotLimitExceeded { rows: 9, limit: 1 },
                    });
                } else {
                    r.send(ToReactor::Subscribed { sub, view });
                    r.send(ToReactor::Frame(Output::To {
                        sub,
                        frame: subscribed_frame(&req.view, mode),
                    }));
                    if req.with_snapshot != Some(false) {
                        let key = req.key.clone().unwrap_or_else(|| "k0".into());
                        r.send(ToReactor::Frame(Output::To {
                            sub,
                            frame: snapshot_frame(&req.view, mode, &key),
                        }));
                    }
                    // Recorded after the reactor has the activation queued, so a test that
                    // sees the subscription here can broadcast to it.
                    subs.lock().unwrap().insert(sub, req);
                }
                r.wake();
            }
            ToWorker::Unsubscribe { sub } => {
                if sub == SubId(u64::MAX) {
                    return;
                }
                subs.lock().unwrap().remove(&sub);
            }
            ToWorker::Update(_) | ToWorker::ResolverResult { .. } => {}
        }
    }
}

pub type Client = WebSocket<TcpStream>;

/// Connects with a 10 s read timeout (a safety net against hangs, never asserted on).
pub fn connect(url: &str) -> Client {
    try_connect(url, &[]).expect("upgrade")
}

#[allow(clippy::result_large_err)]
pub fn try_connect(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<
    Client,
    tungstenite::handshake::HandshakeError<
        tungstenite::handshake::client::ClientHandshake<TcpStream>,
    >,
> {
    use tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let host = req.uri().authority().unwrap().as_str().to_string();
    let tcp = TcpStream::connect(host).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tungstenite::client::client(req, tcp).map(|(ws, _)| ws)
}

/// Reads until a data or text message arrives (answering nothing; tungstenite answers pings).
pub fn next_msg(c: &mut Client) -> Message {
    loop {
        match c.read().expect("read") {
            Message::Ping(_) | Message::Pong(_) => continue,
            m => return m,
        }
    }
}

/// The next message parsed as JSON.
pub fn next_json(c: &mut Client) -> serde_json::Value {
    match next_msg(c) {
        Message::Binary(b) => serde_json::from_slice(&b).unwrap(),
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        m => panic!("unexpected {m:?}"),
    }
}

pub fn send(c: &mut Client, text: &str) {
    c.send(Message::text(text)).unwrap();
}

/// Subscribes and waits for the `subscribed` frame and (if any) the snapshot.
pub fn subscribe(c: &mut Client, view: &str, key: Option<&str>) {
    let msg = match key {
        Some(k) => format!(r#"{{"type":"subscribe","view":"{view}","key":"{k}"}}"#),
        None => format!(r#"{{"type":"subscribe","view":"{view}"}}"#),
    };
    send(c, &msg);
    let v = next_json(c);
    assert_eq!(v["op"], "subscribed", "{v}");
    let v = next_json(c);
    assert_eq!(v["op"], "snapshot", "{v}");
}

/// Reads until the connection closes; returns the close code and reason if a close frame came.
pub fn read_until_close(c: &mut Client) -> Option<(u16, String)> {
    loop {
        match c.read() {
            Ok(Message::Close(f)) => {
                // Send tungstenite's queued close reply, as a real client does at once.
                let _ = c.flush();
                return f.map(|f| (f.code.into(), f.reason.to_string()));
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// Waits (bounded) until `cond` holds; panics with `what` otherwise.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
