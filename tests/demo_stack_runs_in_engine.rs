//! The embedded demo stack runs in our own engine as the binary uses it by default: it loads,
//! its views register, and the synthetic chain drives every field of `Token`.

use std::collections::BTreeSet;

use serde_json::Value;
use stackcore::stacks::LAUNCHPAD;
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::{EntityCacheConfig, Stack, Views, VmContext};

fn stack() -> Stack {
    Stack::from_json(LAUNCHPAD.as_bytes()).expect("the demo stack loads in the engine")
}

/// Dotted paths of every leaf in `v` (arrays count as leaves).
fn leaf_paths(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(&p, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

#[test]
fn demo_stack_loads_with_its_program_event_types_and_views() {
    let stack = stack();
    assert_eq!(stack.name(), "Launchpad");
    assert_eq!(stack.program_ids().len(), 1);
    let types: BTreeSet<&str> = stack.event_types().iter().map(String::as_str).collect();
    for t in [
        "launchpad::BondingCurveState",
        "launchpad::CreateIxState",
        "launchpad::BuyIxState",
        "launchpad::SellIxState",
    ] {
        assert!(types.contains(t), "{t} missing from {types:?}");
    }
    let views = Views::try_new(stack.entity_views(), EntityCacheConfig::default())
        .expect("every view of the demo stack builds");
    let names = views.names();
    for v in [
        "Token/list",
        "Token/state",
        "Token/append",
        "Token/top",
        "Token/latest",
    ] {
        assert!(names.contains(&v), "{v} missing from {names:?}");
    }
}

#[test]
fn synthetic_chain_on_the_demo_stack_feeds_every_token_field() {
    let stack = stack();
    let mut gen = Generator::new(
        stack.idls(),
        SynthConfig {
            seed: 3,
            ..Default::default()
        },
    );
    let mut vm = VmContext::new();
    let mut out = Vec::new();
    for _ in 0..2_000 {
        let u = gen.next_update();
        vm.apply(&stack, &u, &mut out)
            .expect("synthetic updates are valid for the stack");
    }
    assert!(out.iter().all(|m| &*m.entity == "Token"));
    let mut paths = BTreeSet::new();
    for m in &out {
        leaf_paths("", &m.patch.to_json(), &mut paths);
    }
    for p in [
        "id.mint",
        "id.bonding_curve",
        "id.creator",
        "info.name",
        "info.symbol",
        "info.created_slot",
        "curve.virtual_sol_reserves",
        "curve.complete",
        "pricing.price_sol",
        "pricing.market_cap_sol",
        "trading.volume_sol",
        "trading.trade_count",
        "trading.buy_count",
        "trading.sell_count",
        "trading.largest_trade_sol",
        "trading.unique_traders",
        "trading.last_trader",
        "events.buys",
        "events.sells",
    ] {
        assert!(paths.contains(p), "{p} never written; written: {paths:?}");
    }
    assert!(out.iter().any(|m| m.append == ["events.buys"]));
}
