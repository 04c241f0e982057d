//! Fault tests of the ingest client against the mock Geyser server, on loopback. They assert
//! outcomes (the updates handed off, health, counters), never timings.

mod ingest_common;

use std::time::Duration;

use ingest_common::*;
use stackcore_engine::idl::IdlSet;
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::Update;
use stackcore_io::config::{HealthConfig, ReconnectionConfig};
use stackcore_io::health::StreamStatus;
use stackcore_io::ingest::mock::MALFORMED_COUNT;
use stackcore_io::ingest::synth::idl_generator;
use stackcore_io::ingest::{Fault, IngestLimits, MockConfig, MockGeyser, Source, SyntheticConfig};
use std::sync::atomic::Ordering;

/// Publishes a chain, injects `fault` in the middle of a slot (after the client took the first
/// writes of that slot), publishes the rest, and returns what the stack received.
fn run_with_fault(fault: Fault) -> (Vec<Update>, Vec<Update>, u64) {
    let mock = MockGeyser::start(MockConfig::default()).unwrap();
    let mut ing = start(
        yellowstone(mock.endpoint(), None),
        fast_reconnect(),
        HealthConfig::new(),
        None,
    );
    assert!(wait(5, || mock.active_streams() == 1));
    let all = chain(100, 20);
    // Cut after the first two writes of slot 110.
    let cut = all.iter().position(|u| u.slot() == 110).unwrap() + 2;
    for u in &all[..cut] {
        mock.publish_update(u).unwrap();
    }
    let want_before = expected(&all[..cut]).len();
    assert!(ing.collect_until(5, |g| g.len() == want_before));
    mock.fault(fault);
    for u in &all[cut..] {
        mock.publish_update(u).unwrap();
    }
    assert!(
        ing.collect_until(10, last_is_slot(119)),
        "got {} updates",
        ing.got.len()
    );
    let reconnects = ing.metrics.reconnects_total.load(Ordering::Relaxed);
    (untimed(&ing.finish()), expected(&all), reconnects)
}

#[test]
fn killed_and_restarted_upstream_loses_nothing_and_doubles_nothing() {
    let (got, want, reconnects) = run_with_fault(Fault::Restart {
        down_for: Duration::from_millis(300),
    });
    assert!(reconnects >= 1);
    assert_eq!(got, want);
}

#[test]
fn dropped_stream_resumes_from_the_open_slot_without_loss_or_duplicates() {
    let (got, want, reconnects) = run_with_fault(Fault::DropStreams);
    assert!(reconnects >= 1);
    assert_eq!(got, want);
}

#[test]
fn stalled_stream_turns_stale_then_recovers() {
    let mock = MockGeyser::start(MockConfig::default()).unwrap();
    let health = HealthConfig::new().with_heartbeat_interval(Duration::from_millis(100));
    let mut ing = start(
        yellowstone(mock.endpoint(), None),
        fast_reconnect(),
        health,
        None,
    );
    assert!(wait(5, || mock.active_streams() == 1));
    let all = chain(1, 4);
    for u in &all[..12] {
        mock.publish_update(u).unwrap();
    }
    assert!(ing.collect_until(5, |g| g.len() == expected(&all[..12]).len()));
    assert!(ing.health.is_healthy());
    mock.fault(Fault::Stall);
    for u in &all[12..] {
        mock.publish_update(u).unwrap();
    }
    assert!(
        wait(5, || ing.health.report().stale),
        "silence while connected shows as stale"
    );
    assert!(!ing.health.is_healthy());
    mock.fault(Fault::Resume);
    assert!(ing.collect_until(5, last_is_slot(4)));
    assert!(ing.health.is_healthy());
    assert_eq!(untimed(&ing.finish()), expected(&all));
}

#[test]
fn wrong_token_is_a_clear_error_with_backoff_and_never_ready() {
    let cfg = MockConfig {
        x_token: Some("right".into()),
        ..MockConfig::default()
    };
    let mock = MockGeyser::start(cfg).unwrap();
    let reconnection = fast_reconnect().with_max_attempts(4);
    let ing = start(
        yellowstone(mock.endpoint(), Some("wrong")),
        reconnection,
        HealthConfig::new(),
        None,
    );
    let mut ever_healthy = false;
    let gave_up = wait(10, || {
        ever_healthy |= ing.health.is_healthy();
        ing.handle.is_finished()
    });
    assert!(gave_up);
    assert!(!ever_healthy);
    assert_eq!(
        mock.subscribe_calls(),
        4,
        "one call per attempt, then it gives up"
    );
    assert_eq!(mock.rejected_calls(), 4);
    let report = ing.health.report();
    assert!(
        matches!(report.status, StreamStatus::Error(ref m) if m.contains("x-token")),
        "{report:?}"
    );
    assert!(!report.healthy);
}

