//! The real engine [`Views`] of the ORE stack behind a reactor, and the real npm
//! `hyperstack-typescript` client in front: snapshot and live frames as the engine writes them,
//! merged by the client, must equal the server's cache for those keys.

#[path = "../../tests/node_support/mod.rs"]
mod node_support;
mod reactor_support;

use std::sync::{Arc, Mutex};

use crossbeam_channel::{select, Receiver, Sender};
use reactor_support::wait_for;
use serde_json::json;
use stackcore_engine::view::Output;
use stackcore_engine::{EntityCacheConfig, Mutation, Seq, Stack, Views};
use stackcore_io::channels::{reactor_of, ReactorHandle, ToReactor, ToWorker};
use stackcore_io::config::WebSocketConfig;
use stackcore_io::metrics::Metrics;
use stackcore_io::reactor::{spawn_acceptor, spawn_reactor, ReactorContext, ReactorParts, Router};

const STACK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/stacks/OreStream.stack.json"
);

fn send(reactors: &[ReactorHandle], out: &mut Vec<Output>) {
    for o in out.drain(..) {
        match o {
            Output::To { sub, .. } => {
                reactors[reactor_of(sub)].send(ToReactor::Frame(o));
            }
            Output::Broadcast { .. } => {
                for r in reactors {
                    r.send(ToReactor::Frame(o.clone()));
                }
            }
        }
    }
    for r in reactors {
        r.wake();
    }
}

/// A minimal VM-less worker: subscribes from, and applies hand-made mutations to, real Views.
fn views_worker(
    views: Arc<Mutex<Views>>,
    subs_rx: Receiver<ToWorker>,
    muts_rx: Receiver<Mutation>,
    reactors: Vec<ReactorHandle>,
) {
    let mut out = Vec::new();
    loop {
        select! {
            recv(subs_rx) -> m => match m {
                Ok(ToWorker::Subscribe { sub, req, .. }) => {
                    let r = views.lock().unwrap().subscribe(sub, &req, &mut out);
                    let reactor = &reactors[reactor_of(sub)];
                    match r {
                        Ok(view) => { reactor.send(ToReactor::Subscribed { sub, view }); }
                        Err(error) => { reactor.send(ToReactor::Rejected { sub, error }); }
                    }
                    send(&reactors, &mut out);
                }
                Ok(ToWorker::Unsubscribe { sub }) => views.lock().unwrap().unsubscribe(sub),
                Ok(ToWorker::Update(_) | ToWorker::ResolverResult { .. }) => {}
                Err(_) => return,
            },
            recv(muts_rx) -> m => match m {
                Ok(m) => {
                    views.lock().unwrap().apply(&m, &mut out);
                    send(&reactors, &mut out);
                }
                Err(_) => return,
            },
        }
    }
}

fn round(n: u64, deployed: u64, slot: u64) -> Mutation {
    Mutation {
        entity: Arc::from("OreRound"),
        key: json!(n),
        patch: json!({"id": {"round_id": n, "round_address": format!("addr{n}")},
                      "state": {"total_deployed": deployed, "total_miners": n}})
        .into(),
        append: vec![],
        seq: Seq::new(slot, n),
    }
}

#[test]
fn typescript_client_state_equals_the_engine_cache_for_the_ore_stack() {
    node_support::ensure_npm_install();
    let stack = Stack::from_json(&std::fs::read(STACK).unwrap()).unwrap();
    let views = Views::new(stack.entity_views(), EntityCacheConfig::default());
    let names: Vec<String> = views.names().iter().map(|s| s.to_string()).collect();
    let views = Arc::new(Mutex::new(views));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sub_tx, sub_rx): (Sender<ToWorker>, _) = crossbeam_channel::bounded(1024);
    let (mut_tx, mut_rx) = crossbeam_channel::bounded::<Mutation>(1024);
    let parts = ReactorParts::new(65_536).unwrap();
    let handles = vec![parts.handle.clone()];
    let ctx = Arc::new(ReactorContext {
        config: WebSocketConfig::default(),
        router: Router {
            workers: vec![sub_tx],
            view_owner: names.into_iter().map(|n| (n, 0)).collect(),
        },
        metrics: Arc::new(Metrics::new()),
        pin: false,
    });
    let worker = {
        let (views, handles) = (views.clone(), handles.clone());
        std::thread::spawn(move || views_worker(views, sub_rx, mut_rx, handles))
    };
    let reactor = spawn_reactor(0, parts.poll, parts.inbox, ctx.clone()).unwrap();
    let acceptor = spawn_acceptor(listener, handles.clone(), ctx.clone()).unwrap();

    // Rows before the client arrives: its snapshot.
    mut_tx.send(round(1, 10, 100)).unwrap();
    mut_tx.send(round(2, 20, 101)).unwrap();

    let child = node_support::node_client(
        &format!("ws://{addr}"),
        &[("HS_PATCHES", "2"), ("HS_RECONNECT", "0")],
    );
    wait_for("both subscriptions", || {
        views.lock().unwrap().subscription_count() == 2
    });
    // Live: round 2 changes, round 3 appears and changes.
    mut_tx.send(round(2, 25, 102)).unwrap();
    mut_tx.send(round(3, 30, 103)).unwrap();
    mut_tx.send(round(3, 35, 104)).unwrap();

    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node client failed: {:?}", out.status);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let client = &report["views"];

    let v = views.lock().unwrap();
    let list = v.view_id("OreRound/list").unwrap();
    let latest = v.view_id("OreRound/latest").unwrap();
    let client_list = client["OreRound/list"].as_object().unwrap();
    assert!(!client_list.is_empty());
    for (key, entity) in client_list {
        let server = v.get(list, key).expect("key in the server cache").clone();
        assert_eq!(entity, &server, "OreRound/list key {key}");
    }
    let keys: Vec<&String> = client_list.keys().collect();
    assert!(
        keys.contains(&&"3".to_string()),
        "live rows arrived: {keys:?}"
    );
    // take 1 of the sorted view: only the newest round, equal to the server's window row.
    let client_latest = client["OreRound/latest"].as_object().unwrap();
    let server_latest: Vec<String> = v.rows(latest).iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(
        client_latest.keys().collect::<Vec<_>>(),
        [&server_latest[0]],
        "{report}"
    );
    assert_eq!(
        client_latest[&server_latest[0]],
        v.get(latest, &server_latest[0]).unwrap().clone()
    );
    drop(v);

    handles[0].send(ToReactor::Shutdown);
    handles[0].wake();
    reactor.join().unwrap();
    acceptor.join().unwrap();
    drop(mut_tx);
    drop(ctx);
    worker.join().unwrap();
}
