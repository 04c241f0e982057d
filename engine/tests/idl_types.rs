//! The IDL layer over a hand-written IDL that uses every type the format has: layouts (Borsh and
//! Pod with padding), enum and map forms, every decode error, load errors with JSON paths, and a
//! fuzz loop that must never panic.

use std::sync::Arc;

use serde_json::{json, Value as J};
use stackcore_engine::idl::{DecodeError, Decoded, EncodeError, IdlSet, TagKind};
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::value::Value;
use stackcore_engine::{AccountUpdate, InstructionUpdate, Update};

const PROGRAM: [u8; 32] = [7; 32];
const SYSTEM: &str = "11111111111111111111111111111111";

fn b58(k: &[u8; 32]) -> String {
    bs58::encode(k).into_string()
}

fn sink_idl() -> J {
    json!([{
        "name": "sink",
        "program_id": b58(&PROGRAM),
        "version": "0.1.0",
        "discriminant_size": 1,
        "accounts": [
            {"name": "Everything", "discriminator": [1, 2, 3, 4, 5, 6, 7, 8], "fields": [
                {"name": "a_u8", "type": "u8"}, {"name": "a_u16", "type": "u16"},
                {"name": "a_u32", "type": "u32"}, {"name": "a_u64", "type": "u64"},
                {"name": "a_i8", "type": "i8"}, {"name": "a_i16", "type": "i16"},
                {"name": "a_i32", "type": "i32"}, {"name": "a_i64", "type": "i64"},
                {"name": "big", "type": "u128"}, {"name": "signedBig", "type": "i128"},
                {"name": "f", "type": "f32"}, {"name": "g", "type": "f64"},
                {"name": "flag", "type": "bool"}, {"name": "key", "type": "publicKey"},
                {"name": "label", "type": "string"}, {"name": "blob", "type": "bytes"},
                {"name": "tag", "type": {"array": ["u8", 4]}},
                {"name": "shorts", "type": {"array": ["u16", 3]}},
                {"name": "list", "type": {"vec": "u32"}},
                {"name": "maybe", "type": {"option": "u64"}},
                {"name": "maybeInner", "type": {"option": {"defined": "Inner"}}},
                {"name": "kind", "type": {"defined": {"name": "Kind"}}},
                {"name": "kinds", "type": {"vec": {"defined": "Kind"}}},
                {"name": "inner", "type": {"defined": "Inner"}},
                {"name": "scores", "type": {"hashMap": ["string", "u64"]}},
                {"name": "pair", "type": {"defined": "Pair"}}
            ]},
            {"name": "Fixed", "discriminator": [2, 0, 0, 0, 0, 0, 0, 0], "fields": [
                {"name": "v", "type": "u64"}
            ]},
            {"name": "PodAcc", "discriminator": [9, 0, 0, 0, 0, 0, 0, 0], "serialization": "bytemuck", "fields": [
                {"name": "a", "type": "u8"}, {"name": "b", "type": "u64"},
                {"name": "c", "type": "u16"}, {"name": "d", "type": "u128"},
                {"name": "e", "type": {"array": [{"defined": "PodInner"}, 2]}},
                {"name": "f", "type": "publicKey"}, {"name": "mode", "type": {"defined": "Mode"}}
            ]},
            {"name": "Packed", "discriminator": [10, 0, 0, 0, 0, 0, 0, 0]}
        ],
        "instructions": [
            {"name": "do_it", "discriminator": [7], "accounts": [
                {"name": "payer", "signer": true},
                {"name": "target"},
                {"name": "systemProgram", "address": SYSTEM},
                {"name": "extra", "optional": true}
            ], "args": [
                {"name": "amount", "type": "u64"}, {"name": "memo", "type": "string"},
                {"name": "maybe", "type": {"option": "u8"}}, {"name": "kind", "type": {"defined": "Kind"}}
            ]},
            {"name": "zst", "discriminant": {"type": "u8", "value": 8}, "accounts": [], "args": [
                {"name": "items", "type": {"vec": {"defined": "Empty"}}}
            ]},
            {"name": "chain", "discriminator": [11], "accounts": [], "args": [
                {"name": "head", "type": {"defined": "Link"}}
            ]}
        ],
        "types": [
            {"name": "Inner", "type": {"kind": "struct", "fields": [
                {"name": "a", "type": "u128"}, {"name": "b", "type": "i128"}, {"name": "c", "type": "f64"},
                {"name": "isOn", "type": "bool"}
            ]}},
            {"name": "Kind", "type": {"kind": "enum", "variants": [
                {"name": "Small"}, {"name": "Big"},
                {"name": "Pair", "fields": ["u8", "u16"]},
                {"name": "Named", "fields": [{"name": "x", "type": "i32"}]},
                {"name": "Wrapped", "fields": ["string"]}
            ]}},
            {"name": "Mode", "type": {"kind": "enum", "variants": [{"name": "Off"}, {"name": "On"}]}},
            {"name": "Pair", "type": {"kind": "struct", "fields": ["u8", "string"]}},
            {"name": "PodInner", "type": {"kind": "struct", "fields": [
                {"name": "x", "type": "u8"}, {"name": "y", "type": "u64"}
            ]}},
            {"name": "Packed", "serialization": "bytemuckunsafe", "repr": {"kind": "c", "packed": true},
             "type": {"kind": "struct", "fields": [{"name": "a", "type": "u8"}, {"name": "b", "type": "u64"}]}},
            {"name": "Empty", "type": {"kind": "struct", "fields": []}},
            {"name": "Link", "type": {"kind": "struct", "fields": [
                {"name": "next", "type": {"option": {"defined": "Link"}}}
            ]}}
        ]
    }])
}

