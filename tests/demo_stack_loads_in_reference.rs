//! The embedded demo stack (`src/stacks/launchpad.stack.json`) is a real HyperStack stack file:
//! the reference interpreter (hyperstack-interpreter 0.6.9, a dev-dependency used only as an
//! oracle) deserializes it, compiles it to bytecode the way `../shared/protocol.md` §8.1 describes,
//! and, fed hand-written decoded events, produces the mutations each feature of the stack promises
//! (LastWrite, SetOnce, Sum, Count, Max, UniqueCount, Append, the computed fields).
//!
//! Every expected value below is written out or derived from the event inputs in plain Rust; none
//! is taken from the code under test.

use hyperstack_interpreter::ast::{SerializableStackSpec, TypedStreamSpec};
use hyperstack_interpreter::compiler::MultiEntityBytecode;
use hyperstack_interpreter::vm::VmContext;
use hyperstack_interpreter::{Mutation, UpdateContext};
use serde_json::{json, Value};

const STACK: &str = include_str!("../src/stacks/launchpad.stack.json");

const PROGRAM: &str = "LaunchpadDemo111111111111111111111111111111";
const MINT: &str = "ByiEzw92Qd9BprKRys3XV7YZtD4LcmpEGb9iFHinwtV8";
const CURVE: &str = "AEH8ofkEjjZHk6rhpzPtuJxhEMhzH1ebmtgDi24dmz8T";
const CREATOR: &str = "FXGgbPYSbpQTTbJQg5VFFjA8QhjwHgV2bMqdvXkNWKx9";
const ALICE: &str = "AfJhWAcwbXYYU4sSKBBci8ucmfc4Y3T8cLStFqspDY6B";
const BOB: &str = "JCEg7fVEzYUn9z6BcwhD4KP7wcqurKK9a9rusqv1fqAX";
const FEE: &str = "G9Fvv2vnrfC7r7oTm3Yx7vi2GW1911VqzVZEse9AnX3Q";
const GLOBAL: &str = "8LLnWx63xfz9HwNScvDZLXHfZRLWnJrd7L6X5MGkGaNt";
const SYSTEM: &str = "11111111111111111111111111111111";
const TS: i64 = 1_790_000_000;

fn spec() -> SerializableStackSpec {
    serde_json::from_str(STACK).expect("the demo stack deserializes as a reference stack spec")
}

/// The reference VM with the demo stack compiled in, as protocol.md §8.1 describes.
struct Reference {
    bytecode: MultiEntityBytecode,
    vm: VmContext,
}

impl Reference {
    fn new() -> Self {
        let mut builder = MultiEntityBytecode::new();
        for (i, entity) in spec().entities.into_iter().enumerate() {
            let evaluator =
                VmContext::create_evaluator_from_specs(entity.computed_field_specs.clone());
            let name = entity.state_name.clone();
            builder = builder.add_entity_with_evaluator(
                name,
                TypedStreamSpec::<Value>::from_serializable(entity),
                i as u32,
                Some(evaluator),
            );
        }
        Reference {
            bytecode: builder.build(),
            vm: VmContext::new(),
        }
    }

    fn curve(&mut self, slot: u64, write_version: u64, fields: Value) -> Vec<Mutation> {
        let mut event = fields;
        event["__account_address"] = json!(CURVE);
        let mut ctx = UpdateContext::new_account(
            slot,
            format!("sig-acct-{slot}-{write_version}"),
            write_version,
        );
        ctx.timestamp = Some(TS + slot as i64);
        self.vm
            .process_event(
                &self.bytecode,
                event,
                "launchpad::BondingCurveState",
                Some(&ctx),
                None,
            )
            .expect("account event runs")
    }

    fn ix(
        &mut self,
        ix: &str,
        slot: u64,
        txn_index: u64,
        data: Value,
        accounts: Value,
    ) -> Vec<Mutation> {
        let event = json!({ "data": data, "accounts": accounts });
        let mut ctx =
            UpdateContext::new_instruction(slot, format!("sig-{ix}-{slot}-{txn_index}"), txn_index);
        ctx.timestamp = Some(TS + slot as i64);
        self.vm
            .process_event(
                &self.bytecode,
                event,
                &format!("launchpad::{ix}IxState"),
                Some(&ctx),
                None,
            )
            .expect("instruction event runs")
    }

