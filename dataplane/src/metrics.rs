//! Data plane metrics. Each worker owns one [`CoreMetrics`] and is its only writer, so a
//! request touches only its own core's cache lines: counters are single-writer cells (a
//! relaxed load and store, no read-modify-write, no lock), summed over cores when
//! `/metrics` is scraped. Decision counts per check are tallied by the audit drain thread
//! from the records it already moves ([`DecisionMetrics`]), off the request path entirely.
//!
//! Cardinality is fixed: routes, methods, status classes, checks and outcomes are closed sets;
//! no tool, agent, tenant or token id is ever a label.

use std::fmt::Write as _;
use std::time::Duration;

use intentgate_shared::audit::{AuditEvent, Decision};
// The cells, the histogram and its text are shared with the control plane's own metrics.
pub use intentgate_shared::metrics::{Counter, Histogram, LATENCY_BOUNDS, family, histogram};

/// `route` label values of the data plane.
pub const ROUTES: [&str; 5] = ["/healthz", "/v1/mcp", "/v1/tool-call", "/v1/admin", "other"];
/// `method` label values.
pub const METHODS: [&str; 3] = ["GET", "POST", "other"];
/// `status` label values (classes).
pub const STATUSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "unknown"];
/// `outcome` label values of upstream forwards.
pub const OUTCOMES: [&str; 4] = ["success", "timeout", "transport", "upstream_http"];
/// `check` label values, in pipeline order.
pub const CHECKS: [&str; 4] = ["capability", "intent", "policy", "budget"];
/// `result` label values of revocation lookups (the Go gateway's `error` cannot happen: the
/// set is in memory).
pub const REVOCATION_RESULTS: [&str; 2] = ["revoked", "not_revoked"];
/// `decision` label values of a check.
pub const DECISIONS: [&str; 3] = ["allow", "block", "skip"];

/// The route label index of a request path.
pub fn route_index(path: &[u8]) -> usize {
    match path {
        b"/healthz" => 0,
        b"/v1/mcp" => 1,
        b"/v1/tool-call" => 2,
        p if p.starts_with(b"/v1/admin") => 3,
        _ => 4,
    }
}

/// The status class index of a response that starts with `HTTP/1.1 NNN`.
pub fn status_index(response: &[u8]) -> usize {
    match response.get(9) {
        Some(b'2') => 0,
        Some(b'3') => 1,
        Some(b'4') => 2,
        Some(b'5') => 3,
        _ => 4,
    }
}

/// One worker's metrics. Aligned so two cores never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CoreMetrics {
    /// Requests by route, method and status class.
    pub http_requests: [[[Counter; STATUSES.len()]; METHODS.len()]; ROUTES.len()],
    /// Request handling time by route and method.
    pub http_duration: [[Histogram; METHODS.len()]; ROUTES.len()],
    /// Forwards by outcome.
    pub upstream: [Counter; OUTCOMES.len()],
    /// Forward time by outcome.
    pub upstream_duration: [Histogram; OUTCOMES.len()],
    /// Time spent in each check, by check.
    pub check_duration: [Histogram; CHECKS.len()],
    /// Revocation lookups by result ([`REVOCATION_RESULTS`]).
    pub revocation_lookups: [Counter; REVOCATION_RESULTS.len()],
    /// Revocation lookup time.
    pub revocation_duration: Histogram,
    /// Idle upstream keep-alive connections in this core's pool (set after each forward).
    pub upstream_idle: Counter,
    /// Token verifications answered from the per-core cache ([`CACHE_RESULTS`]).
    pub token_cache: [Counter; CACHE_RESULTS.len()],
    /// Escalated calls by outcome ([`APPROVAL_OUTCOMES`]).
    pub approvals: [Counter; APPROVAL_OUTCOMES.len()],
}

/// `result` label values of token cache lookups.
pub const CACHE_RESULTS: [&str; 2] = ["hit", "miss"];
/// `outcome` label values of escalated calls.
pub const APPROVAL_OUTCOMES: [&str; 3] = ["approved", "rejected", "timed_out"];

impl CoreMetrics {
    /// Records one handled request.
    #[inline]
    pub fn request(&self, route: usize, method: usize, status: usize, took: Duration) {
        self.http_requests[route][method][status].inc();
        self.http_duration[route][method].observe(took);
    }

    /// Records one revocation lookup.
    #[inline]
    pub fn revocation(&self, revoked: bool, took: Duration) {
        self.revocation_lookups[usize::from(!revoked)].inc();
        self.revocation_duration.observe(took);
    }

    /// Records one upstream forward.
    #[inline]
    pub fn forward(&self, outcome: usize, took: Duration) {
        self.upstream[outcome].inc();
        self.upstream_duration[outcome].observe(took);
    }
}

/// Decisions per check, tallied by the audit drain thread from every call's record.
#[derive(Debug, Default)]
pub struct DecisionMetrics {
    /// By check and decision.
    pub checks: [[Counter; DECISIONS.len()]; CHECKS.len()],
    /// Calls sent to a reviewer.
    pub escalations: Counter,
}

