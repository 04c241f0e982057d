//! Pinning threads to cores. A failed pin is a warning, never an error: the thread runs unpinned.
//!
//! VM workers take cores from the first upward, reactors from the last downward, so on a box with
//! at least as many cores as workers + reactors no two pinned threads share one; on a smaller box
//! they wrap around.

/// Which kind of pinned thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Worker,
    Reactor,
}

/// The core for thread `index` of `role` among `cores` cores.
pub fn core_for(role: Role, index: usize, cores: usize) -> usize {
    let cores = cores.max(1);
    match role {
        Role::Worker => index % cores,
        Role::Reactor => cores - 1 - (index % cores),
    }
}

/// Pins the current thread to its core. Returns whether it took.
pub fn pin_current(role: Role, index: usize) -> bool {
    let Some(cores) = core_affinity::get_core_ids().filter(|c| !c.is_empty()) else {
        tracing::warn!(?role, "cannot list cores; running unpinned");
        return false;
    };
    let core = cores[core_for(role, index, cores.len())];
    let ok = core_affinity::set_for_current(core);
    if !ok {
        tracing::warn!(?role, core = core.id, "pinning failed; running unpinned");
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_count_up_and_reactors_count_down() {
        assert_eq!(core_for(Role::Worker, 0, 2), 0);
        assert_eq!(core_for(Role::Reactor, 0, 2), 1);
        assert_eq!(core_for(Role::Worker, 1, 4), 1);
        assert_eq!(core_for(Role::Reactor, 1, 4), 2);
        assert_eq!(core_for(Role::Reactor, 5, 4), 2, "wraps around");
        assert_eq!(core_for(Role::Worker, 3, 0), 0, "no cores listed: core 0");
    }
}
