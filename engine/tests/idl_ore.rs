//! The IDL layer against the real ORE stack file: names, sizes, and byte ⇄ record ⇄ JSON round
//! trips over seeded random contents.

use serde_json::{json, Value as J};
use stackcore_engine::idl::{DecodeError, Decoded, IdlSet};
use stackcore_engine::value::Value;
use stackcore_engine::{AccountUpdate, InstructionUpdate, Update};

const ORE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/stacks/OreStream.stack.json"
);

fn ore_json() -> J {
    serde_json::from_slice(&std::fs::read(ORE).expect("ORE stack file")).expect("ORE stack JSON")
}

fn ore() -> (J, IdlSet) {
    let stack = ore_json();
    let idls = IdlSet::from_json(&stack["idls"]).expect("ORE IDLs compile");
    (stack, idls)
}

/// splitmix64, for test data only.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn key(&mut self) -> [u8; 32] {
        self.bytes(32).try_into().unwrap()
    }
}

fn pubkey(s: &str) -> [u8; 32] {
    bs58::decode(s).into_vec().unwrap().try_into().unwrap()
}

/// The size of an IDL type as the ORE program lays it out, computed here from the JSON alone:
/// integers by width, public keys 32, arrays n × element, defined types the sum of their fields
/// (every ORE field is 8-aligned or a byte array, so there is no padding).
fn idl_size(idl: &J, ty: &J) -> usize {
    match ty {
        J::String(s) => match s.as_str() {
            "u8" | "i8" | "bool" => 1,
            "u16" | "i16" => 2,
            "u32" | "i32" => 4,
            "u64" | "i64" => 8,
            "u128" | "i128" => 16,
            "publicKey" | "pubkey" => 32,
            other => panic!("type {other} not expected in ORE"),
        },
        J::Object(o) if o.contains_key("array") => {
            idl_size(idl, &o["array"][0]) * o["array"][1].as_u64().unwrap() as usize
        }
        J::Object(o) if o.contains_key("defined") => {
            let name = o["defined"].as_str().unwrap();
            let td = idl["types"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name)
                .unwrap();
            td["type"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| idl_size(idl, &f["type"]))
                .sum()
        }
        other => panic!("type {other} not expected in ORE"),
    }
}