#[test]
fn wrong_token_without_attempt_limit_keeps_the_error_while_retrying() {
    let cfg = MockConfig {
        x_token: Some("right".into()),
        ..MockConfig::default()
    };
    let mock = MockGeyser::start(cfg).unwrap();
    let ing = start(
        yellowstone(mock.endpoint(), Some("wrong")),
        fast_reconnect(),
        HealthConfig::new(),
        None,
    );
    assert!(wait(5, || mock.rejected_calls() >= 3));
    let report = ing.health.report();
    assert!(
        matches!(report.status, StreamStatus::Error(ref m) if m.contains("refused the x-token"))
    );
    assert!(!report.healthy);
    ing.finish();
}

#[test]
fn malformed_updates_are_counted_and_skipped_and_the_stream_goes_on() {
    let mock = MockGeyser::start(MockConfig::default()).unwrap();
    let mut ing = start(
        yellowstone(mock.endpoint(), None),
        fast_reconnect(),
        HealthConfig::new(),
        None,
    );
    assert!(wait(5, || mock.active_streams() == 1));
    let all = chain(1, 6);
    for u in &all[..15] {
        mock.publish_update(u).unwrap();
    }
    mock.fault(Fault::Malformed);
    for u in &all[15..] {
        mock.publish_update(u).unwrap();
    }
    assert!(ing.collect_until(5, last_is_slot(6)));
    assert_eq!(
        ing.metrics.upstream_errors_total.load(Ordering::Relaxed),
        MALFORMED_COUNT
    );
    assert_eq!(ing.health.error_count(), MALFORMED_COUNT);
    assert!(
        ing.health.is_healthy(),
        "bad events are counted, not a readiness failure"
    );
    assert_eq!(ing.metrics.reconnects_total.load(Ordering::Relaxed), 0);
    assert_eq!(untimed(&ing.finish()), expected(&all));
}

#[test]
fn exhausted_attempts_give_up_with_error_status() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reconnection = ReconnectionConfig::new()
        .with_initial_delay(Duration::from_millis(10))
        .with_max_attempts(3);
    let ing = start(
        yellowstone(format!("http://127.0.0.1:{port}"), None),
        reconnection,
        HealthConfig::new(),
        None,
    );
    assert!(wait(10, || ing.handle.is_finished()));
    let report = ing.health.report();
    assert!(
        matches!(report.status, StreamStatus::Error(ref m) if m.contains("gave up after 3")),
        "{report:?}"
    );
    assert!(!report.healthy);
    assert_eq!(ing.metrics.reconnects_total.load(Ordering::Relaxed), 2);
}

#[test]
fn synthetic_source_streams_the_chain_through_the_embedded_grpc_server() {
    let source = Source::Synthetic(SyntheticConfig::new(3).with_token("t"));
    let mut ing = start(source, fast_reconnect(), HealthConfig::new(), None);
    assert!(ing.collect_until(10, |g| g
        .iter()
        .filter(|u| !matches!(u, Update::Slot { .. }))
        .count()
        >= 40));
    assert_eq!(ing.health.status(), StreamStatus::Connected);
    let got = untimed(&ing.finish());
    let data: Vec<Update> = got
        .iter()
        .filter(|u| !matches!(u, Update::Slot { .. }))
        .cloned()
        .collect();
    let want = untimed(
        &stackcore_io::ingest::synth::stand_in(3, vec![PROG])
            .take(data.len())
            .collect::<Vec<_>>(),
    );
    assert_eq!(data, want);
    // Each slot's status follows its data.
    let mut open = None;
    for u in &got {
        match u {
            Update::Slot { slot, .. } => assert_eq!(Some(*slot), open),
            u => open = Some(u.slot()),
        }
    }
}