fn sink() -> IdlSet {
    IdlSet::from_json(&sink_idl()).expect("sink IDL compiles")
}

fn account(data: Vec<u8>) -> Update {
    Update::Account(AccountUpdate {
        slot: 1,
        write_version: 1,
        pubkey: [3; 32],
        owner: PROGRAM,
        data,
        signature: None,
        timestamp: 0,
    })
}

fn instruction(data: Vec<u8>, n_accounts: usize) -> Update {
    Update::Instruction(InstructionUpdate {
        slot: 1,
        txn_index: 0,
        signature: [0; 64],
        program_id: PROGRAM,
        accounts: (0..n_accounts as u8).map(|i| [i + 100; 32]).collect(),
        data,
        timestamp: 0,
    })
}

fn decode(idls: &IdlSet, u: &Update) -> Result<Decoded, DecodeError> {
    let mut d = Decoded::default();
    idls.decode(u, &mut d).map(|_| d)
}

fn do_it_bytes(memo: &[u8], option_tag: u8, kind_tag: u8) -> Vec<u8> {
    let mut data = vec![7u8];
    data.extend_from_slice(&500u64.to_le_bytes());
    data.extend_from_slice(&(memo.len() as u32).to_le_bytes());
    data.extend_from_slice(memo);
    data.push(option_tag);
    if option_tag == 1 {
        data.push(42);
    }
    data.push(kind_tag);
    data
}

#[test]
fn borsh_instruction_decodes_hand_built_bytes() {
    let idls = sink();
    let mut data = do_it_bytes("héllo".as_bytes(), 1, 3);
    data.extend_from_slice(&(-5i32).to_le_bytes()); // Kind::Named { x: -5 }
    let d = decode(&idls, &instruction(data.clone(), 3)).unwrap();
    assert_eq!(
        d.fields,
        vec![
            Value::U64(500),
            Value::Str("héllo".into()),
            Value::U64(42),
            Value::Object(vec![(
                "Named".into(),
                Value::Object(vec![("x".into(), Value::I64(-5))])
            )]),
        ]
    );
    let j = idls.to_reference_json(&d);
    assert_eq!(
        j,
        json!({"data": {"amount": 500, "memo": "héllo", "maybe": 42, "kind": {"Named": {"x": -5}}},
               "accounts": {"payer": b58(&[100; 32]), "target": b58(&[101; 32]), "systemProgram": b58(&[102; 32])}})
    );
    assert_eq!(
        &*idls.event_types()[d.event_type as usize].name,
        "sink::DoItIxState"
    );

    // Unit variant → its name; an absent option → null; the optional fourth account is kept.
    let data = do_it_bytes(b"", 0, 1);
    let d = decode(&idls, &instruction(data, 4)).unwrap();
    let j = idls.to_reference_json(&d);
    assert_eq!(j["data"]["kind"], json!("Big"));
    assert_eq!(j["data"]["maybe"], J::Null);
    assert_eq!(j["accounts"]["extra"], json!(b58(&[103; 32])));
}

