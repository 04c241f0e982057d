//! The synthetic chain over the ORE IDLs: deterministic, valid, and shaped so that the ORE stack
//! gets real work (reused addresses, stable identities, instructions pointing at known accounts).

use std::collections::{HashMap, HashSet};

use serde_json::Value as J;
use stackcore_engine::idl::{Decoded, IdlSet};
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::value::Value;
use stackcore_engine::{Pubkey, Update};

fn ore() -> IdlSet {
    let stack: J = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/stacks/OreStream.stack.json"
        ))
        .unwrap(),
    )
    .unwrap();
    IdlSet::from_json(&stack["idls"]).unwrap()
}

fn cfg(seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        ..SynthConfig::default()
    }
}

fn take(idls: &IdlSet, cfg: SynthConfig, n: usize) -> Vec<Update> {
    let mut g = Generator::new(idls, cfg);
    (0..n).map(|_| g.next_update()).collect()
}

#[test]
fn the_same_seed_gives_the_same_sequence_and_another_seed_does_not() {
    let idls = ore();
    let a = take(&idls, cfg(11), 2_000);
    assert_eq!(a, take(&idls, cfg(11), 2_000));
    let b = take(&idls, cfg(12), 2_000);
    assert_ne!(a, b);
    assert!(a.iter().zip(&b).filter(|(x, y)| x != y).count() > 1_900);
}

#[test]
fn every_generated_ore_update_decodes_and_all_types_occur() {
    let idls = ore();
    let mut d = Decoded::default();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for u in take(&idls, cfg(1), 10_000) {
        idls.decode(&u, &mut d)
            .unwrap_or_else(|e| panic!("{e}: {u:?}"));
        let name = idls.event_types()[d.event_type as usize].name.to_string();
        *counts.entry(name).or_default() += 1;
        // And the reference JSON encodes back to the same bytes.
        let enc = idls
            .encode(d.event_type, &idls.to_reference_json(&d))
            .unwrap();
        match &u {
            Update::Account(a) => assert_eq!(enc.data, a.data),
            Update::Instruction(i) => assert_eq!(
                (enc.data, enc.accounts),
                (i.data.clone(), i.accounts.clone())
            ),
            Update::Slot { .. } => unreachable!(),
        }
    }
    assert_eq!(counts.len(), idls.event_types().len(), "{counts:?}");
    for busy in [
        "ore::RoundState",
        "ore::DeployIxState",
        "ore::CheckpointIxState",
        "entropy::VarState",
    ] {
        assert!(counts[busy] > 150, "{busy}: {counts:?}");
    }
}

#[test]
fn addresses_are_reused_and_keep_their_identity() {
    let idls = ore();
    let round = idls.event_type_id("ore::RoundState").unwrap();
    let miner = idls.event_type_id("ore::MinerState").unwrap();
    let mut d = Decoded::default();
    let mut type_of: HashMap<Pubkey, u32> = HashMap::new();
    let mut round_id: HashMap<Pubkey, Value> = HashMap::new();
    let mut miner_authority: HashMap<Pubkey, Value> = HashMap::new();
    let mut last: HashMap<Pubkey, Vec<Value>> = HashMap::new();
    let mut writes = 0;
    let mut changed_fields = Vec::new();
    let quiet = SynthConfig {
        duplicate_ratio: 0.0,
        out_of_order_ratio: 0.0,
        ..cfg(3)
    };
    for u in take(&idls, quiet, 5_000) {
        let Update::Account(a) = &u else { continue };
        writes += 1;
        idls.decode(&u, &mut d).unwrap();
        assert_eq!(
            *type_of.entry(a.pubkey).or_insert(d.event_type),
            d.event_type
        );
        if d.event_type == round {
            assert_eq!(
                round_id.entry(a.pubkey).or_insert(d.fields[0].clone()),
                &d.fields[0]
            );
        }
        if d.event_type == miner {
            assert_eq!(
                miner_authority
                    .entry(a.pubkey)
                    .or_insert(d.fields[0].clone()),
                &d.fields[0]
            );
        }
        if let Some(prev) = last.insert(a.pubkey, d.fields.clone()) {
            changed_fields.push(prev.iter().zip(&d.fields).filter(|(x, y)| x != y).count());
        }
    }
    // 8 account types × 8 addresses at most, each written many times.
    assert!(type_of.len() <= 64, "{}", type_of.len());
    assert!(writes > 10 * type_of.len());
    // Round ids are distinct per address.
    let ids: HashSet<String> = round_id.values().map(|v| format!("{v:?}")).collect();
    assert_eq!(ids.len(), round_id.len());
    // Later writes change a few fields, never everything.
    assert!(changed_fields.iter().all(|n| *n <= 3), "{changed_fields:?}");
    assert!(changed_fields.iter().filter(|n| **n > 0).count() > changed_fields.len() / 2);
}

