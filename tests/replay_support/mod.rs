//! Shared helpers of the `replay_*` tests: running `replay::run` in-process, scratch files, and a
//! short launchpad event script written against the embedded demo stack.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::{json, Value};
use stackcore::replay::{self, ReplayArgs};

pub const ORE_STACK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/stacks/OreStream.stack.json"
);

pub const MINT_A: &str = "ByiEzw92Qd9BprKRys3XV7YZtD4LcmpEGb9iFHinwtV8";
pub const MINT_B: &str = "4oMB13ikzEoCTGUZypGd8cD1G843rLM9YvuzXekKcjDW";
pub const CURVE_A: &str = "AEH8ofkEjjZHk6rhpzPtuJxhEMhzH1ebmtgDi24dmz8T";
pub const CURVE_B: &str = "BxdkLTVkeerzhFY1zgNc7MW69bn9vNyqPJF1qVZ37Hqc";
pub const CREATOR: &str = "FXGgbPYSbpQTTbJQg5VFFjA8QhjwHgV2bMqdvXkNWKx9";
pub const ALICE: &str = "AfJhWAcwbXYYU4sSKBBci8ucmfc4Y3T8cLStFqspDY6B";
pub const BOB: &str = "JCEg7fVEzYUn9z6BcwhD4KP7wcqurKK9a9rusqv1fqAX";
pub const CAROL: &str = "9fdoVJaBVtDWMfjWrMLJ2m2NQ2F8gQC3Q1XmdxF7Lo5d";
pub const FEE: &str = "G9Fvv2vnrfC7r7oTm3Yx7vi2GW1911VqzVZEse9AnX3Q";
pub const GLOBAL: &str = "8LLnWx63xfz9HwNScvDZLXHfZRLWnJrd7L6X5MGkGaNt";
pub const SYSTEM: &str = "11111111111111111111111111111111";
pub const T0: i64 = 1_790_000_000;

/// Runs `replay::run` in-process: (exit code, stdout, stderr).
pub fn run(args: ReplayArgs) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = replay::run(args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).expect("stdout is UTF-8"),
        String::from_utf8(err).expect("stderr is UTF-8"),
    )
}

/// A fresh scratch path for this test process.
pub fn scratch(name: &str) -> PathBuf {
    // Cargo's scratch dir for integration tests (inside the target dir), one folder per process.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("replay-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

/// Writes `lines` (one per element) to a scratch file and returns its path as a string.
pub fn write_lines(name: &str, lines: &[String]) -> String {
    let p = scratch(name);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&p, text).expect("write scratch file");
    p.display().to_string()
}

/// `v` written out and read back, as replay output and `--expect` files are compared (serde_json's
/// float parsing is not exactly round-trip, so values built in memory are normalised this way).
pub fn via_text(v: Value) -> Value {
    serde_json::from_str(&v.to_string()).expect("JSON reads back")
}

pub fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn curve(
    slot: u64,
    wv: u64,
    mint: &str,
    curve: &str,
    vsol: u64,
    vtok: u64,
    complete: bool,
) -> Value {
    json!({
        "event_type": "launchpad::BondingCurveState", "slot": slot, "write_version": wv,
        "signature": format!("acct-{slot}-{wv}"), "timestamp": T0 + slot as i64,
        "data": {
            "mint": mint, "creator": CREATOR,
            "virtual_token_reserves": vtok, "virtual_sol_reserves": vsol,
            "real_token_reserves": vtok.saturating_sub(279_900_000_000_000), "real_sol_reserves": vsol.saturating_sub(30_000_000_000),
            "token_total_supply": 1_000_000_000_000_000u64, "complete": complete,
            "__account_address": curve,
        }
    })
}

fn create(slot: u64, txn: u64, mint: &str, curve: &str, name: &str, symbol: &str) -> Value {
    json!({
        "event_type": "launchpad::CreateIxState", "slot": slot, "txn_index": txn,
        "signature": format!("create-{slot}-{txn}"), "timestamp": T0 + slot as i64,
        "data": {
            "data": {"name": name, "symbol": symbol, "uri": format!("https://example.invalid/{symbol}.json")},
            "accounts": {"mint": mint, "bondingCurve": curve, "creator": CREATOR, "global": GLOBAL, "systemProgram": SYSTEM},
        }
    })
}

/// A `buy` or `sell` of `tokens` for `lamports` on `(mint, curve)`.
fn trade(
    ix: &str,
    (slot, txn): (u64, u64),
    (mint, curve): (&str, &str),
    user: &str,
    tokens: u64,
    lamports: u64,
) -> Value {
    json!({
        "event_type": format!("launchpad::{ix}IxState"), "slot": slot, "txn_index": txn,
        "signature": format!("{ix}-{slot}-{txn}"), "timestamp": T0 + slot as i64,
        "data": {
            "data": {"token_amount": tokens, "sol_amount": lamports},
            "accounts": {"global": GLOBAL, "feeRecipient": FEE, "mint": mint, "bondingCurve": curve, "user": user, "systemProgram": SYSTEM},
        }
    })
}

/// A short launchpad session on the demo stack: two launches, buys and sells from three wallets,
/// curve updates after trades, one stale curve update and one duplicate instruction delivery.
pub fn demo_events() -> Vec<Value> {
    let (a, ca, b, cb) = (MINT_A, CURVE_A, MINT_B, CURVE_B);
    vec![
        create(100, 0, a, ca, "Demo Cat", "DCAT"),
        curve(100, 1, a, ca, 30_000_000_000, 1_073_000_000_000_000, false),
        trade(
            "Buy",
            (101, 0),
            (a, ca),
            ALICE,
            34_000_000_000_000,
            1_000_000_000,
        ),
        curve(101, 2, a, ca, 31_000_000_000, 1_039_000_000_000_000, false),
        trade(
            "Buy",
            (101, 1),
            (a, ca),
            BOB,
            60_000_000_000_000,
            2_000_000_000,
        ),
        curve(101, 3, a, ca, 33_000_000_000, 979_000_000_000_000, false),
        create(102, 0, b, cb, "Second Dog", "SDOG"),
        curve(102, 1, b, cb, 30_000_000_000, 1_073_000_000_000_000, false),
        trade(
            "Buy",
            (102, 1),
            (b, cb),
            CAROL,
            100_000_000_000_000,
            3_000_000_000,
        ),
        curve(102, 2, b, cb, 33_000_000_000, 973_000_000_000_000, false),
        trade(
            "Sell",
            (103, 0),
            (a, ca),
            ALICE,
            34_000_000_000_000,
            1_100_000_000,
        ),
        curve(103, 4, a, ca, 31_900_000_000, 1_013_000_000_000_000, false),
        curve(102, 9, a, ca, 1, 1_000_000_000_000_000, true),
        trade(
            "Buy",
            (101, 1),
            (a, ca),
            BOB,
            60_000_000_000_000,
            2_000_000_000,
        ),
        trade(
            "Buy",
            (105, 0),
            (b, cb),
            ALICE,
            400_000_000_000_000,
            50_000_000_000,
        ),
        curve(105, 3, b, cb, 85_000_000_000, 279_900_000_000_000, true),
        trade(
            "Sell",
            (105, 1),
            (b, cb),
            CAROL,
            10_000_000_000_000,
            2_900_000_000,
        ),
    ]
}

/// The demo events as JSON lines text (one line each).
pub fn demo_lines() -> Vec<String> {
    demo_events().iter().map(Value::to_string).collect()
}
