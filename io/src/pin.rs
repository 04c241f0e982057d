//! Pinning threads to cores. A failed pin is a warning, never an error: the thread runs unpinned.

/// Pins the current thread to core `index` (modulo the cores available). Returns whether it took.
pub fn pin_current(role: &str, index: usize) -> bool {
    let Some(cores) = core_affinity::get_core_ids().filter(|c| !c.is_empty()) else {
        tracing::warn!(role, "cannot list cores; running unpinned");
        return false;
    };
    let core = cores[index % cores.len()];
    let ok = core_affinity::set_for_current(core);
    if !ok {
        tracing::warn!(role, core = core.id, "pinning failed; running unpinned");
    }
    ok
}