#[test]
fn ore_event_types_are_named_like_the_reference() {
    let (stack, idls) = ore();
    for name in [
        "ore::RoundState",
        "ore::TreasuryState",
        "ore::MinerState",
        "ore::AutomationState",
        "ore::DeployIxState",
        "ore::CheckpointIxState",
        "ore::ResetIxState",
        "ore::ClaimSolIxState",
        "entropy::VarState",
        "entropy::RevealIxState",
    ] {
        assert!(idls.event_type_id(name).is_some(), "{name} missing");
    }
    let n_items: usize = stack["idls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["accounts"].as_array().unwrap().len() + i["instructions"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(idls.event_types().len(), n_items);

    let deploy = &idls.event_types()[idls.event_type_id("ore::DeployIxState").unwrap() as usize];
    let ix = stack["idls"][0]["instructions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "deploy")
        .unwrap();
    let names: Vec<&str> = ix["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        deploy
            .account_names
            .iter()
            .map(|s| &**s)
            .collect::<Vec<_>>(),
        names
    );
    assert_eq!(
        deploy.field_names.iter().map(|s| &**s).collect::<Vec<_>>(),
        ["amount", "squares"]
    );
    assert!(!deploy.is_account);
    assert_eq!(&*deploy.program, "ore");
    assert_eq!(
        deploy.program_id,
        pubkey("oreV3EG1i9BEgiAJ8b177Z2S2rMarzak4NMv1kULvWv")
    );

    // entropy's `open` has camelCase args; the reference's JSON names them in snake_case.
    let open = &idls.event_types()[idls.event_type_id("entropy::OpenIxState").unwrap() as usize];
    assert_eq!(
        open.field_names.iter().map(|s| &**s).collect::<Vec<_>>(),
        ["id", "commit", "is_auto", "samples", "end_at"]
    );
    assert_eq!(
        idls.program_ids(),
        vec![
            pubkey("oreV3EG1i9BEgiAJ8b177Z2S2rMarzak4NMv1kULvWv"),
            pubkey("3jSkUuYBoJzQPMEzTvkDFXCZUBksPamrVhrnHR9igu2X")
        ]
    );
}

#[test]
fn ore_accounts_have_exactly_the_size_of_their_layout() {
    let (stack, idls) = ore();
    // Hand-computed from the ORE source layout: 8-byte discriminator + id 8 + deployed 25×8 +
    // slot_hash 32 + count 25×8 + 2×8 + 2×32 + 5×8.
    assert_eq!(
        idls.fixed_size(idls.event_type_id("ore::RoundState").unwrap()),
        Some(568)
    );
    for idl in stack["idls"].as_array().unwrap() {
        let prog = idl["name"].as_str().unwrap();
        for acc in idl["accounts"].as_array().unwrap() {
            let name = format!("{prog}::{}State", acc["name"].as_str().unwrap());
            let et = idls.event_type_id(&name).unwrap();
            let body: usize = acc["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| idl_size(idl, &f["type"]))
                .sum();
            let disc = acc["discriminator"].as_array().unwrap().len();
            assert_eq!(idls.fixed_size(et), Some(disc + body), "{name}");

            // An account of exactly that size decodes; one byte more or less does not.
            let mut data = idls.discriminator(et).unwrap().to_vec();
            data.resize(disc + body, 3);
            let owner = pubkey(idl["program_id"].as_str().unwrap());
            let upd = |data: Vec<u8>| {
                Update::Account(AccountUpdate {
                    slot: 1,
                    write_version: 1,
                    pubkey: [9; 32],
                    owner,
                    data,
                    signature: None,
                    timestamp: 0,
                })
            };
            let mut d = Decoded::default();
            idls.decode(&upd(data.clone()), &mut d).unwrap();
            assert_eq!(d.event_type, et);
            let enc = idls.encode(et, &idls.to_reference_json(&d)).unwrap();
            assert_eq!(enc.data.len(), disc + body, "{name}");

            let mut long = data.clone();
            long.push(0);
            assert!(
                matches!(
                    idls.decode(&upd(long), &mut d),
                    Err(DecodeError::TrailingData { .. })
                ),
                "{name}"
            );
            let short = data[..data.len() - 1].to_vec();
            assert!(
                matches!(
                    idls.decode(&upd(short), &mut d),
                    Err(DecodeError::ShortData { .. })
                ),
                "{name}"
            );
        }
    }
}

/// Random bytes in every field of every ORE account and instruction: decode → reference JSON →
/// encode gives the same bytes back, and the JSON parses back to the same record.
#[test]
fn random_ore_events_round_trip_through_record_json_and_bytes() {
    let (_, idls) = ore();
    let mut rng = Rng(42);
    for (et, info) in idls.event_types().iter().enumerate() {
        let et = et as u32;
        let size = idls.fixed_size(et).expect("every ORE layout is fixed");
        for _ in 0..50 {
            let mut data = idls.discriminator(et).unwrap().to_vec();
            let body = rng.bytes(size - data.len());
            data.extend_from_slice(&body);
            let update = if info.is_account {
                Update::Account(AccountUpdate {
                    slot: 7,
                    write_version: 1,
                    pubkey: rng.key(),
                    owner: info.program_id,
                    data: data.clone(),
                    signature: None,
                    timestamp: 0,
                })
            } else {
                Update::Instruction(InstructionUpdate {
                    slot: 7,
                    txn_index: 0,
                    signature: [1; 64],
                    program_id: info.program_id,
                    accounts: (0..info.account_names.len()).map(|_| rng.key()).collect(),
                    data: data.clone(),
                    timestamp: 0,
                })
            };
            let mut d = Decoded::default();
            idls.decode(&update, &mut d)
                .unwrap_or_else(|e| panic!("{}: {e}", info.name));
            assert_eq!(d.event_type, et);
            assert_eq!(d.fields.len(), info.field_names.len());
            let j = idls.to_reference_json(&d);
            let enc = idls.encode(et, &j).unwrap();
            assert_eq!(enc.data, data, "{}", info.name);
            let mut back = Decoded::default();
            idls.decoded_from_json(et, &j, &mut back).unwrap();
            assert_eq!(back, d, "{}", info.name);
            match &update {
                Update::Instruction(ix) => assert_eq!(enc.accounts, ix.accounts),
                Update::Account(a) => {
                    assert_eq!(
                        j["__account_address"],
                        json!(bs58::encode(a.pubkey).into_string())
                    )
                }
                _ => unreachable!(),
            }
        }
    }
}

#[test]
fn deploy_decodes_to_the_reference_event_shape() {
    let (_, idls) = ore();
    let et = idls.event_type_id("ore::DeployIxState").unwrap();
    let info = &idls.event_types()[et as usize];
    let mut data = vec![6u8];
    data.extend_from_slice(&1_500_000u64.to_le_bytes());
    data.extend_from_slice(&0x01ff_ffffu32.to_le_bytes());
    let accounts: Vec<[u8; 32]> = (0..info.account_names.len() as u8)
        .map(|i| [i + 1; 32])
        .collect();
    let update = Update::Instruction(InstructionUpdate {
        slot: 10,
        txn_index: 3,
        signature: [5; 64],
        program_id: info.program_id,
        accounts: accounts.clone(),
        data,
        timestamp: 0,
    });
    let mut d = Decoded::default();
    idls.decode(&update, &mut d).unwrap();
    assert_eq!(
        d.fields,
        vec![Value::U64(1_500_000), Value::U64(0x01ff_ffff)]
    );
    assert_eq!(d.accounts, accounts);
    assert_eq!(d.address, None);
    let j = idls.to_reference_json(&d);
    assert_eq!(
        j["data"],
        json!({"amount": 1_500_000u64, "squares": 0x01ff_ffffu32})
    );
    let b58 = |k: &[u8; 32]| bs58::encode(k).into_string();
    assert_eq!(j["accounts"]["entropyVar"], json!(b58(&[10; 32])));
    assert_eq!(j["accounts"]["round"], json!(b58(&[7; 32])));
    assert_eq!(j["accounts"].as_object().unwrap().len(), 11);
}

#[test]
fn round_account_decodes_fields_at_their_offsets() {
    let (_, idls) = ore();
    let et = idls.event_type_id("ore::RoundState").unwrap();
    let mut data = vec![109u8, 0, 0, 0, 0, 0, 0, 0];
    data.extend_from_slice(&77u64.to_le_bytes()); // id
    for i in 0..25u64 {
        data.extend_from_slice(&(i * 10).to_le_bytes()); // deployed
    }
    data.extend_from_slice(&[0xAB; 32]); // slot_hash
    for i in 0..25u64 {
        data.extend_from_slice(&(i + 1000).to_le_bytes()); // count
    }
    data.extend_from_slice(&123u64.to_le_bytes()); // expires_at
    data.extend_from_slice(&456u64.to_le_bytes()); // motherlode
    data.extend_from_slice(&[0x11; 32]); // rent_payer
    data.extend_from_slice(&[0x22; 32]); // top_miner
    for v in [1u64, 2, 3, 4, 5] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    let update = Update::Account(AccountUpdate {
        slot: 1,
        write_version: 1,
        pubkey: [0x33; 32],
        owner: idls.event_types()[et as usize].program_id,
        data,
        signature: None,
        timestamp: 0,
    });
    let mut d = Decoded::default();
    idls.decode(&update, &mut d).unwrap();
    let j = idls.to_reference_json(&d);
    assert_eq!(j["id"], json!(77));
    assert_eq!(j["deployed"][24], json!(240));
    assert_eq!(j["slot_hash"], json!(vec![0xABu8; 32]));
    assert_eq!(j["count"][0], json!(1000));
    assert_eq!(j["expires_at"], json!(123));
    assert_eq!(
        j["top_miner"],
        json!(bs58::encode([0x22u8; 32]).into_string())
    );
    assert_eq!(j["total_winnings"], json!(5));
    assert_eq!(
        j["__account_address"],
        json!(bs58::encode([0x33u8; 32]).into_string())
    );
    assert_eq!(j.as_object().unwrap().len(), 14);
}

#[test]
fn decoding_reuses_the_record_of_the_same_type() {
    let (_, idls) = ore();
    let et = idls.event_type_id("ore::MinerState").unwrap();
    let size = idls.fixed_size(et).unwrap();
    let mut d = Decoded::default();
    let mut rng = Rng(3);
    let mk = |rng: &mut Rng| {
        let mut data = idls.discriminator(et).unwrap().to_vec();
        data.extend(rng.bytes(size - 8));
        Update::Account(AccountUpdate {
            slot: 1,
            write_version: 1,
            pubkey: [1; 32],
            owner: idls.event_types()[et as usize].program_id,
            data,
            signature: None,
            timestamp: 0,
        })
    };
    idls.decode(&mk(&mut rng), &mut d).unwrap();
    let Value::Array(a) = &d.fields[1] else {
        panic!("deployed is an array")
    };
    let before = a.as_ptr();
    let first = d.fields.clone();
    drop(first);
    idls.decode(&mk(&mut rng), &mut d).unwrap();
    let Value::Array(a) = &d.fields[1] else {
        panic!("deployed is an array")
    };
    assert_eq!(a.as_ptr(), before, "the array buffer is reused");
}

/// ORE is a Steel program: its accounts are bytemuck structs on chain, though the IDL states no
/// serialization (so the reference reads them as Borsh). Every field is 8-aligned or a byte array,
/// so the `repr(C)` layout has no padding and both readings agree byte for byte.
#[test]
fn ore_accounts_read_the_same_as_pod_and_as_borsh() {
    let (mut stack, borsh) = ore();
    for idl in stack["idls"].as_array_mut().unwrap() {
        for acc in idl["accounts"].as_array_mut().unwrap() {
            acc["serialization"] = json!("bytemuck");
        }
    }
    let pod = IdlSet::from_json(&stack["idls"]).unwrap();
    let mut rng = Rng(77);
    for (et, info) in borsh.event_types().iter().enumerate() {
        if !info.is_account {
            continue;
        }
        let et = et as u32;
        assert_eq!(pod.fixed_size(et), borsh.fixed_size(et), "{}", info.name);
        let mut data = borsh.discriminator(et).unwrap().to_vec();
        data.extend(rng.bytes(borsh.fixed_size(et).unwrap() - data.len()));
        let u = Update::Account(AccountUpdate {
            slot: 1,
            write_version: 1,
            pubkey: [1; 32],
            owner: info.program_id,
            data: data.clone(),
            signature: None,
            timestamp: 0,
        });
        let (mut a, mut b) = (Decoded::default(), Decoded::default());
        borsh.decode(&u, &mut a).unwrap();
        pod.decode(&u, &mut b).unwrap();
        assert_eq!(a, b, "{}", info.name);
        assert_eq!(pod.encode_decoded(&b).unwrap().data, data);
    }
}