    fn trade(
        &mut self,
        ix: &str,
        slot: u64,
        txn_index: u64,
        user: &str,
        tokens: u64,
        lamports: u64,
    ) -> Mutation {
        let accounts = json!({
            "global": GLOBAL, "feeRecipient": FEE, "mint": MINT, "bondingCurve": CURVE,
            "user": user, "systemProgram": SYSTEM,
        });
        let data = json!({ "token_amount": tokens, "sol_amount": lamports });
        one(self.ix(ix, slot, txn_index, data, accounts))
    }

    fn create(&mut self, slot: u64, name: &str, symbol: &str) -> Vec<Mutation> {
        let accounts = json!({
            "mint": MINT, "bondingCurve": CURVE, "creator": CREATOR, "global": GLOBAL,
            "systemProgram": SYSTEM,
        });
        let data = json!({ "name": name, "symbol": symbol, "uri": format!("https://example.invalid/{symbol}.json") });
        self.ix("Create", slot, 0, data, accounts)
    }
}

fn curve_fields(vsol: u64, vtok: u64, supply: u64, complete: bool) -> Value {
    json!({
        "mint": MINT,
        "creator": CREATOR,
        "virtual_token_reserves": vtok,
        "virtual_sol_reserves": vsol,
        "real_token_reserves": vtok - 279_900_000_000_000,
        "real_sol_reserves": vsol - 30_000_000_000,
        "token_total_supply": supply,
        "complete": complete,
    })
}

fn one(mut ms: Vec<Mutation>) -> Mutation {
    assert_eq!(ms.len(), 1, "expected exactly one mutation, got {ms:?}");
    ms.pop().unwrap()
}

fn at<'a>(m: &'a Mutation, pointer: &str) -> Option<&'a Value> {
    m.patch.pointer(pointer)
}

#[test]
fn demo_stack_deserializes_with_its_own_program_idl_and_views() {
    let spec = spec();
    assert_eq!(spec.stack_name, "Launchpad");
    assert_eq!(spec.program_ids, vec![PROGRAM.to_string()]);
    assert_eq!(spec.idls.len(), 1);
    let idl = &spec.idls[0];
    assert_eq!(idl.name, "launchpad");
    assert_eq!(idl.program_id.as_deref(), Some(PROGRAM));
    assert_eq!(
        idl.discriminant_size, 8,
        "Anchor-style 8-byte discriminators"
    );
    let accounts: Vec<&str> = idl.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(accounts, ["BondingCurve", "Global"]);
    let ixs: Vec<&str> = idl.instructions.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(ixs, ["create", "buy", "sell"]);
    assert!(idl.accounts.iter().all(|a| a.discriminator.len() == 8));
    assert!(idl.instructions.iter().all(|i| i.discriminator.len() == 8));
    assert_eq!(spec.entities.len(), 1);
    let token = &spec.entities[0];
    assert_eq!(token.state_name, "Token");
    assert_eq!(token.identity.primary_keys, ["id.mint"]);
    let views: Vec<&str> = token.views.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(views, ["Token/top", "Token/latest"]);
    assert_eq!(spec.instructions.len(), 3);
    assert!(spec.pdas["launchpad"].contains_key("bondingCurve"));
}

#[test]
fn demo_stack_content_hashes_match_the_reference_canonical_hash() {
    let spec = spec();
    assert!(
        spec.content_hash.is_some(),
        "the stack carries its content hash"
    );
    assert_eq!(spec.content_hash.clone(), Some(spec.compute_content_hash()));
    for entity in &spec.entities {
        assert!(entity.content_hash.is_some());
        assert!(
            entity.verify_content_hash(),
            "{} hash is stale",
            entity.state_name
        );
    }
}

#[test]
fn bonding_curve_account_sets_identity_once_and_overwrites_reserves() {
    let mut r = Reference::new();
    let first = one(r.curve(
        100,
        1,
        curve_fields(
            30_000_000_000,
            1_073_000_000_000_000,
            1_000_000_000_000_000,
            false,
        ),
    ));
    assert_eq!(first.export, "Token");
    assert_eq!(
        first.key,
        json!(MINT),
        "keyed by the mint, as a base58 string"
    );
    assert_eq!(at(&first, "/id/mint"), Some(&json!(MINT)));
    assert_eq!(at(&first, "/id/bonding_curve"), Some(&json!(CURVE)));
    assert_eq!(at(&first, "/id/creator"), Some(&json!(CREATOR)));
    assert_eq!(
        at(&first, "/curve/virtual_sol_reserves"),
        Some(&json!(30_000_000_000u64))
    );
    assert_eq!(
        at(&first, "/curve/virtual_token_reserves"),
        Some(&json!(1_073_000_000_000_000u64))
    );
    assert_eq!(at(&first, "/curve/real_sol_reserves"), Some(&json!(0)));
    assert_eq!(
        at(&first, "/curve/token_total_supply"),
        Some(&json!(1_000_000_000_000_000u64))
    );
    assert_eq!(at(&first, "/curve/complete"), Some(&json!(false)));

    let second = one(r.curve(
        101,
        1,
        curve_fields(
            85_000_000_000,
            279_900_000_000_000,
            1_000_000_000_000_000,
            true,
        ),
    ));
    assert_eq!(
        at(&second, "/curve/virtual_sol_reserves"),
        Some(&json!(85_000_000_000u64))
    );
    assert_eq!(at(&second, "/curve/real_token_reserves"), Some(&json!(0)));
    assert_eq!(at(&second, "/curve/complete"), Some(&json!(true)));
    assert_eq!(
        at(&second, "/id"),
        None,
        "SetOnce identity fields are not written again"
    );
}

