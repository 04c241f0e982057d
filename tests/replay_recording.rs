//! `replay --events FILE` where FILE is a `--record` recording (raw upstream messages): the
//! mutations are those of the recorded updates, re-sent messages after a "resumed" marker are
//! dropped as ingest drops them, and a truncated recording is replayed up to the bad record.

mod replay_support;

use replay_support::*;
use serde_json::{json, Value};
use stackcore::replay::ReplayArgs;
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::{Stack, Update, VmContext};
use stackcore_io::ingest::convert::to_proto;
use stackcore_io::ingest::record::Recorder;

const COUNT: usize = 600;

fn demo() -> Stack {
    Stack::from_json(stackcore::stacks::LAUNCHPAD.as_bytes()).unwrap()
}

fn updates() -> Vec<Update> {
    let stack = demo();
    let mut gen = Generator::new(
        stack.idls(),
        SynthConfig {
            seed: 11,
            ..Default::default()
        },
    );
    (0..COUNT).map(|_| gen.next_update()).collect()
}

fn timestamp(u: &Update) -> i64 {
    match u {
        Update::Account(a) => a.timestamp,
        Update::Instruction(i) => i.timestamp,
        Update::Slot { timestamp, .. } => *timestamp,
    }
}

/// Records `updates` as ingest would have received them (receive time = the update's time),
/// with a reconnect after `resume_at` that re-sends the 20 messages before it.
fn record(name: &str, updates: &[Update], resume_at: usize) -> std::path::PathBuf {
    let path = scratch(name);
    let _ = std::fs::remove_file(&path);
    let mut rec = Recorder::open(&path).unwrap();
    let nanos = |u: &Update| timestamp(u).max(0) as u64 * 1_000_000_000;
    for (i, u) in updates.iter().enumerate() {
        rec.update(nanos(u), &to_proto(u).unwrap()).unwrap();
        if i + 1 == resume_at {
            rec.resumed(nanos(u)).unwrap();
            for again in &updates[resume_at - 20..resume_at] {
                rec.update(nanos(again), &to_proto(again).unwrap()).unwrap();
            }
        }
    }
    rec.flush().unwrap();
    path
}

/// The mutation lines of the engine alone over `updates`.
fn engine_lines(updates: &[Update]) -> Vec<Value> {
    let stack = demo();
    let mut vm = VmContext::new();
    let mut out = Vec::new();
    for u in updates {
        let _ = vm.apply(&stack, u, &mut out);
    }
    out.iter()
        .map(|m| {
            via_text(json!({
                "entity": &*m.entity, "key": m.key, "patch": m.patch, "append": m.append,
                "seq": format!("{}:{:012}", m.seq.slot, m.seq.index),
            }))
        })
        .collect()
}

#[test]
fn replay_of_a_recording_equals_the_engine_over_the_recorded_updates() {
    let updates = updates();
    let path = record("session.screc", &updates, 300);
    let (code, out, err) = run(ReplayArgs {
        strict: true,
        ..ReplayArgs::new(path.display().to_string())
    });
    assert_eq!(code, 0, "{err}");
    let expected = engine_lines(&updates);
    let actual = parse_lines(&out);
    assert!(expected.len() > 100, "{}", expected.len());
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "mutation {i}");
    }
}

#[test]
fn a_truncated_recording_is_replayed_up_to_the_bad_record() {
    let updates = updates();
    let full = record("full.screc", &updates, 300);
    let (_, full_out, _) = run(ReplayArgs::new(full.display().to_string()));
    let bytes = std::fs::read(&full).unwrap();
    let cut = scratch("cut.screc");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let cut = cut.display().to_string();

    let (code, out, err) = run(ReplayArgs::new(cut.clone()));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("{cut} (record at byte")), "{err}");
    assert!(err.contains("truncated"), "{err}");
    assert!(
        full_out.starts_with(&out),
        "the output before the bad record is the same"
    );
    assert!(out.lines().count() > 100);

    let (code, _, err) = run(ReplayArgs {
        strict: true,
        ..ReplayArgs::new(cut)
    });
    assert_eq!(code, 2, "{err}");
}
