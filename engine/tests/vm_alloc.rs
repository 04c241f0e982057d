//! Allocations per event in steady state, counted with a counting global allocator.
//!
//! The target is zero, and once the bounded tables are full and every live set has settled it is
//! met: the test [`no_allocation_per_event_once_the_tables_are_full_and_settled`] asserts that
//! 3,000 updates make not one allocation. Rows are slot vectors, event fields are read by index,
//! a write that would not change its slot is skipped, and update records, captures, mutations
//! (handed back with `recycle_mutations`, as the worker does), shared row values, groups of
//! deferred writes, the text and array buffers of replaced or dropped values and working buffers
//! are reused; so are the entries a full table evicts and the list nodes of removed ones
//! (`table::Lru`). Expressions build their arrays in those array buffers too. What allocates
//! before that: while the bounded tables are still filling, every new entry (rows, index
//! entries, deferred `when` writes that never find their instruction in this synthetic stream);
//! and while live sets still grow, the value, record or buffer that grows them. The other two
//! tests count with the default bounds (tables filling) and with so few rows that rows are
//! evicted all the time; each pins a ceiling just above today's figure, so that any regression
//! fails and any improvement shows (lower the ceiling when you get one).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::json;
use stackcore_engine::synth::{Generator, SynthConfig};
use stackcore_engine::vm::{EventContext, ResolverKind, VmLimits};
use stackcore_engine::{Stack, StateTableConfig, VmContext};

struct Counting;

thread_local! {
    /// Set on the thread being measured, for its window: the harness's other threads (reporting
    /// a finished test, starting the next) allocate meanwhile, and are not counted.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCS: AtomicU64 = AtomicU64::new(0);

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One test runs at a time, from its start to its end: the counter is global, the harness runs
/// tests on threads, and a test that fails allocates as it reports.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Allocations per event over the last [`WINDOW`] updates of an ORE mix, after `warm_up` updates,
/// run as the worker runs it: mutations are handed back and every resolver request is answered.
fn allocations_per_event(mut vm: VmContext, warm_up: usize) -> (f64, VmContext) {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/stacks/OreStream.stack.json"
    ))
    .unwrap();
    let stack = Stack::from_json(&bytes).unwrap();
    let mut gen = Generator::new(
        stack.idls(),
        SynthConfig {
            seed: 3,
            addresses_per_account_type: 6,
            ..Default::default()
        },
    );
    let updates: Vec<_> = (0..warm_up + WINDOW).map(|_| gen.next_update()).collect();
    let mut out = Vec::with_capacity(64);
    let mut answered = 0;
    // As the server's worker runs it: after every update the resolver requests are taken, and
    // here a resolver that works answers each one at once (a `SetOnce` target, once filled, asks
    // no more). Their answers' mutations are counted with the update's.
    let mut step = |vm: &mut VmContext, u| {
        vm.recycle_mutations(&mut out);
        let _ = vm.apply(&stack, u, &mut out);
        for r in vm.take_resolver_requests() {
            let ctx = EventContext {
                slot: u.slot(),
                index: 0,
                signature: None,
                timestamp: 1_700_000_000,
                is_account: false,
            };
            let answer = match r.kind {
                ResolverKind::Token => json!({"name": "Ore", "symbol": "ORE", "decimals": 11}),
                ResolverKind::Url { .. } => json!({"seed": "7f3a"}),
            };
            let _ = vm.apply_resolver_result(&stack, &r, r.set_once, &answer, &ctx, &mut out);
            answered += 1;
        }
    };
    // Warm-up: tables, indexes and buffers reach their working size.
    for u in &updates[..warm_up] {
        step(&mut vm, u);
    }
    let window = &updates[warm_up..];
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.set(true);
    for u in window {
        step(&mut vm, u);
    }
    COUNTING.set(false);
    assert!(answered > 0, "the mix asks the resolvers something");
    let per_event = ALLOCS.load(Ordering::SeqCst) as f64 / window.len() as f64;
    (per_event, vm)
}

/// Updates in the counted window.
const WINDOW: usize = 3_000;

