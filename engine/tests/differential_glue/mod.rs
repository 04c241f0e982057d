//! The reference interpreter driven with the hook glue its generated runtime puts around
//! `process_event` (`../shared/protocol.md` §8.1). Shared by the differential test and the bench.

use std::collections::{HashMap, HashSet};

use hyperstack_interpreter::ast::{SerializableStackSpec, TypedStreamSpec};
use hyperstack_interpreter::compiler::MultiEntityBytecode;
use hyperstack_interpreter::vm::{
    PendingAccountUpdate, QueuedAccountUpdate, UpdateContext, VmContext as RefVm,
};
use serde_json::{json, Value as Json};

/// (pda account names, seed account names), camelCase first.
type Mapping = ([String; 2], [String; 2]);

pub struct Reference {
    pub vm: RefVm,
    bytecode: MultiEntityBytecode,
    /// Account types with a PdaReverseLookup resolver hook.
    pda_hooks: HashSet<String>,
    /// Instruction type → (pda account names, seed account names) per RegisterPdaMapping.
    mappings: HashMap<String, Vec<Mapping>>,
    /// Event type → state ids routed.
    routes: HashMap<String, Vec<u32>>,
}

/// What the reference's `UpdateContext` needs of an update: slot, seq index (write version or
/// transaction index), base58 signature, timestamp and whether it is an account update.
/// `None` for slot ticks, which the reference is not fed.
pub fn update_context(u: &stackcore_engine::Update) -> Option<(u64, u64, String, i64, bool)> {
    use stackcore_engine::Update;
    match u {
        Update::Account(a) => Some((
            a.slot,
            a.write_version,
            a.signature
                .map(|s| bs58::encode(s).into_string())
                .unwrap_or_default(),
            a.timestamp,
            true,
        )),
        Update::Instruction(i) => Some((
            i.slot,
            i.txn_index,
            bs58::encode(i.signature).into_string(),
            i.timestamp,
            false,
        )),
        Update::Slot { .. } => None,
    }
}