#[test]
fn stale_bonding_curve_update_produces_no_mutation() {
    let mut r = Reference::new();
    one(r.curve(
        200,
        5,
        curve_fields(
            31_000_000_000,
            1_000_000_000_000_000,
            1_000_000_000_000_000,
            false,
        ),
    ));
    let stale = r.curve(
        200,
        4,
        curve_fields(
            30_000_000_000,
            1_073_000_000_000_000,
            1_000_000_000_000_000,
            false,
        ),
    );
    assert!(
        stale.is_empty(),
        "older write_version must be dropped: {stale:?}"
    );
}

#[test]
fn computed_price_and_market_cap_follow_the_curve_reserves() {
    let mut r = Reference::new();
    let (vsol, vtok, supply) = (
        30_000_000_000u64,
        1_073_000_000_000_000u64,
        1_000_000_000_000_000u64,
    );
    let m = one(r.curve(100, 1, curve_fields(vsol, vtok, supply, false)));
    // SOL per whole token: (lamports / 1e9) / (base units / 1e6); market cap = price × whole supply.
    let price = vsol as f64 / vtok as f64 / 1000.0;
    let cap = price * (supply as f64 / 1_000_000.0);
    assert_eq!(at(&m, "/pricing/price_sol"), Some(&json!(price)));
    assert_eq!(at(&m, "/pricing/market_cap_sol"), Some(&json!(cap)));

    let (vsol2, vtok2) = (45_000_000_000u64, 715_000_000_000_000u64);
    let m2 = one(r.curve(101, 1, curve_fields(vsol2, vtok2, supply, false)));
    let price2 = vsol2 as f64 / vtok2 as f64 / 1000.0;
    assert_eq!(at(&m2, "/pricing/price_sol"), Some(&json!(price2)));
    assert_eq!(
        at(&m2, "/pricing/market_cap_sol"),
        Some(&json!(price2 * (supply as f64 / 1_000_000.0)))
    );
}

#[test]
fn computed_price_is_null_until_the_curve_is_seen() {
    let mut r = Reference::new();
    let m = r.trade("Buy", 100, 3, ALICE, 1_000_000, 30_000);
    assert_eq!(at(&m, "/pricing/price_sol"), Some(&Value::Null));
    assert_eq!(at(&m, "/pricing/market_cap_sol"), Some(&Value::Null));
    let again = r.trade("Buy", 101, 3, ALICE, 1_000_000, 30_000);
    assert_eq!(
        at(&again, "/pricing"),
        None,
        "unchanged computed fields are not re-sent"
    );
}

#[test]
fn buys_and_sells_sum_volume_and_count_trades_by_side() {
    let mut r = Reference::new();
    let b1 = r.trade("Buy", 100, 1, ALICE, 5_000_000, 2_000_000_000);
    assert_eq!(b1.key, json!(MINT));
    assert_eq!(
        at(&b1, "/trading/volume_sol"),
        Some(&json!(2_000_000_000u64))
    );
    assert_eq!(at(&b1, "/trading/trade_count"), Some(&json!(1)));
    assert_eq!(at(&b1, "/trading/buy_count"), Some(&json!(1)));
    assert_eq!(at(&b1, "/trading/sell_count"), None);

    let b2 = r.trade("Buy", 100, 2, BOB, 1_000_000, 500_000_000);
    assert_eq!(
        at(&b2, "/trading/volume_sol"),
        Some(&json!(2_500_000_000u64))
    );
    assert_eq!(at(&b2, "/trading/buy_count"), Some(&json!(2)));

    let s1 = r.trade("Sell", 101, 0, ALICE, 2_000_000, 700_000_000);
    assert_eq!(
        at(&s1, "/trading/volume_sol"),
        Some(&json!(3_200_000_000u64)),
        "sells add to the volume too"
    );
    assert_eq!(at(&s1, "/trading/trade_count"), Some(&json!(3)));
    assert_eq!(at(&s1, "/trading/sell_count"), Some(&json!(1)));
    assert_eq!(
        at(&s1, "/trading/buy_count"),
        None,
        "Count of the other side is untouched"
    );
    assert_eq!(at(&s1, "/trading/last_trader"), Some(&json!(ALICE)));
}