impl DecisionMetrics {
    /// Counts one audit record. A call that stopped at a check passed every check before it;
    /// a call that went through passed them all. Admin records and escalation markers (the
    /// call's final record follows) count as no check decision.
    pub fn tally(&self, e: &AuditEvent) {
        if e.tool.starts_with("admin/") {
            return;
        }
        if e.decision == Decision::Escalate {
            self.escalations.inc();
            return;
        }
        let stop = if e.decision == Decision::Block {
            CHECKS.iter().position(|c| *c == e.check.as_str())
        } else {
            None
        };
        let last = stop.unwrap_or(CHECKS.len() - 1);
        for (i, row) in self.checks.iter().enumerate().take(last + 1) {
            let d = if Some(i) == stop {
                1
            } else if i == 1 && e.intent_summary.is_empty() {
                2
            } else {
                0
            };
            row[d].inc();
        }
    }
}

/// Every core's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// One per worker, indexed like the workers.
    pub cores: Box<[CoreMetrics]>,
}

impl Metrics {
    /// Metrics for `cores` workers.
    pub fn new(cores: usize) -> Self {
        Self {
            cores: (0..cores.max(1)).map(|_| CoreMetrics::default()).collect(),
        }
    }

    /// Worker `i`'s metrics (the last ones when `i` is out of range).
    pub fn core(&self, i: usize) -> &CoreMetrics {
        &self.cores[i.min(self.cores.len() - 1)]
    }

    /// Appends the data plane families in the Prometheus text format, summed over cores.
    pub fn render(&self, decisions: &DecisionMetrics, out: &mut String) {
        self.render_http(out);
        self.render_upstream(out);
        self.render_checks(decisions, out);
    }

    /// Sums one counter over the cores.
    fn sum(&self, f: &dyn Fn(&CoreMetrics) -> u64) -> u64 {
        self.cores.iter().map(f).sum()
    }