#[test]
fn pod_account_is_laid_out_with_repr_c_padding() {
    let idls = sink();
    let et = idls.event_type_id("sink::PodAccState").unwrap();
    // a u8 @0, b u64 @8, c u16 @16, d u128 @32 (16-aligned), e [PodInner{x u8 @0, y u64 @8}; 2]
    // @48 (16 each), f pubkey @80, mode u8 @112, size rounded to the 16-byte alignment: 128.
    assert_eq!(idls.fixed_size(et), Some(8 + 128));
    let mut body = vec![0xEEu8; 128]; // padding bytes are ignored whatever they hold
    body[0] = 1;
    body[8..16].copy_from_slice(&2u64.to_le_bytes());
    body[16..18].copy_from_slice(&3u16.to_le_bytes());
    body[32..48].copy_from_slice(&(u64::MAX as u128 + 4).to_le_bytes());
    body[48] = 5;
    body[56..64].copy_from_slice(&6u64.to_le_bytes());
    body[64] = 7;
    body[72..80].copy_from_slice(&8u64.to_le_bytes());
    body[80..112].copy_from_slice(&[9; 32]);
    body[112] = 1;
    let mut data = vec![9, 0, 0, 0, 0, 0, 0, 0];
    data.extend_from_slice(&body);
    let d = decode(&idls, &account(data)).unwrap();
    let j = idls.to_reference_json(&d);
    assert_eq!(
        j,
        json!({"a": 1, "b": 2, "c": 3, "d": (u64::MAX as u128 + 4).to_string(),
               "e": [{"x": 5, "y": 6}, {"x": 7, "y": 8}], "f": b58(&[9; 32]), "mode": "On",
               "__account_address": b58(&[3; 32])})
    );
    // Encoding writes zeros into the padding and gives the same size.
    let enc = idls.encode(et, &j).unwrap();
    assert_eq!(enc.data.len(), 8 + 128);
    assert_eq!(enc.data[8 + 1..8 + 8], [0; 7]);
    assert_eq!(decode(&idls, &account(enc.data)).unwrap().fields, d.fields);

    // repr(packed): no padding at all.
    let packed = idls.event_type_id("sink::PackedState").unwrap();
    assert_eq!(idls.fixed_size(packed), Some(8 + 9));
}

#[test]
fn every_type_round_trips_through_json_and_bytes() {
    let idls = sink();
    let et = idls.event_type_id("sink::EverythingState").unwrap();
    let j = json!({
        "a_u8": 255, "a_u16": 65535, "a_u32": 4294967295u64, "a_u64": u64::MAX,
        "a_i8": -128, "a_i16": -32768, "a_i32": -2147483648i64, "a_i64": i64::MIN,
        "big": u128::MAX.to_string(), "signed_big": i128::MIN.to_string(),
        "f": 1.5, "g": 1e-6, "flag": true, "key": b58(&[1; 32]),
        "label": "✓ ok", "blob": [1, 2, 3], "tag": [9, 8, 7, 6], "shorts": [1, 2, 3],
        "list": [10, 20], "maybe": null, "maybe_inner": {"a": "5", "b": "-6", "c": 325.0, "is_on": false},
        "kind": {"Pair": [1, 2]}, "kinds": ["Small", {"Wrapped": "w"}, {"Named": {"x": 1}}],
        "inner": {"a": "0", "b": "0", "c": -0.5, "is_on": true},
        "scores": {"alice": 1, "bob": 2}, "pair": [3, "three"],
        "__account_address": b58(&[3; 32])
    });
    let enc = idls.encode(et, &j).unwrap();
    let d = decode(&idls, &account(enc.data.clone())).unwrap();
    assert_eq!(idls.to_reference_json(&d), j);
    assert_eq!(d.fields[8], Value::U128(u128::MAX));
    assert_eq!(d.fields[15], Value::Bytes(Arc::from(&[1u8, 2, 3][..])));
    // Floats print as serde_json prints them.
    let text = serde_json::to_string(&idls.to_reference_json(&d)).unwrap();
    assert!(
        text.contains("\"g\":1e-6") && text.contains("\"c\":325.0"),
        "{text}"
    );
    // The record parsed from the JSON is the decoded one.
    let mut back = Decoded::default();
    idls.decoded_from_json(et, &j, &mut back).unwrap();
    assert_eq!(back, d);
}

