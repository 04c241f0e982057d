//! Whole-process CPU sampling for `perf/flamegraph.sh` on machines where Linux `perf` has no
//! hardware counters: the `pprof` crate, compiled in only with the `flamegraph` feature.

/// Why a profile could not be taken or written. The harness reports it; the run's figures stand.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// This build has no profiler; rebuild with `--features flamegraph`.
    #[error("built without the `flamegraph` feature (cargo build -p stackcore-perf --features flamegraph)")]
    NotBuilt,
    #[error("profiler: {0}")]
    Profiler(String),
    #[error("writing the flamegraph: {0}")]
    Io(#[from] std::io::Error),
}

/// A running profile; [`Profile::finish`] writes the SVG.
pub struct Profile {
    #[cfg(feature = "flamegraph")]
    guard: pprof::ProfilerGuard<'static>,
}

impl Profile {
    /// Starts sampling every thread of the process at `hz`.
    pub fn start(hz: i32) -> Result<Profile, ProfileError> {
        #[cfg(feature = "flamegraph")]
        {
            let guard = pprof::ProfilerGuardBuilder::default()
                .frequency(hz)
                .blocklist(&["libc", "libgcc", "pthread", "vdso"])
                .build()
                .map_err(|e| ProfileError::Profiler(e.to_string()))?;
            Ok(Profile { guard })
        }
        #[cfg(not(feature = "flamegraph"))]
        {
            let _ = hz;
            Err(ProfileError::NotBuilt)
        }
    }

    /// Stops sampling and writes a flamegraph SVG to `path`.
    pub fn finish(self, path: &std::path::Path) -> Result<(), ProfileError> {
        #[cfg(feature = "flamegraph")]
        {
            let report = self
                .guard
                .report()
                .build()
                .map_err(|e| ProfileError::Profiler(e.to_string()))?;
            let file = std::fs::File::create(path)?;
            report
                .flamegraph(file)
                .map_err(|e| ProfileError::Profiler(e.to_string()))
        }
        #[cfg(not(feature = "flamegraph"))]
        {
            let _ = path;
            Err(ProfileError::NotBuilt)
        }
    }
}