#[test]
fn largest_trade_keeps_the_maximum_sol_amount() {
    let mut r = Reference::new();
    let a = r.trade("Buy", 100, 1, ALICE, 1, 5_000_000_000);
    assert_eq!(
        at(&a, "/trading/largest_trade_sol"),
        Some(&json!(5_000_000_000u64))
    );
    let b = r.trade("Sell", 100, 2, BOB, 1, 2_000_000_000);
    assert_eq!(
        at(&b, "/trading/largest_trade_sol"),
        None,
        "a smaller trade leaves the max alone"
    );
    let c = r.trade("Buy", 101, 1, BOB, 1, 9_000_000_000);
    assert_eq!(
        at(&c, "/trading/largest_trade_sol"),
        Some(&json!(9_000_000_000u64))
    );
}

#[test]
fn unique_traders_counts_each_wallet_once_across_buys_and_sells() {
    let mut r = Reference::new();
    let a = r.trade("Buy", 100, 1, ALICE, 1, 1);
    assert_eq!(at(&a, "/trading/unique_traders"), Some(&json!(1)));
    let b = r.trade("Buy", 100, 2, BOB, 1, 1);
    assert_eq!(at(&b, "/trading/unique_traders"), Some(&json!(2)));
    let c = r.trade("Sell", 100, 3, ALICE, 1, 1);
    assert_eq!(
        at(&c, "/trading/unique_traders"),
        None,
        "a returning wallet does not count again"
    );
}

#[test]
fn trades_append_event_records_with_only_the_new_element_in_the_patch() {
    let mut r = Reference::new();
    let b = r.trade("Buy", 100, 1, ALICE, 5_000_000, 2_000_000_000);
    assert_eq!(b.append, ["events.buys"]);
    let buys = at(&b, "/events/buys")
        .and_then(Value::as_array)
        .expect("events.buys in the patch");
    assert_eq!(buys.len(), 1);
    let rec = &buys[0];
    assert_eq!(
        rec["data"],
        json!({ "user": ALICE, "sol_amount": 2_000_000_000u64, "token_amount": 5_000_000u64 })
    );
    assert_eq!(rec["slot"], json!(100));
    assert_eq!(rec["signature"], json!("sig-Buy-100-1"));
    // The reference stamps event records with its wall clock, not the event's time (§8.1).
    assert!(rec["timestamp"].is_i64(), "{rec}");

    let b2 = r.trade("Buy", 101, 1, BOB, 1_000_000, 400_000_000);
    let buys2 = at(&b2, "/events/buys").and_then(Value::as_array).unwrap();
    assert_eq!(buys2.len(), 1, "only the new element is sent");
    assert_eq!(buys2[0]["data"]["user"], json!(BOB));

    let s = r.trade("Sell", 102, 1, BOB, 1_000_000, 300_000_000);
    assert_eq!(s.append, ["events.sells"]);
    assert_eq!(at(&s, "/events/buys"), None);
}

#[test]
fn create_sets_metadata_once_and_the_creation_slot_from_the_context() {
    let mut r = Reference::new();
    let c = one(r.create(90, "Demo Cat", "DCAT"));
    assert_eq!(c.key, json!(MINT));
    assert_eq!(at(&c, "/id/creator"), Some(&json!(CREATOR)));
    assert_eq!(at(&c, "/info/name"), Some(&json!("Demo Cat")));
    assert_eq!(at(&c, "/info/symbol"), Some(&json!("DCAT")));
    assert_eq!(
        at(&c, "/info/uri"),
        Some(&json!("https://example.invalid/DCAT.json"))
    );
    assert_eq!(at(&c, "/info/created_slot"), Some(&json!(90)));
    assert_eq!(at(&c, "/info/created_at"), Some(&json!(TS + 90)));

    let again = r.create(91, "Renamed", "RNM");
    assert!(
        again.iter().all(|m| at(m, "/info").is_none()),
        "SetOnce metadata is never rewritten: {again:?}"
    );
}