#[test]
fn generated_events_of_every_type_round_trip() {
    let idls = sink();
    let mut g = Generator::new(
        &idls,
        SynthConfig {
            seed: 9,
            ..SynthConfig::default()
        },
    );
    let mut seen = vec![0u32; idls.event_types().len()];
    for _ in 0..3_000 {
        let u = g.next_update();
        let d = match decode(&idls, &u) {
            Ok(d) => d,
            // Only the recursive `chain` may nest past the limit; nothing else may fail.
            Err(e) => panic!("{e}"),
        };
        seen[d.event_type as usize] += 1;
        let j = idls.to_reference_json(&d);
        let enc = idls.encode(d.event_type, &j).unwrap();
        let (data, accounts) = match &u {
            Update::Account(a) => (&a.data, vec![]),
            Update::Instruction(i) => (&i.data, i.accounts.clone()),
            _ => unreachable!(),
        };
        assert_eq!(&enc.data, data);
        assert_eq!(enc.accounts, accounts);
        let mut back = Decoded::default();
        idls.decoded_from_json(d.event_type, &j, &mut back).unwrap();
        assert_eq!(back, d);
    }
    assert!(
        seen.iter().all(|n| *n > 0),
        "every event type generated: {seen:?}"
    );
}

#[test]
fn every_decode_error_comes_from_a_crafted_input() {
    let idls = sink();
    let fixed = |extra: &[u8]| {
        let mut d = vec![2, 0, 0, 0, 0, 0, 0, 0];
        d.extend_from_slice(&5u64.to_le_bytes());
        d.extend_from_slice(extra);
        d
    };
    assert!(decode(&idls, &account(fixed(&[]))).is_ok());

    assert_eq!(
        decode(
            &idls,
            &Update::Slot {
                slot: 1,
                timestamp: 0
            }
        ),
        Err(DecodeError::NotAnEvent)
    );
    let mut other = account(fixed(&[]));
    if let Update::Account(a) = &mut other {
        a.owner = [8; 32];
    }
    assert_eq!(
        decode(&idls, &other),
        Err(DecodeError::UnknownProgram {
            program_id: [8; 32]
        })
    );
    assert!(matches!(
        decode(&idls, &account(vec![0xFF; 16])),
        Err(DecodeError::UnknownDiscriminator {
            is_account: true,
            ..
        })
    ));
    // Data that stops inside a discriminator does not match it, even where the rest of the
    // discriminator is zeros (`Fixed`'s is `[2, 0, ..]`).
    for short in [vec![1, 2, 3], vec![2], vec![2, 0, 0]] {
        assert!(matches!(
            decode(&idls, &account(short)),
            Err(DecodeError::UnknownDiscriminator {
                is_account: true,
                ..
            })
        ));
    }
    assert!(matches!(
        decode(&idls, &instruction(vec![200], 0)),
        Err(DecodeError::UnknownDiscriminator {
            is_account: false,
            ..
        })
    ));
    assert!(matches!(
        decode(&idls, &account(fixed(&[])[..12].to_vec())),
        Err(DecodeError::ShortData {
            offset: 8,
            needed: 8,
            len: 12,
            ..
        })
    ));
    assert!(matches!(
        decode(&idls, &account(fixed(&[0]))),
        Err(DecodeError::TrailingData {
            consumed: 16,
            len: 17,
            ..
        })
    ));
    let mut ix = do_it_bytes(b"x", 0, 0);
    ix.push(0);
    assert!(matches!(
        decode(&idls, &instruction(ix, 3)),
        Err(DecodeError::TrailingData { .. })
    ));
    assert!(matches!(
        decode(&idls, &instruction(do_it_bytes(&[0xFF, 0xFE], 0, 0), 3)),
        Err(DecodeError::InvalidUtf8 { offset: 13, .. })
    ));
    assert!(matches!(
        decode(&idls, &instruction(do_it_bytes(b"", 2, 0), 3)),
        Err(DecodeError::InvalidTag {
            kind: TagKind::Option,
            tag: 2,
            ..
        })
    ));
    assert!(matches!(
        decode(&idls, &instruction(do_it_bytes(b"", 0, 9), 3)),
        Err(DecodeError::InvalidTag {
            kind: TagKind::Enum,
            tag: 9,
            ..
        })
    ));
    // An enum byte past the last variant in a Pod account.
    let mut pod = vec![9, 0, 0, 0, 0, 0, 0, 0];
    pod.resize(8 + 128, 0);
    pod[8 + 112] = 1;
    assert!(decode(&idls, &account(pod.clone())).is_ok());
    pod[8 + 112] = 2;
    assert!(matches!(
        decode(&idls, &account(pod)),
        Err(DecodeError::InvalidTag {
            kind: TagKind::Enum,
            tag: 2,
            ..
        })
    ));
    let et = idls.event_type_id("sink::EverythingState").unwrap();
    let mut ev = Decoded::default();
    idls.decoded_from_json(
        et,
        &json!({"a_u8": 0, "a_u16": 0, "a_u32": 0, "a_u64": 0, "a_i8": 0, "a_i16": 0, "a_i32": 0,
                "a_i64": 0, "big": "0", "signed_big": "0", "f": 0.0, "g": 0.0, "flag": true,
                "key": b58(&[0; 32]), "label": "", "blob": [], "tag": [0, 0, 0, 0], "shorts": [0, 0, 0],
                "list": [], "maybe": null, "maybe_inner": null, "kind": "Small", "kinds": [],
                "inner": {"a": "0", "b": "0", "c": 0.0, "is_on": false}, "scores": {}, "pair": [0, ""]}),
        &mut ev,
    )
    .unwrap();
    let mut bytes = idls.encode_decoded(&ev).unwrap().data;
    let flag_at = 8 + 1 + 2 + 4 + 8 + 1 + 2 + 4 + 8 + 16 + 16 + 4 + 8;
    assert_eq!(bytes[flag_at], 1);
    bytes[flag_at] = 2;
    assert!(matches!(
        decode(&idls, &account(bytes)),
        Err(DecodeError::InvalidTag {
            kind: TagKind::Bool,
            tag: 2,
            ..
        })
    ));
    let mut zst = vec![8u8];
    zst.extend_from_slice(&(1u32 << 20).to_le_bytes());
    assert!(matches!(
        decode(&idls, &instruction(zst, 0)),
        Err(DecodeError::TooManyElements { len: 1048576, .. })
    ));
    let mut deep = vec![11u8];
    deep.extend(std::iter::repeat_n(1u8, 200));
    deep.push(0);
    assert!(matches!(
        decode(&idls, &instruction(deep, 0)),
        Err(DecodeError::TooDeep { .. })
    ));
    let mut shallow = vec![11u8, 1, 1, 1, 0];
    assert!(decode(&idls, &instruction(shallow.clone(), 0)).is_ok());
    shallow.pop();
    assert!(matches!(
        decode(&idls, &instruction(shallow, 0)),
        Err(DecodeError::ShortData { .. })
    ));
    assert!(matches!(
        decode(&idls, &instruction(do_it_bytes(b"", 0, 0), 2)),
        Err(DecodeError::MissingAccounts {
            expected: 3,
            got: 2,
            ..
        })
    ));
    // Length prefixes larger than the data fail before allocating.
    let mut huge = do_it_bytes(b"", 0, 0);
    huge[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode(&idls, &instruction(huge, 3)),
        Err(DecodeError::ShortData { .. })
    ));
    // Every error renders.
    assert!(DecodeError::NotAnEvent
        .to_string()
        .contains("not an account"));
}