/// Fails if `per_event` is more than 5 % above the `measured` figure pinned for `what`, plus three
/// allocations in the window: the tables' hashers are seeded at random, and where entries land
/// moves the count by one or two between runs.
fn assert_within_pinned(per_event: f64, measured: f64, what: &str) {
    let in_window = (per_event * WINDOW as f64).round();
    eprintln!(
        "allocations per event (ORE mix, {what}): {per_event:.3} ({in_window} in the window)"
    );
    let ceiling = measured * 1.05 + 3.0 / WINDOW as f64;
    assert!(
        per_event <= ceiling,
        "{per_event:.3} allocations per event ({what}), ceiling {ceiling:.3}"
    );
}

/// Default bounds: after 3,000 updates several tables are still filling (new index entries,
/// deferred `when` groups, dedup entries), and a new entry allocates.
const MEASURED_PER_EVENT: f64 = 0.465;

#[test]
fn steady_state_allocations_per_event_stay_under_the_pinned_ceiling() {
    let _one = one_at_a_time();
    let (per_event, _) = allocations_per_event(VmContext::new(), WINDOW);
    assert_within_pinned(per_event, MEASURED_PER_EVENT, "steady state");
}

/// Every table this mix keeps filing into is full before the window ([`full_tables`]), so a new
/// entry is built in the allocations of the one it evicts (`table::Lru`); the rows table is not
/// (the mix has fewer keys than that), but after [`SETTLED`] updates every row has met every value
/// it will hold and every address has been seen. From there on, not one allocation: every value,
/// record, text, array, group and list node is built in one given back.
#[test]
fn no_allocation_per_event_once_the_tables_are_full_and_settled() {
    let _one = one_at_a_time();
    let (per_event, vm) = allocations_per_event(full_tables(SMALL), SETTLED);
    let f = vm.footprint();
    // A lookup index may be one short: a changed PDA mapping takes its entry back (its node is
    // the next entry's).
    assert!(
        (INDEX_ENTRIES - 1..=INDEX_ENTRIES).contains(&f.index_entries)
            && (f.instruction_dedup, f.deferred_groups) == (SMALL, RECENT_TRANSACTIONS),
        "the tables this mix keeps filing into are full: {f:?}"
    );
    let in_window = (per_event * WINDOW as f64).round();
    eprintln!("allocations per event (ORE mix, tables full, settled): {per_event:.4} ({in_window} in the window)");
    assert_eq!(
        in_window, 0.0,
        "allocations in the {WINDOW} updates after the tables settled"
    );
}

/// Updates before the window in the test above. After one [`WINDOW`], the tables are full but a
/// few live sets still grow now and then (an address seen for the first time keeps its last
/// record for replay; a row slot first holding a text; an array buffer first needing more room):
/// 12 allocations in the window. After two, 4; after four, none.
const SETTLED: usize = 4 * WINDOW;

/// The bound of the tables in [`full_tables`] besides the two below.
const SMALL: usize = 64;
/// Lookup index entries in [`full_tables`]: some entity's index is filed into only now and then.
const INDEX_ENTRIES: usize = 16;
/// Recent transactions in [`full_tables`]: some entity's list is filed into only now and then.
const RECENT_TRANSACTIONS: usize = 8;

/// Bounds small enough that the tables the stream keeps filing into are full before the window,
/// with room for `rows` rows per entity.
fn full_tables(rows: usize) -> VmContext {
    VmContext::new_with_limits(
        StateTableConfig {
            max_entries: rows,
            ..Default::default()
        },
        VmLimits {
            lookup_index_entries: INDEX_ENTRIES,
            pda_entries: SMALL,
            version_entries: SMALL,
            instruction_dedup_entries: SMALL,
            recent_transactions: RECENT_TRANSACTIONS,
            pending_addresses: SMALL,
            pending_total: SMALL,
            ..Default::default()
        },
    )
}

/// As above with room for 4 rows per entity, so that rows are evicted all the time (one update in
/// six) and the next update of an evicted key makes its row again. An evicted row gives its
/// buffers, captures and slot vector back for the next new row; what still allocates is the row
/// filling up again, above all its resolver answers, each applied to a copy of the row.
const MEASURED_PER_EVENT_EVICTING: f64 = 4.713;

#[test]
fn allocations_per_event_while_rows_are_evicted_stay_under_the_pinned_ceiling() {
    let _one = one_at_a_time();
    let (per_event, vm) = allocations_per_event(full_tables(4), WINDOW);
    assert_eq!(vm.footprint().rows, 4);
    assert!(
        vm.stats().evicted_rows > 1_000,
        "rows are evicted all the time"
    );
    assert_within_pinned(per_event, MEASURED_PER_EVENT_EVICTING, "rows evicted");
}
