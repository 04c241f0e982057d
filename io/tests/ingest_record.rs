//! Record and replay: a replay hands the workers exactly what the live run did, and a damaged
//! file replays up to the bad record and says where it is.

mod ingest_common;

use ingest_common::*;
use stackcore_engine::Update;
use stackcore_io::config::HealthConfig;
use stackcore_io::health::StreamStatus;
use stackcore_io::ingest::convert::to_proto;
use stackcore_io::ingest::record::Recorder;
use stackcore_io::ingest::{Fault, MockConfig, MockGeyser, Pace, Source};

fn replay(path: &std::path::Path) -> Ingest {
    let source = Source::Replay {
        path: path.to_owned(),
        pace: Pace::AsFastAsPossible,
    };
    let ing = start(source, fast_reconnect(), HealthConfig::new(), None);
    assert!(wait(10, || ing.handle.is_finished()));
    ing
}

#[test]
fn replay_of_a_recording_reproduces_the_live_updates_across_a_reconnect() {
    let path = tmp_path("live.rec");
    let mock = MockGeyser::start(MockConfig::default()).unwrap();
    let mut live = start(
        yellowstone(mock.endpoint(), None),
        fast_reconnect(),
        HealthConfig::new(),
        Some(path.clone()),
    );
    assert!(wait(5, || mock.active_streams() == 1));
    let all = chain(10, 8);
    let cut = all.iter().position(|u| u.slot() == 14).unwrap() + 3;
    for u in &all[..cut] {
        mock.publish_update(u).unwrap();
    }
    let n = expected(&all[..cut]).len();
    assert!(
        live.collect_until(5, |g| g.len() == n),
        "{} of {n}: {:?}",
        live.got.len(),
        live.got.last()
    );
    mock.fault(Fault::DropStreams);
    for u in &all[cut..] {
        mock.publish_update(u).unwrap();
    }
    assert!(live.collect_until(10, last_is_slot(17)));
    let live_got = live.finish();
    assert_eq!(
        untimed(&live_got),
        expected(&all),
        "the live run itself is exact"
    );

    let rep = replay(&path);
    assert_eq!(
        rep.health.status(),
        StreamStatus::Disconnected,
        "a finished replay is not a live stream"
    );
    assert_eq!(
        rep.finish(),
        live_got,
        "same updates, same ingest timestamps"
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn truncated_recording_replays_everything_before_the_bad_offset() {
    let path = tmp_path("truncated.rec");
    let all = chain(1, 3);
    {
        let mut rec = Recorder::open(&path).unwrap();
        for (i, u) in all.iter().enumerate() {
            rec.update(1_000_000_000 * (i as u64 + 1), &to_proto(u).unwrap())
                .unwrap();
        }
    }
    // Walk the file format independently to find where the last record starts.
    let bytes = std::fs::read(&path).unwrap();
    let mut starts = Vec::new();
    let mut at = 8usize;
    while at < bytes.len() {
        starts.push(at);
        let len = u32::from_le_bytes(bytes[at + 9..at + 13].try_into().unwrap()) as usize;
        at += 13 + len;
    }
    assert_eq!(starts.len(), all.len());
    let last = *starts.last().unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();

    let rep = replay(&path);
    let report = rep.health.report();
    let msg = match &report.status {
        StreamStatus::Error(m) => m.clone(),
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(
        msg.contains(&format!("truncated record at byte {last}")),
        "{msg}"
    );
    let got = rep.finish();
    // Everything but the last record (the final slot status) was replayed; a recording is
    // replayed as received, without the upstream's filters.
    assert_eq!(untimed(&got), untimed(&all[..all.len() - 1]));
    assert!(
        matches!(got.first(), Some(Update::Account(a)) if a.timestamp == 1),
        "recorded receive time is the clock"
    );
    let _ = std::fs::remove_file(&path);
}