#[test]
fn json_events_of_the_wrong_shape_are_typed_errors_with_paths() {
    let idls = sink();
    let et = idls.event_type_id("sink::DoItIxState").unwrap();
    let mut d = Decoded::default();
    let good = json!({"data": {"amount": 1, "memo": "m", "maybe": null, "kind": "Small"},
                      "accounts": {"payer": b58(&[1; 32]), "target": b58(&[2; 32])}});
    idls.decoded_from_json(et, &good, &mut d).unwrap();
    // The fixed-address account is filled in from the IDL.
    assert_eq!(d.accounts.len(), 3);
    assert_eq!(b58(&d.accounts[2]), SYSTEM);

    let cases = [
        (
            json!({"data": {"amount": -1, "memo": "m", "maybe": null, "kind": "Small"}, "accounts": {}}),
            "$.data.amount",
        ),
        (
            json!({"data": {"amount": 1, "memo": 5, "maybe": null, "kind": "Small"}, "accounts": {}}),
            "$.data.memo",
        ),
        (
            json!({"data": {"amount": 1, "memo": "m", "maybe": 256, "kind": "Small"}, "accounts": {}}),
            "$.data.maybe",
        ),
        (
            json!({"data": {"amount": 1, "memo": "m", "maybe": null, "kind": "Nope"}, "accounts": {}}),
            "$.data.kind",
        ),
        (
            json!({"data": {"amount": 1, "memo": "m", "maybe": null, "kind": {"Named": {"y": 1}}}, "accounts": {}}),
            "$.data.kind.Named.x",
        ),
        (
            json!({"data": {"amount": 1, "memo": "m", "maybe": null}, "accounts": {}}),
            "$.data.kind",
        ),
        (
            json!({"data": {"amount": 1, "memo": "m", "maybe": null, "kind": "Small"}, "accounts": {"payer": "zz"}}),
            "$.accounts.payer",
        ),
        (
            json!({"data": {"amount": 1, "memo": "m", "maybe": null, "kind": "Small"}}),
            "$.accounts",
        ),
    ];
    for (j, path) in cases {
        match idls.decoded_from_json(et, &j, &mut d) {
            Err(DecodeError::Json { path: p, .. }) => assert_eq!(p, path, "{j}"),
            other => panic!("{j}: {other:?}"),
        }
        match idls.encode(et, &j) {
            Err(EncodeError::Json { path: p, .. }) => assert_eq!(p, path, "{j}"),
            other => panic!("{j}: {other:?}"),
        }
    }
    assert_eq!(
        idls.decoded_from_json(999, &good, &mut d),
        Err(DecodeError::UnknownEventType { event_type: 999 })
    );
    assert_eq!(
        idls.encode(999, &good),
        Err(EncodeError::UnknownEventType(999))
    );
    assert_eq!(
        idls.to_reference_json(&Decoded {
            event_type: 999,
            ..Default::default()
        }),
        J::Null
    );
}