fn lower_camel(s: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl Reference {
    pub fn new(bytes: &[u8]) -> Reference {
        let spec: SerializableStackSpec = serde_json::from_slice(bytes).unwrap();
        let mut b = MultiEntityBytecode::new();
        let mut routes: HashMap<String, Vec<u32>> = HashMap::new();
        let mut pda_hooks = HashSet::new();
        let mut mappings: HashMap<String, Vec<_>> = HashMap::new();
        let raw: Json = serde_json::from_slice(bytes).unwrap();
        for (i, e) in spec.entities.iter().enumerate() {
            let evaluator = RefVm::create_evaluator_from_specs(e.computed_field_specs.clone());
            b = b.add_entity_with_evaluator(
                e.state_name.clone(),
                TypedStreamSpec::<Json>::from_serializable(e.clone()),
                i as u32,
                Some(evaluator),
            );
        }
        // Hooks and routes from the raw JSON (the same facts the generated glue is built from).
        for (i, e) in raw["entities"].as_array().unwrap().iter().enumerate() {
            let mut types: Vec<String> = e["handlers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    h["source"]["Source"]["type_name"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            for h in e["instruction_hooks"].as_array().unwrap() {
                types.push(h["instruction_type"].as_str().unwrap().to_string());
            }
            types.sort();
            types.dedup();
            for t in types {
                routes.entry(t).or_default().push(i as u32);
            }
            for h in e["resolver_hooks"].as_array().unwrap() {
                if h["strategy"].get("PdaReverseLookup").is_some() {
                    pda_hooks.insert(h["account_type"].as_str().unwrap().to_string());
                }
            }
            for h in e["instruction_hooks"].as_array().unwrap() {
                for a in h["actions"].as_array().unwrap() {
                    if let Some(m) = a.get("RegisterPdaMapping") {
                        let names = |f: &Json| {
                            let raw = f["segments"]
                                .as_array()
                                .unwrap()
                                .last()
                                .unwrap()
                                .as_str()
                                .unwrap()
                                .to_string();
                            [lower_camel(&raw), raw]
                        };
                        mappings
                            .entry(h["instruction_type"].as_str().unwrap().to_string())
                            .or_default()
                            .push((names(&m["pda_field"]), names(&m["seed_field"])));
                    }
                }
            }
        }
        Reference {
            vm: RefVm::new(),
            bytecode: b.build(),
            pda_hooks,
            mappings,
            routes,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        etype: &str,
        mut ev: Json,
        slot: u64,
        index: u64,
        sig: &str,
        ts: i64,
        is_account: bool,
    ) -> (Vec<hyperstack_interpreter::Mutation>, bool) {
        let mut replayed = false;
        if is_account {
            let addr = ev["__account_address"].as_str().unwrap().to_string();
            if self.pda_hooks.contains(etype) {
                if let Some(table) = self.vm.get_state_table_mut(0) {
                    let found = table
                        .pda_reverse_lookups
                        .get_mut("default_pda_lookup")
                        .and_then(|t| t.lookup(&addr));
                    match found {
                        Some(k) => ev["__resolved_primary_key"] = json!(k),
                        None => {
                            let _ = self.vm.queue_account_update(
                                0,
                                QueuedAccountUpdate {
                                    pda_address: addr,
                                    account_type: etype.to_string(),
                                    account_data: ev,
                                    slot,
                                    write_version: index,
                                    signature: sig.to_string(),
                                },
                            );
                            return (Vec::new(), false);
                        }
                    }
                }
            }
            let mut ctx = UpdateContext::new_account(slot, sig.to_string(), index);
            ctx.timestamp = Some(ts);
            let r = self
                .vm
                .process_event(&self.bytecode, ev.clone(), etype, Some(&ctx), None);
            if r.is_ok() {
                for &sid in self.routes.get(etype).map(|v| v.as_slice()).unwrap_or(&[]) {
                    self.vm.cache_last_account_data(
                        sid,
                        &addr,
                        PendingAccountUpdate {
                            account_type: etype.to_string(),
                            pda_address: addr.clone(),
                            account_data: ev.clone(),
                            slot,
                            write_version: index,
                            signature: sig.to_string(),
                            queued_at: 0,
                            is_stale_reprocess: false,
                        },
                    );
                }
            }
            (r.map_err(|e| e.to_string()).unwrap_or_default(), false)
        } else {
            let mut ctx = UpdateContext::new_instruction(slot, sig.to_string(), index);
            ctx.timestamp = Some(ts);
            let r = self
                .vm
                .process_event(&self.bytecode, ev.clone(), etype, Some(&ctx), None);
            let Ok(mut muts) = r else {
                return (Vec::new(), false);
            };
            let mut pending = Vec::new();
            for (pda_names, seed_names) in self.mappings.get(etype).cloned().unwrap_or_default() {
                let acct = |names: &[String; 2]| {
                    names.iter().find_map(|n| {
                        ev["accounts"]
                            .get(n)
                            .and_then(|v| v.as_str())
                            .map(str::to_string)
                    })
                };
                if let (Some(pda), Some(seed)) = (acct(&pda_names), acct(&seed_names)) {
                    pending.extend(
                        self.vm
                            .update_pda_reverse_lookup(0, "default_pda_lookup", pda, seed)
                            .unwrap_or_default(),
                    );
                }
            }
            // (SetField hook actions in the glue write a scratch register and emit nothing.)
            for u in pending {
                replayed = true;
                let resolved =
                    self.vm
                        .try_chained_pda_lookup(0, "default_pda_lookup", &u.pda_address);
                let mut data = u.account_data;
                if let (Some(k), Some(o)) = (resolved, data.as_object_mut()) {
                    o.insert("__resolved_primary_key".into(), json!(k));
                }
                let c = if u.is_stale_reprocess {
                    UpdateContext::new_reprocessed(u.slot, u.write_version)
                } else {
                    UpdateContext::new_account(u.slot, u.signature.clone(), u.write_version)
                };
                if let Ok(m) =
                    self.vm
                        .process_event(&self.bytecode, data, &u.account_type, Some(&c), None)
                {
                    muts.extend(m);
                }
            }
            (muts, replayed)
        }
    }
}
