//! The side-by-side table: figures of one run of every harness, and ours/reference ratios.
//!
//! Each harness prints one JSON object as its last line; this module reads the figures out of
//! those objects (missing ones stay `None`, so a run with a harness that failed still gives a
//! table) and renders the markdown table `perf/run-all.sh` prints.

use serde_json::Value;

/// The figures the comparison needs, as measured by one run of each harness.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Runs {
    /// `e2e --mode fed` at the standard rate.
    pub ours_fed: Option<Value>,
    /// `e2e --mode geyser` at the standard rate.
    pub ours_geyser: Option<Value>,
    /// `reference-peer` at the standard rate.
    pub reference: Option<Value>,
    /// `e2e --mode fed` at the light load (neither server saturated).
    pub ours_light: Option<Value>,
    /// `reference-peer` at the light load.
    pub reference_light: Option<Value>,
    /// `e2e --mode fed --rate 0`.
    pub ours_saturated: Option<Value>,
    /// `reference-peer --rate 0`.
    pub reference_saturated: Option<Value>,
    /// `memory --server ours`.
    pub ours_memory: Option<Value>,
    /// `memory --server reference`.
    pub reference_memory: Option<Value>,
}

/// The last line of a harness's output that parses as a JSON object.
pub fn last_json(output: &str) -> Option<Value> {
    output
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(Value::is_object)
}

fn num(v: &Option<Value>, path: &[&str]) -> Option<f64> {
    let mut cur = v.as_ref()?;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_f64()
}

fn cell(x: Option<f64>, unit: &str) -> String {
    match x {
        Some(x) if x >= 100.0 => format!("{x:.0}{unit}"),
        Some(x) => format!("{x:.1}{unit}"),
        None => "–".into(),
    }
}

fn ratio(ours: Option<f64>, reference: Option<f64>) -> String {
    match (ours, reference) {
        (Some(o), Some(r)) if r > 0.0 => format!("{:.2}", o / r),
        _ => "–".into(),
    }
}

impl Runs {
    /// Rows of (figure, ours fed, ours whole path, reference, ours fed / reference).
    pub fn rows(&self) -> Vec<[String; 5]> {
        let lat = |q: &'static str| ["load", "latency", q];
        let mut rows = Vec::new();
        for (name, q) in [
            ("p50 latency", "p50_us"),
            ("p99 latency", "p99_us"),
            ("p999 latency", "p999_us"),
        ] {
            let path = lat(q);
            let (o, g, r) = (
                num(&self.ours_fed, &path),
                num(&self.ours_geyser, &path),
                num(&self.reference, &path),
            );
            rows.push([
                name.into(),
                cell(o, " µs"),
                cell(g, " µs"),
                cell(r, " µs"),
                ratio(o, r),
            ]);
        }
        for (name, q) in [
            ("p50 latency, light load", "p50_us"),
            ("p99 latency, light load", "p99_us"),
        ] {
            let path = lat(q);
            let (o, r) = (
                num(&self.ours_light, &path),
                num(&self.reference_light, &path),
            );
            rows.push([
                name.into(),
                cell(o, " µs"),
                "–".into(),
                cell(r, " µs"),
                ratio(o, r),
            ]);
        }
        let fps = ["load", "frames_per_sec"];
        let (o, g, r) = (
            num(&self.ours_fed, &fps),
            num(&self.ours_geyser, &fps),
            num(&self.reference, &fps),
        );
        rows.push([
            "frames/s at the standard rate".into(),
            cell(o, ""),
            cell(g, ""),
            cell(r, ""),
            ratio(o, r),
        ]);
        let (o, r) = (
            num(&self.ours_saturated, &fps),
            num(&self.reference_saturated, &fps),
        );
        rows.push([
            "frames/s at saturation".into(),
            cell(o, ""),
            "–".into(),
            cell(r, ""),
            ratio(o, r),
        ]);
        let feed = ["feed", "per_sec"];
        let (o, r) = (
            num(&self.ours_saturated, &feed),
            num(&self.reference_saturated, &feed),
        );
        rows.push([
            "updates/s taken at saturation".into(),
            cell(o, ""),
            "–".into(),
            cell(r, ""),
            ratio(o, r),
        ]);
        for (name, key) in [
            ("bytes per idle connection", "bytes_per_idle_conn"),
            ("bytes per active connection", "bytes_per_active_conn"),
        ] {
            let (o, r) = (
                num(&self.ours_memory, &[key]),
                num(&self.reference_memory, &[key]),
            );
            rows.push([
                name.into(),
                cell(o, " B"),
                "–".into(),
                cell(r, " B"),
                ratio(o, r),
            ]);
        }
        rows
    }

    /// The markdown table.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| figure | ours (fed) | ours (whole path) | reference | ours/reference |\n|---|---:|---:|---:|---:|\n",
        );
        for r in self.rows() {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r[0], r[1], r[2], r[3], r[4]
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(p99: f64, fps: f64) -> Option<Value> {
        Some(
            json!({"load": {"latency": {"p50_us": 1.0, "p99_us": p99, "p999_us": 9.0}, "frames_per_sec": fps}, "feed": {"per_sec": fps / 10.0}}),
        )
    }

    #[test]
    fn the_last_json_object_of_an_output_is_the_report() {
        let out = "ours: p99=1\n{\"a\":1}\nnoise\n{\"b\":2}\n[1,2]\n";
        assert_eq!(last_json(out), Some(json!({"b": 2})));
        assert_eq!(last_json("no json here"), None);
    }

    #[test]
    fn ratios_are_ours_over_the_reference_and_missing_figures_show_a_dash() {
        let runs = Runs {
            ours_fed: run(500.0, 2_000.0),
            reference: run(2_000.0, 1_000.0),
            ours_memory: Some(json!({"bytes_per_idle_conn": 4096.0})),
            reference_memory: Some(json!({"bytes_per_idle_conn": 16384.0})),
            ..Runs::default()
        };
        let rows = runs.rows();
        let row = |name: &str| rows.iter().find(|r| r[0] == name).unwrap().clone();
        assert_eq!(row("p99 latency")[4], "0.25");
        assert_eq!(row("frames/s at the standard rate")[4], "2.00");
        assert_eq!(row("bytes per idle connection")[4], "0.25");
        assert_eq!(row("frames/s at saturation")[4], "–");
        assert_eq!(row("p99 latency")[2], "–", "no whole-path run");
        assert!(runs.markdown().lines().count() == rows.len() + 2);
    }
}