fn load_error(idls: J) -> (String, String) {
    match IdlSet::from_json(&idls) {
        Ok(_) => panic!("loaded: {idls}"),
        Err(e) => (e.path, e.message),
    }
}

#[test]
fn load_errors_name_the_json_path() {
    let with = |f: &dyn Fn(&mut J)| {
        let mut j = sink_idl();
        f(&mut j);
        load_error(j)
    };
    assert_eq!(load_error(json!({})).0, "$.idls");
    assert_eq!(load_error(json!([5])).0, "$.idls[0]");
    let (p, m) =
        with(&|j| j[0]["types"][1]["type"]["variants"][3]["fields"][0]["type"] = json!("u99"));
    assert_eq!(p, "$.idls[0].types[1].type.variants[3].fields[0].type");
    assert!(m.contains("u99"), "{m}");
    let (p, m) = with(&|j| j[0]["accounts"][0]["fields"][21]["type"] = json!({"defined": "Nope"}));
    assert_eq!(p, "$.idls[0].accounts[0].fields[21].type.defined");
    assert!(m.contains("Nope"), "{m}");
    let (p, _) =
        with(&|j| j[0]["instructions"][0]["args"][0]["type"] = json!({"vec": {"array": ["u8"]}}));
    assert_eq!(p, "$.idls[0].instructions[0].args[0].type.vec.array");
    let (p, _) = with(&|j| j[0]["types"][3]["type"]["kind"] = json!("union"));
    assert_eq!(p, "$.idls[0].types[3].type.kind");
    let (p, _) = with(&|j| j[0]["program_id"] = json!("not a key"));
    assert_eq!(p, "$.idls[0].program_id");
    let (p, _) = with(&|j| j[0]["accounts"][1]["discriminator"] = json!([1, 2, 3, 4, 5, 6, 7, 8]));
    assert_eq!(p, "$.idls[0].accounts[1].discriminator");
    // One discriminator the prefix of another is ambiguous too, whichever comes first.
    let (p, m) = with(&|j| j[0]["accounts"][1]["discriminator"] = json!([1, 2, 3]));
    assert_eq!(p, "$.idls[0].accounts[1].discriminator");
    assert!(m.contains("collides"), "{m}");
    let (p, _) = with(&|j| j[0]["accounts"][0]["discriminator"] = json!([2, 0]));
    assert_eq!(p, "$.idls[0].accounts[1].discriminator");
    let (p, _) = with(&|j| j[0]["accounts"][2]["fields"][0]["type"] = json!("string"));
    assert_eq!(p, "$.idls[0].accounts[2]");
    let (p, m) = with(&|j| j[0]["accounts"][2]["fields"][0]["type"] = json!({"defined": "Link"}));
    assert_eq!(p, "$.idls[0].accounts[2]");
    assert!(m.contains("fixed"), "{m}");
    let (p, _) = with(&|j| j[0]["instructions"][1]["discriminant"]["value"] = json!(300));
    assert_eq!(p, "$.idls[0].instructions[1].discriminant.value");
    let (p, _) = with(&|j| j[0]["types"][0]["name"] = json!("Kind"));
    assert_eq!(p, "$.idls[0].types[1].name");
    let (p, _) = with(&|j| j[0]["accounts"][3]["name"] = json!("Unknown"));
    assert_eq!(p, "$.idls[0].accounts[3]");
    let (p, _) = with(&|j| j[0]["accounts"][0]["serialization"] = json!("protobuf"));
    assert_eq!(p, "$.idls[0].accounts[0].serialization");
    let (p, _) = with(&|j| {
        j[0]["instructions"][0]["args"][0]["type"] = json!({"hashMap": [{"vec": "u8"}, "u8"]})
    });
    assert_eq!(p, "$.idls[0].instructions[0].args[0].type.hashMap[0]");
}

