//! Metric cells both planes record into, the latency histogram, the Prometheus text writers,
//! and what a `/metrics` scrape reads from the data plane ([`DataPlaneMetrics`]).
//!
//! Cells are single-writer atomics: recording is a relaxed load and store, never a lock or a
//! read-modify-write, so the data plane's request path stays on its own core's cache lines.

use std::fmt::{Debug, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A counter with one writer (its core, or the drain thread); readers may be anywhere.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Sets the value (for gauges; only the owning thread calls this).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Adds `n`. Only the owning thread calls this, so load + store loses nothing.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the latency buckets: 50 µs doubling to about 1.6 s. Finer than
/// the Go gateway's 1 ms floor, where this gateway's decisions would all land in one bucket.
pub const LATENCY_BOUNDS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_2, 0.000_4, 0.000_8, 0.001_6, 0.003_2, 0.006_4, 0.012_8, 0.025_6,
    0.051_2, 0.102_4, 0.204_8, 0.409_6, 0.819_2, 1.638_4,
];

/// A latency histogram over [`LATENCY_BOUNDS`] (plus the implicit `+Inf`).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [Counter; LATENCY_BOUNDS.len()],
    count: Counter,
    sum_ns: Counter,
}

impl Histogram {
    /// Records one observation.
    #[inline]
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // Bucket i holds (50 µs·2^(i-1), 50 µs·2^i]: the bit length of (ns-1)/50 µs, with no
        // float conversion or search on the request path.
        let i = (64 - (ns.saturating_sub(1) / 50_000).leading_zeros()) as usize;
        if let Some(b) = self.buckets.get(i) {
            b.inc();
        }
        self.count.inc();
        self.sum_ns.add(ns);
    }

    /// Observations so far.
    #[inline]
    pub fn count(&self) -> u64 {
        self.count.get()
    }
}

/// Writes a family's `# HELP` and `# TYPE` lines.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one histogram series summed over `parts` (nothing without observations).
pub fn histogram(out: &mut String, name: &str, labels: &str, parts: &[&Histogram]) {
    let count: u64 = parts.iter().map(|h| h.count.get()).sum();
    if count == 0 {
        return;
    }
    let sep = if labels.is_empty() { "" } else { "," };
    let plain = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
        cumulative += parts.iter().map(|h| h.buckets[i].get()).sum::<u64>();
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let sum_ns: u64 = parts.iter().map(|h| h.sum_ns.get()).sum();
    let _ = writeln!(out, "{name}_sum{plain} {}", sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{name}_count{plain} {count}");
}

/// The audit handoff's counters as a scrape reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditTotals {
    /// Records waiting in the rings, as the drain thread last saw them.
    pub queue_depth: u64,
    /// Records delivered to the sink.
    pub delivered: u64,
    /// Calls refused because a ring was full.
    pub refused: u64,
}

/// What `/metrics` reads from the data plane at scrape time (never on the request path).
pub trait DataPlaneMetrics: Send + Sync + Debug {
    /// Appends the data plane's families in the Prometheus text format, summed over cores.
    fn render(&self, out: &mut String);

    /// The audit handoff's counters now.
    fn audit(&self) -> AuditTotals;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_bucket_their_bound_names() {
        for (micros_x10, bucket) in [
            (1, Some(0)),
            (500, Some(0)),
            (501, Some(1)),
            (1000, Some(1)),
            (1001, Some(2)),
            (4000, Some(3)),
            (16_384_000, Some(15)),
            (16_384_001, None),
        ] {
            let h = Histogram::default();
            let d = Duration::from_nanos(micros_x10 * 100);
            h.observe(d);
            let got = h.buckets.iter().position(|b| b.get() == 1);
            assert_eq!(got, bucket, "{d:?}");
            if let Some(i) = got {
                assert!(d.as_secs_f64() <= LATENCY_BOUNDS[i] + 1e-12);
                assert!(i == 0 || d.as_secs_f64() > LATENCY_BOUNDS[i - 1]);
            }
            assert_eq!(h.count(), 1);
        }
    }
}