#[test]
fn ore_instructions_point_at_the_accounts_of_their_types() {
    let idls = ore();
    let mut d = Decoded::default();
    let mut seen: HashMap<String, HashSet<Pubkey>> = HashMap::new();
    let mut refs: Vec<(String, Pubkey)> = Vec::new();
    for u in take(&idls, cfg(4), 5_000) {
        idls.decode(&u, &mut d).unwrap();
        let et = &idls.event_types()[d.event_type as usize];
        if et.is_account {
            seen.entry(et.name.to_string())
                .or_default()
                .insert(d.address.unwrap());
            continue;
        }
        for (name, key) in et.account_names.iter().zip(&d.accounts) {
            let ty = match (&*et.name, &**name) {
                ("ore::DeployIxState", "round") | ("ore::CheckpointIxState", "round") => {
                    "ore::RoundState"
                }
                ("ore::ResetIxState", "roundNext") => "ore::RoundState",
                ("ore::DeployIxState", "entropyVar") => "entropy::VarState",
                ("ore::DeployIxState", "miner") => "ore::MinerState",
                ("ore::CheckpointIxState", "treasury") => "ore::TreasuryState",
                ("ore::DeployIxState", "oreProgram") => {
                    assert_eq!(
                        bs58::encode(key).into_string(),
                        "oreV3EG1i9BEgiAJ8b177Z2S2rMarzak4NMv1kULvWv"
                    );
                    continue;
                }
                _ => continue,
            };
            refs.push((ty.to_string(), *key));
        }
    }
    assert!(refs.len() > 500, "{}", refs.len());
    for (ty, key) in refs {
        assert!(seen[&ty].contains(&key), "{ty} {key:?}");
    }
}

#[test]
fn slots_versions_and_timestamps_advance() {
    let idls = ore();
    let quiet = SynthConfig {
        duplicate_ratio: 0.0,
        out_of_order_ratio: 0.0,
        updates_per_slot: 3,
        start_slot: 1_000,
        ..cfg(5)
    };
    let updates = take(&idls, quiet, 3_000);
    let mut slot = 0;
    let mut wv = 0;
    let mut txn: Option<(u64, u64)> = None;
    let mut per_slot: HashMap<u64, usize> = HashMap::new();
    for u in &updates {
        assert!(u.slot() >= slot);
        slot = u.slot();
        *per_slot.entry(slot).or_default() += 1;
        match u {
            Update::Account(a) => {
                assert!(a.write_version > wv);
                wv = a.write_version;
                assert_eq!(a.timestamp, 1_700_000_000 + (a.slot * 2 / 5) as i64);
            }
            Update::Instruction(i) => {
                if let Some((s, t)) = txn {
                    if s == i.slot {
                        assert!(i.txn_index > t);
                    }
                }
                txn = Some((i.slot, i.txn_index));
                assert_eq!(i.timestamp, 1_700_000_000 + (i.slot * 2 / 5) as i64);
            }
            Update::Slot { .. } => unreachable!(),
        }
    }
    assert_eq!(updates[0].slot(), 1_000);
    // Three transactions or lone writes per slot, a transaction being up to 1 + 3 updates.
    let full = per_slot.len() - 1;
    assert!(per_slot.values().all(|n| *n <= 3 * 4), "{per_slot:?}");
    assert!(
        per_slot.values().filter(|n| **n >= 3).count() >= full,
        "{per_slot:?}"
    );
    assert!(per_slot.len() > 3_000 / 12);
}

#[test]
fn duplicates_and_late_writes_occur_only_when_asked_for() {
    let idls = ore();
    let count = |cfg: SynthConfig| {
        let mut seen = HashSet::new();
        let mut dups = 0;
        let mut newest: HashMap<Pubkey, (u64, u64)> = HashMap::new();
        let mut late = 0;
        for u in take(&idls, cfg, 4_000) {
            let fresh = seen.insert(format!("{u:?}"));
            if !fresh {
                dups += 1;
                continue;
            }
            if let Update::Account(a) = &u {
                let v = (a.slot, a.write_version);
                match newest.get(&a.pubkey) {
                    Some(n) if *n > v => late += 1,
                    _ => {
                        newest.insert(a.pubkey, v);
                    }
                }
            }
        }
        (dups, late)
    };
    assert_eq!(
        count(SynthConfig {
            duplicate_ratio: 0.0,
            out_of_order_ratio: 0.0,
            ..cfg(6)
        }),
        (0, 0)
    );
    let (dups, late) = count(SynthConfig {
        duplicate_ratio: 0.05,
        out_of_order_ratio: 0.2,
        ..cfg(6)
    });
    assert!(dups > 100, "{dups}");
    assert!(late > 10, "{late}");
}

#[test]
fn transactions_bundle_an_instruction_with_writes_of_its_accounts() {
    let idls = ore();
    let quiet = SynthConfig {
        duplicate_ratio: 0.0,
        out_of_order_ratio: 0.0,
        ..cfg(8)
    };
    let updates = take(&idls, quiet, 5_000);
    let mut d = Decoded::default();
    let mut ix_accounts: HashMap<[u8; 64], (u64, HashSet<Pubkey>)> = HashMap::new();
    for u in &updates {
        if let Update::Instruction(i) = u {
            ix_accounts.insert(i.signature, (i.slot, i.accounts.iter().copied().collect()));
        }
    }
    let (mut bundled, mut before, mut var_writes) = (0, 0, 0);
    let mut seen_ix: HashSet<[u8; 64]> = HashSet::new();
    for u in &updates {
        match u {
            Update::Instruction(i) => {
                seen_ix.insert(i.signature);
            }
            Update::Account(a) => {
                let sig = a.signature.unwrap();
                let Some((slot, accounts)) = ix_accounts.get(&sig) else {
                    continue;
                };
                assert_eq!(*slot, a.slot);
                if accounts.contains(&a.pubkey) {
                    bundled += 1;
                    if !seen_ix.contains(&sig) {
                        before += 1;
                    }
                    idls.decode(u, &mut d).unwrap();
                    if &*idls.event_types()[d.event_type as usize].name == "entropy::VarState" {
                        var_writes += 1;
                    }
                }
            }
            Update::Slot { .. } => unreachable!(),
        }
    }
    assert!(bundled > 500, "{bundled}");
    assert!(
        before > 100 && before < bundled / 2,
        "{before} of {bundled}"
    );
    assert!(var_writes > 50, "{var_writes}");
}