#[test]
fn anchor_items_without_discriminators_get_the_sha256_ones() {
    let idls = IdlSet::from_json(&json!([{
        "name": "anc", "address": b58(&PROGRAM), "version": "1",
        "accounts": [{"name": "Pool"}],
        "instructions": [{"name": "initialize", "accounts": [], "args": []}],
        "types": [{"name": "Pool", "type": {"kind": "struct", "fields": [{"name": "v", "type": "u8"}]}}]
    }]))
    .unwrap();
    // sha256("global:initialize")[..8], the well-known Anchor discriminator.
    assert_eq!(
        idls.discriminator(idls.event_type_id("anc::InitializeIxState").unwrap())
            .unwrap(),
        [175, 175, 109, 31, 13, 152, 155, 237]
    );
    let pool = idls.event_type_id("anc::PoolState").unwrap();
    assert_eq!(idls.discriminator(pool).unwrap().len(), 8);
}

/// Mutated, truncated and random bytes never panic the decoder.
#[test]
fn fuzzed_bytes_never_panic() {
    let sink = sink();
    let ore_stack: J = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/stacks/OreStream.stack.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let ore = IdlSet::from_json(&ore_stack["idls"]).unwrap();
    let mut rng = 0x1234_5678u64;
    let mut next = move || {
        rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut outcomes = [0u32; 2];
    for idls in [&sink, &ore] {
        let mut g = Generator::new(
            idls,
            SynthConfig {
                seed: 5,
                ..SynthConfig::default()
            },
        );
        let mut d = Decoded::default();
        for _ in 0..3_000 {
            let mut u = g.next_update();
            let data = match &mut u {
                Update::Account(a) => &mut a.data,
                Update::Instruction(i) => &mut i.data,
                _ => continue,
            };
            match next() % 4 {
                0 => data.truncate((next() % (data.len() as u64 + 1)) as usize),
                1 => {
                    for _ in 0..1 + next() % 4 {
                        if !data.is_empty() {
                            let i = (next() % data.len() as u64) as usize;
                            data[i] = next() as u8;
                        }
                    }
                }
                2 => {
                    let keep = (next() % 9).min(data.len() as u64) as usize;
                    data.truncate(keep);
                    data.extend((0..next() % 64).map(|_| next() as u8));
                }
                _ => data.extend((0..1 + next() % 4).map(|_| next() as u8)),
            }
            outcomes[idls.decode(&u, &mut d).is_ok() as usize] += 1;
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
