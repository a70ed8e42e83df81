//! What `/metrics` reads from the data plane: the per-core families and the audit handoff's
//! counters, behind the shared [`DataPlaneMetrics`] trait the control plane scrapes through.
//! Read at scrape time only; nothing here runs on the request path.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use intentgate_shared::metrics::{AuditTotals, DataPlaneMetrics};

use crate::audit_ring::AuditCounters;
use crate::metrics::Metrics;

/// The data plane's side of a scrape.
#[derive(Debug)]
pub struct Scrape {
    /// Every core's metrics.
    pub metrics: Arc<Metrics>,
    /// The audit rings' counters (and the drain thread's decision tally).
    pub audit: Arc<AuditCounters>,
}

impl DataPlaneMetrics for Scrape {
    fn render(&self, out: &mut String) {
        self.metrics.render(&self.audit.decisions, out);
    }

    fn audit(&self) -> AuditTotals {
        AuditTotals {
            queue_depth: self.audit.queue_depth.load(Ordering::Relaxed),
            delivered: self.audit.delivered.load(Ordering::Relaxed),
            refused: self.audit.refused.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_scrape_renders_the_cores_and_reads_the_audit_counters() {
        let metrics = Arc::new(Metrics::new(1));
        metrics.core(0).request(1, 1, 0, Duration::from_micros(40));
        let audit = Arc::new(AuditCounters::default());
        audit.refused.store(2, Ordering::Relaxed);
        let scrape = Scrape { metrics, audit };
        let mut out = String::new();
        scrape.render(&mut out);
        assert!(out.contains("intentgate_gateway_http_requests_total{method=\"POST\""));
        assert_eq!(
            scrape.audit(),
            AuditTotals {
                refused: 2,
                ..AuditTotals::default()
            }
        );
    }
}
