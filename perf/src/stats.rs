//! Latency percentiles over an HDR histogram.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// A latency recorder in nanoseconds (1 µs … 60 s, 3 significant digits).
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid bounds"))
    }
}

impl Latency {
    pub fn record(&mut self, nanos: u64) {
        let _ = self.0.record(nanos.clamp(1_000, 60_000_000_000));
    }

    pub fn merge(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }

    pub fn percentiles(&self) -> Percentiles {
        let us = |q: f64| self.0.value_at_quantile(q) as f64 / 1_000.0;
        Percentiles {
            count: self.0.len(),
            p50_us: us(0.5),
            p90_us: us(0.9),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: self.0.max() as f64 / 1_000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_recorded_distribution() {
        let mut l = Latency::default();
        for i in 1..=1000u64 {
            l.record(i * 1_000);
        }
        let p = l.percentiles();
        assert_eq!(p.count, 1000);
        assert!((p.p50_us - 500.0).abs() < 2.0, "{p:?}");
        assert!((p.p99_us - 990.0).abs() < 2.0, "{p:?}");
        assert!(p.max_us >= 999.0);
    }
}
