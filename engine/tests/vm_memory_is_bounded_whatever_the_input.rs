//! The VM's memory stays bounded whatever the input: a long seeded ORE stream over far more
//! addresses than any bound, with duplicates, out-of-order writes and undecodable updates mixed
//! in, run against small limits; every structure ends at or under its bound. (Appended arrays
//! keep `max_array_length` elements: `vm_semantics::arrays_keep_the_newest_max_array_length_elements`.)

use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::vm::VmLimits;
use stackcore_engine::{Stack, StateTableConfig, Update, VmContext};

#[test]
fn every_vm_structure_stays_within_its_bound_on_a_hostile_stream() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/stacks/OreStream.stack.json"
    ))
    .unwrap();
    let stack = Stack::from_json(&bytes).unwrap();
    let cfg = StateTableConfig {
        max_entries: 20,
        max_array_length: 5,
    };
    let lim = VmLimits {
        lookup_index_entries: 16,
        pda_entries: 16,
        version_entries: 16,
        instruction_dedup_entries: 16,
        recent_transactions: 8,
        when_ttl_slots: 150,
        pending_addresses: 8,
        pending_per_address: 3,
        pending_total: 12,
        resolver_requests: 10,
        slot_hashes: 8,
        spare_mutations: 4,
        spare_texts: 4,
        spare_records: 2,
    };
    let mut gen = Generator::new(
        stack.idls(),
        SynthConfig {
            seed: 99,
            addresses_per_account_type: 400,
            duplicate_ratio: 0.1,
            out_of_order_ratio: 0.1,
            ..Default::default()
        },
    );
    let mut vm = VmContext::new_with_limits(cfg, lim);
    let mut out = Vec::new();
    let mut slot = 0;
    let mut most_spares = 0;
    let mut most_texts = 0;
    let mut most_records = 0;
    for n in 0..20_000u32 {
        let mut u = gen.next_update();
        if n % 97 == 0 {
            // Undecodable: the bytes of an account cut short.
            if let Update::Account(a) = &mut u {
                a.data.truncate(a.data.len() / 2);
            }
        }
        slot = slot.max(u.slot());
        // Mutations are handed back ten updates at a time: more than the spares kept.
        if n % 10 == 0 {
            vm.recycle_mutations(&mut out);
            assert!(out.is_empty());
            let f = vm.footprint();
            most_spares = most_spares.max(f.spare_mutations);
            most_texts = most_texts.max(f.spare_texts.max(f.spare_arrays).max(f.spare_boxes));
            most_records = most_records.max(f.spare_records.max(f.spare_groups));
        }
        let _ = vm.apply(&stack, &u, &mut out);
        // Resolver requests are never taken here: their queue must hold its bound by itself.
    }
    let _ = vm.apply(
        &stack,
        &Update::Slot {
            slot: slot + 1,
            timestamp: 0,
        },
        &mut out,
    );
    let f = vm.footprint();
    eprintln!("{f:?}\n{:?}", vm.stats());
    assert!(
        vm.stats().mutations > 1_000,
        "the stream must exercise the handlers"
    );
    assert!(vm.stats().evicted_rows > 0, "rows must have been evicted");
    assert!(f.rows <= cfg.max_entries && f.rows > 0, "{f:?}");
    assert!(f.index_entries <= lim.lookup_index_entries, "{f:?}");
    assert!(
        f.pda_entries <= lim.pda_entries && f.last_data <= lim.pda_entries,
        "{f:?}"
    );
    assert!(f.pending_addresses <= lim.pending_addresses, "{f:?}");
    assert!(f.pending_per_address <= lim.pending_per_address, "{f:?}");
    assert!(f.pending_total <= lim.pending_total, "{f:?}");
    assert!(f.versions <= lim.version_entries, "{f:?}");
    assert!(
        f.instruction_dedup <= lim.instruction_dedup_entries,
        "{f:?}"
    );
    assert!(f.recent_transactions <= lim.recent_transactions, "{f:?}");
    assert!(f.deferred_groups <= lim.recent_transactions, "{f:?}");
    assert!(f.resolver_requests <= lim.resolver_requests, "{f:?}");
    assert!(f.scheduled_requests <= lim.resolver_requests, "{f:?}");
    assert!(
        most_spares <= lim.spare_mutations && most_spares > 0,
        "{most_spares} spare mutations kept"
    );
    assert!(
        most_texts <= lim.spare_texts && most_texts > 0,
        "{most_texts} spare text or array buffers or shared-value allocations kept"
    );
    assert!(
        most_records <= lim.spare_records && most_records > 0,
        "{most_records} spare records kept per event type, or deferred groups"
    );
    assert!(vm.stats().decode_errors > 0);
}