#[test]
fn stalled_stream_is_replaced_after_the_stall_timeout_without_loss() {
    let mock = MockGeyser::start(MockConfig::default()).unwrap();
    let limits = IngestLimits {
        stall_timeout: Duration::from_millis(300),
        ..IngestLimits::default()
    };
    let mut ing = start_with(
        yellowstone(mock.endpoint(), None),
        fast_reconnect(),
        HealthConfig::new(),
        None,
        vec![PROG],
        limits,
    );
    assert!(wait(5, || mock.active_streams() == 1));
    let all = chain(1, 6);
    let cut = all.iter().position(|u| u.slot() == 3).unwrap() + 1;
    for u in &all[..cut] {
        mock.publish_update(u).unwrap();
    }
    assert!(ing.collect_until(5, |g| g.len() == expected(&all[..cut]).len()));
    mock.fault(Fault::Stall);
    for u in &all[cut..] {
        mock.publish_update(u).unwrap();
    }
    assert!(
        ing.collect_until(10, last_is_slot(6)),
        "a new stream replaces the stalled one"
    );
    assert!(ing.metrics.reconnects_total.load(Ordering::Relaxed) >= 1);
    assert_eq!(untimed(&ing.finish()), expected(&all));
}

#[test]
fn ping_answers_keep_the_subscription_filters() {
    let cfg = MockConfig {
        ping_interval: Duration::from_millis(10),
        ..MockConfig::default()
    };
    let mock = MockGeyser::start(cfg).unwrap();
    let mut ing = start(
        yellowstone(mock.endpoint(), None),
        fast_reconnect(),
        HealthConfig::new(),
        None,
    );
    assert!(wait(5, || mock.active_streams() == 1));
    assert!(
        wait(5, || mock.pongs_sent() >= 3),
        "the client answers server pings"
    );
    let all = chain(1, 3);
    for u in &all {
        mock.publish_update(u).unwrap();
    }
    assert!(ing.collect_until(5, last_is_slot(3)));
    assert_eq!(
        untimed(&ing.finish()),
        expected(&all),
        "the filters survived the ping answers"
    );
}

fn ore_idls() -> IdlSet {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/stacks/OreStream.stack.json"
    );
    let stack: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    IdlSet::from_json(&stack["idls"]).unwrap()
}

#[test]
fn synthetic_source_streams_the_stacks_generated_chain_with_its_duplicates() {
    let idls = ore_idls();
    let programs = idls.program_ids();
    let factory = idl_generator(idls.clone(), SynthConfig::default());
    let source = Source::Synthetic(SyntheticConfig::new(5).with_generator(factory));
    let mut ing = start_with(
        source,
        fast_reconnect(),
        HealthConfig::new(),
        None,
        programs,
        IngestLimits::default(),
    );
    let data = |g: &[Update]| {
        g.iter()
            .filter(|u| !matches!(u, Update::Slot { .. }))
            .count()
    };
    assert!(ing.collect_until(20, |g| data(g) >= 500));
    let got: Vec<Update> = untimed(&ing.finish())
        .into_iter()
        .filter(|u| !matches!(u, Update::Slot { .. }))
        .collect();
    let mut g = Generator::new(
        &idls,
        SynthConfig {
            seed: 5,
            ..SynthConfig::default()
        },
    );
    let want: Vec<Update> = (0..got.len()).map(|_| g.next_update()).collect();
    assert_eq!(got, untimed(&want));
}

#[test]
fn resume_beyond_the_servers_history_resubscribes_live_and_says_so() {
    let mock = MockGeyser::start(MockConfig {
        history: 8,
        ..MockConfig::default()
    })
    .unwrap();
    let mut ing = start(
        yellowstone(mock.endpoint(), None),
        fast_reconnect(),
        HealthConfig::new(),
        None,
    );
    assert!(wait(5, || mock.active_streams() == 1));
    let all = chain(1, 10);
    let slot_start = |s: u64| all.iter().position(|u| u.slot() == s).unwrap();
    let (a, b) = (slot_start(2), slot_start(6));
    for u in &all[..a] {
        mock.publish_update(u).unwrap();
    }
    assert!(ing.collect_until(5, last_is_slot(1)));
    mock.fault(Fault::DropStreams);
    // Slots 2..=5 go by while the client is away, more than the server keeps.
    for u in &all[a..b] {
        mock.publish_update(u).unwrap();
    }
    let said = wait(5, || {
        ing.health
            .report()
            .last_error
            .is_some_and(|e| e.contains("cannot resume from slot Some(2)"))
    });
    assert!(said, "{:?}", ing.health.report());
    assert!(wait(5, || mock.active_streams() == 1));
    // One slot at a time: the server keeps fewer messages than two slots.
    for s in 6..=10 {
        for u in all.iter().filter(|u| u.slot() == s) {
            mock.publish_update(u).unwrap();
        }
        assert!(ing.collect_until(5, last_is_slot(s)));
    }
    let mut want = expected(&all[..a]);
    want.extend(expected(&all[b..]));
    assert_eq!(
        untimed(&ing.finish()),
        want,
        "the live stream goes on after the gap"
    );
}
