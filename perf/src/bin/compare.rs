//! `compare DIR`: reads the outputs `perf/run-all.sh` wrote into DIR (`ours-fed.txt`,
//! `ours-geyser.txt`, `reference.txt`, `ours-light.txt`, `reference-light.txt`, `ours-saturated.txt`, `reference-saturated.txt`,
//! `ours-memory.txt`, `reference-memory.txt`) and prints the markdown table of ratios.

use stackcore_perf::table::{last_json, Runs};

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: compare DIR");
        std::process::exit(2);
    };
    let read = |name: &str| {
        std::fs::read_to_string(std::path::Path::new(&dir).join(name))
            .ok()
            .and_then(|s| last_json(&s))
    };
    let runs = Runs {
        ours_fed: read("ours-fed.txt"),
        ours_geyser: read("ours-geyser.txt"),
        reference: read("reference.txt"),
        ours_light: read("ours-light.txt"),
        reference_light: read("reference-light.txt"),
        ours_saturated: read("ours-saturated.txt"),
        reference_saturated: read("reference-saturated.txt"),
        ours_memory: read("ours-memory.txt"),
        reference_memory: read("reference-memory.txt"),
    };
    print!("{}", runs.markdown());
}