    /// Requests and their durations, by route, method and status.
    fn render_http(&self, out: &mut String) {
        let sum = |f: &dyn Fn(&CoreMetrics) -> u64| self.sum(f);
        family(
            out,
            "intentgate_gateway_http_requests_total",
            "counter",
            "Requests handled by the data plane.",
        );
        for (r, route) in ROUTES.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                for (s, status) in STATUSES.iter().enumerate() {
                    let v = sum(&|c| c.http_requests[r][m][s].get());
                    if v > 0 {
                        let _ = writeln!(
                            out,
                            "intentgate_gateway_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {v}"
                        );
                    }
                }
            }
        }
        family(
            out,
            "intentgate_gateway_http_request_duration_seconds",
            "histogram",
            "Time from a complete request to its response, in the data plane.",
        );
        for (r, route) in ROUTES.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                let hists: Vec<&Histogram> =
                    self.cores.iter().map(|c| &c.http_duration[r][m]).collect();
                histogram(
                    out,
                    "intentgate_gateway_http_request_duration_seconds",
                    &format!("method=\"{method}\",route=\"{route}\""),
                    &hists,
                );
            }
        }
    }

    /// Forwards, their durations and the idle pool.
    fn render_upstream(&self, out: &mut String) {
        let sum = |f: &dyn Fn(&CoreMetrics) -> u64| self.sum(f);
        family(
            out,
            "intentgate_gateway_upstream_forward_total",
            "counter",
            "Calls forwarded to the upstream, by outcome.",
        );
        for (o, outcome) in OUTCOMES.iter().enumerate() {
            let v = sum(&|c| c.upstream[o].get());
            let _ = writeln!(
                out,
                "intentgate_gateway_upstream_forward_total{{outcome=\"{outcome}\"}} {v}"
            );
        }
        family(
            out,
            "intentgate_gateway_upstream_forward_duration_seconds",
            "histogram",
            "Upstream round trip, by outcome.",
        );
        for (o, outcome) in OUTCOMES.iter().enumerate() {
            let hists: Vec<&Histogram> =
                self.cores.iter().map(|c| &c.upstream_duration[o]).collect();
            histogram(
                out,
                "intentgate_gateway_upstream_forward_duration_seconds",
                &format!("outcome=\"{outcome}\""),
                &hists,
            );
        }
        family(
            out,
            "intentgate_gateway_upstream_pool_idle_connections",
            "gauge",
            "Idle keep-alive connections to the upstream, summed over cores.",
        );
        let _ = writeln!(
            out,
            "intentgate_gateway_upstream_pool_idle_connections {}",
            sum(&|c| c.upstream_idle.get())
        );
    }

    /// The checks: token cache, approvals, check durations and decisions, revocation lookups.
    fn render_checks(&self, decisions: &DecisionMetrics, out: &mut String) {
        let sum = |f: &dyn Fn(&CoreMetrics) -> u64| self.sum(f);
        family(
            out,
            "intentgate_gateway_token_cache_lookups_total",
            "counter",
            "Capability token verifications, answered from the per-core cache (hit) or verified (miss).",
        );
        for (r, result) in CACHE_RESULTS.iter().enumerate() {
            let v = sum(&|c| c.token_cache[r].get());
            let _ = writeln!(
                out,
                "intentgate_gateway_token_cache_lookups_total{{result=\"{result}\"}} {v}"
            );
        }
        family(
            out,
            "intentgate_gateway_approvals_total",
            "counter",
            "Escalated calls by how their approval ended.",
        );
        for (o, outcome) in APPROVAL_OUTCOMES.iter().enumerate() {
            let v = sum(&|c| c.approvals[o].get());
            let _ = writeln!(
                out,
                "intentgate_gateway_approvals_total{{outcome=\"{outcome}\"}} {v}"
            );
        }
        family(
            out,
            "intentgate_gateway_check_duration_seconds",
            "histogram",
            "Time spent in each check of a tool call.",
        );
        for (c, check) in CHECKS.iter().enumerate() {
            let hists: Vec<&Histogram> = self.cores.iter().map(|k| &k.check_duration[c]).collect();
            histogram(
                out,
                "intentgate_gateway_check_duration_seconds",
                &format!("check=\"{check}\""),
                &hists,
            );
        }
        family(
            out,
            "intentgate_gateway_revocation_lookups_total",
            "counter",
            "Revocation lookups of presented tokens, by result.",
        );
        for (r, result) in REVOCATION_RESULTS.iter().enumerate() {
            let v = sum(&|c| c.revocation_lookups[r].get());
            let _ = writeln!(
                out,
                "intentgate_gateway_revocation_lookups_total{{result=\"{result}\"}} {v}"
            );
        }
        family(
            out,
            "intentgate_gateway_revocation_lookup_duration_seconds",
            "histogram",
            "Revocation lookup time (an in-memory set of the snapshot).",
        );
        let hists: Vec<&Histogram> = self.cores.iter().map(|k| &k.revocation_duration).collect();
        histogram(
            out,
            "intentgate_gateway_revocation_lookup_duration_seconds",
            "",
            &hists,
        );
        family(
            out,
            "intentgate_gateway_check_decisions_total",
            "counter",
            "Check outcomes of tool calls (a call stopped at a check passed the ones before it).",
        );
        for (c, check) in CHECKS.iter().enumerate() {
            for (d, decision) in DECISIONS.iter().enumerate() {
                let v = decisions.checks[c][d].get();
                let _ = writeln!(
                    out,
                    "intentgate_gateway_check_decisions_total{{check=\"{check}\",decision=\"{decision}\"}} {v}"
                );
            }
        }
        family(
            out,
            "intentgate_gateway_escalations_total",
            "counter",
            "Tool calls sent to a human reviewer.",
        );
        let _ = writeln!(
            out,
            "intentgate_gateway_escalations_total {}",
            decisions.escalations.get()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use intentgate_shared::audit::Decision;
    use intentgate_shared::timestamp::Timestamp;

    fn event(decision: Decision, check: &str, summary: &str) -> AuditEvent {
        let mut e = AuditEvent::new(Timestamp::from_unix_micros(1), decision, "read_invoice");
        e.check = check.into();
        e.intent_summary = summary.into();
        e
    }

    #[test]
    fn a_call_stopped_at_a_check_passed_the_ones_before_it() {
        let d = DecisionMetrics::default();
        d.tally(&event(Decision::Block, "policy", ""));
        d.tally(&event(Decision::Allow, "upstream", "read one invoice"));
        d.tally(&event(Decision::Block, "capability", ""));
        let mut admin = event(Decision::Allow, "capability", "");
        admin.tool = "admin/mint".into();
        d.tally(&admin);
        let got = |c: usize, x: usize| d.checks[c][x].get();
        assert_eq!((got(0, 0), got(0, 1)), (2, 1), "capability allow/block");
        assert_eq!((got(1, 0), got(1, 2)), (1, 1), "intent allow/skip");
        assert_eq!((got(2, 0), got(2, 1)), (1, 1), "policy allow/block");
        assert_eq!((got(3, 0), got(3, 1)), (1, 0), "budget");
    }

    #[test]
    fn scrapes_sum_cores_and_buckets_are_cumulative() {
        let m = Metrics::new(2);
        m.core(0).request(1, 1, 0, Duration::from_micros(40));
        m.core(1).request(1, 1, 0, Duration::from_millis(3));
        m.core(1).request(1, 1, 2, Duration::from_secs(5));
        let mut out = String::new();
        m.render(&DecisionMetrics::default(), &mut out);
        assert!(out.contains(
            "intentgate_gateway_http_requests_total{method=\"POST\",route=\"/v1/mcp\",status=\"2xx\"} 2\n"
        ));
        assert!(
            out.contains("route=\"/v1/mcp\",le=\"0.00005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("route=\"/v1/mcp\",le=\"0.0064\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("route=\"/v1/mcp\",le=\"+Inf\"} 3\n"), "{out}");
        assert_eq!(route_index(b"/v1/admin/revoke"), 3);
        assert_eq!(status_index(b"HTTP/1.1 503 Service Unavailable"), 3);
    }
}
