//! `stackcore replay` through the built binary: the clap wiring of every flag, the exit codes, and
//! the same output as the library call.

mod replay_support;

use std::process::Command;

use replay_support::*;
use stackcore::replay::ReplayArgs;

fn stackcore(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stackcore"))
        .arg("replay")
        .args(args)
        .output()
        .expect("the stackcore binary runs");
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn binary_replay_prints_what_the_library_prints() {
    let events = write_lines("binary.jsonl", &demo_lines());
    let (code, out, err) = stackcore(&["--events", &events]);
    assert_eq!(code, 0, "{err}");
    let (_, lib_out, _) = run(ReplayArgs::new(events.clone()));
    assert!(!out.is_empty());
    assert_eq!(out, lib_out);
}

#[test]
fn binary_replay_exits_1_on_a_difference_and_2_on_bad_input() {
    let events = write_lines("binary-exit.jsonl", &demo_lines());
    let (_, good, _) = stackcore(&["--events", &events]);
    let changed = good.replacen(r#""symbol":"DCAT""#, r#""symbol":"DOGE""#, 1);
    assert_ne!(changed, good);
    let expected = scratch("binary-expected.jsonl");
    std::fs::write(&expected, changed).unwrap();
    let expected = expected.display().to_string();

    let (code, out, _) = stackcore(&["--events", &events, "--expect", &expected]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(r#"patch.info.symbol: expected "DOGE", got "DCAT""#),
        "{out}"
    );

    let (code, _, err) = stackcore(&["--events", "/nonexistent.jsonl"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = stackcore(&["--events", &events, "--out", "nonsense"]);
    assert_eq!(code, 2, "clap rejects a bad value with exit 2: {err}");
}

#[test]
fn binary_replay_takes_every_flag() {
    let (code, out, err) = stackcore(&[
        "--stack",
        ORE_STACK,
        "--events",
        "synthetic:5:400",
        "--out",
        "frames",
        "--view",
        "OreRound/latest",
        "--subscribe-after",
        "200",
        "--strict",
    ]);
    assert_eq!(code, 0, "{err}");
    let frames = parse_lines(&out);
    assert_eq!(frames[0]["op"], "subscribed");
    assert_eq!(frames[0]["view"], "OreRound/latest");
    assert!(frames.len() > 1, "{out}");
}

#[test]
fn binary_replay_is_byte_identical_across_processes() {
    let args = [
        "--stack",
        ORE_STACK,
        "--events",
        "synthetic:9:1500",
        "--out",
        "frames",
        "--view",
        "OreRound/list",
        "--subscribe-after",
        "700",
    ];
    let (c1, a, e1) = stackcore(&args);
    let (c2, b, e2) = stackcore(&args);
    assert_eq!((c1, c2), (0, 0), "{e1}{e2}");
    assert!(a.lines().count() > 10, "{a}");
    assert!(a == b, "two processes printed different bytes");
    let (c3, m1, _) = stackcore(&["--stack", ORE_STACK, "--events", "synthetic:9:1500"]);
    let (c4, m2, _) = stackcore(&["--stack", ORE_STACK, "--events", "synthetic:9:1500"]);
    assert_eq!((c3, c4), (0, 0));
    assert!(m1 == m2, "two processes printed different mutations");
}
