//! `GET /metrics` on `INTENTGATE_METRICS_ADDR`: the data plane's per-core families summed at
//! scrape time (read through [`DataPlaneMetrics`]), plus what only the control plane knows:
//! the audit pipeline, the chain writer, approvals and the snapshot's age. Everything is read
//! when scraped; nothing here runs on the request path.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use intentgate_shared::approval::PendingApprovals;
use intentgate_shared::metrics::{AuditTotals, DataPlaneMetrics, Histogram, family, histogram};
use intentgate_shared::snapshot::SnapshotCell;

use crate::chain_writer::WriterStats;

/// What a scrape reads.
#[derive(Debug)]
pub struct Sources {
    /// The data plane's per-core metrics, the drain thread's decision tally and the audit
    /// ring counters.
    pub dataplane: Arc<dyn DataPlaneMetrics>,
    /// The chain writer's counters, when audit persistence is on.
    pub writer: Option<Arc<WriterStats>>,
    /// The approvals queue, when approvals are on.
    pub approvals: Option<Arc<dyn PendingApprovals>>,
    /// The snapshot the data plane decides from.
    pub snapshot: Arc<SnapshotCell>,
    /// Webhook delivery counters, when webhooks are on.
    pub webhook: Option<Arc<crate::webhook::WebhookStats>>,
    /// The SIEM forwarders (empty when none is configured).
    pub siem: Vec<Arc<crate::siem::Status>>,
    /// Trace export counters, when traces are on.
    pub traces: Option<Arc<crate::otlp::OtlpStats>>,
    /// Requests served by the admin listener, when the admin API is on.
    pub admin: Option<Arc<AdminRequests>>,
}

/// `route` label values of the admin listener: the Go gateway's admin whitelist (plus the
/// routes it lacked), then `other`.
pub const ADMIN_ROUTES: [&str; 17] = [
    "/v1/admin/mint",
    "/v1/admin/revoke",
    "/v1/admin/revocations",
    "/v1/admin/tenants",
    "/v1/admin/integrations",
    "/v1/admin/approvals",
    "/v1/admin/approvals/decide",
    "/v1/admin/audit",
    "/v1/admin/audit/verify",
    "/v1/admin/audit/export",
    "/v1/admin/audit/checkpoints",
    "/v1/admin/policies/drafts",
    "/v1/admin/policies/drafts/{id}",
    "/v1/admin/policies/active",
    "/v1/admin/policies/rollback",
    "/v1/admin/policies/dry-run",
    "other",
];
const ADMIN_METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "other"];
const STATUS_CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "unknown"];

/// The admin route label of a path (ids are never labels).
pub fn admin_route(path: &str) -> usize {
    let last = ADMIN_ROUTES.len() - 1;
    if let Some(i) = ADMIN_ROUTES[..last].iter().position(|r| *r == path) {
        return i;
    }
    match path.strip_prefix("/v1/admin/") {
        Some(rest) if rest.starts_with("approvals/") && rest.ends_with("/decide") => 6,
        Some(rest) if rest.starts_with("policies/drafts/") => 12,
        _ => last,
    }
}

/// Requests the admin listener served. Admin calls are rare; a lock per request is fine here
/// (the data plane's cells are single-writer instead).
#[derive(Debug, Default)]
pub struct AdminRequests {
    counts: std::sync::Mutex<Vec<u64>>,
    durations: [Histogram; ADMIN_ROUTES.len()],
}

impl AdminRequests {
    fn record(&self, route: usize, method: usize, status: u16, took: std::time::Duration) {
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            500..=599 => 3,
            _ => 4,
        };
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let width = ADMIN_METHODS.len() * STATUS_CLASSES.len();
        counts.resize(ADMIN_ROUTES.len() * width, 0);
        counts[route * width + method * STATUS_CLASSES.len() + class] += 1;
        // Under the lock: the histogram's cells expect one writer at a time.
        self.durations[route].observe(took);
    }

    fn render(&self, out: &mut String) {
        family(
            out,
            "intentgate_gateway_admin_requests_total",
            "counter",
            "Requests served by the admin listener.",
        );
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let width = ADMIN_METHODS.len() * STATUS_CLASSES.len();
        for (i, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            let (route, rest) = (i / width, i % width);
            let (method, class) = (rest / STATUS_CLASSES.len(), rest % STATUS_CLASSES.len());
            let _ = writeln!(
                out,
                "intentgate_gateway_admin_requests_total{{method=\"{}\",route=\"{}\",status=\"{}\"}} {n}",
                ADMIN_METHODS[method], ADMIN_ROUTES[route], STATUS_CLASSES[class]
            );
        }
        family(
            out,
            "intentgate_gateway_admin_request_duration_seconds",
            "histogram",
            "Time to the response head of admin requests.",
        );
        for (r, route) in ADMIN_ROUTES.iter().enumerate() {
            histogram(
                out,
                "intentgate_gateway_admin_request_duration_seconds",
                &format!("route=\"{route}\""),
                &[&self.durations[r]],
            );
        }
    }
}

/// Axum middleware counting admin requests by route, method and status class.
pub async fn track_admin(
    axum::extract::State(m): axum::extract::State<Arc<AdminRequests>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = admin_route(req.uri().path());
    let method = match req.method().as_str() {
        "GET" => 0,
        "POST" => 1,
        "PUT" => 2,
        "DELETE" => 3,
        _ => 4,
    };
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    m.record(route, method, resp.status().as_u16(), started.elapsed());
    resp
}

/// The Prometheus text exposition (format 0.0.4) of every family.
pub fn render(s: &Sources) -> String {
    let mut out = String::with_capacity(16 * 1024);
    s.dataplane.render(&mut out);
    render_audit(&mut out, &s.dataplane.audit());
    // The append histogram follows every other family.
    let mut tail = String::new();
    if let Some(w) = &s.writer {
        render_writer(&mut out, &mut tail, w);
    }
    if let Some(q) = &s.approvals {
        gauge(
            &mut out,
            "intentgate_gateway_approvals_waiting",
            "gauge",
            "Escalated calls on this replica waiting for a reviewer.",
            q.waiting().len(),
        );
    }
    if let Some(w) = &s.webhook {
        render_webhook(&mut out, w);
    }
    if let Some(a) = &s.admin {
        a.render(&mut out);
    }
    if !s.siem.is_empty() {
        render_siem(&mut out, &s.siem);
    }
    if let Some(t) = &s.traces {
        gauge(
            &mut out,
            "intentgate_gateway_trace_spans_exported_total",
            "counter",
            "Spans the OTLP collector accepted.",
            t.exported.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "intentgate_gateway_trace_spans_dropped_total",
            "counter",
            "Spans not exported: buffer full or the collector failed.",
            t.dropped.load(Ordering::Relaxed),
        );
    }
    gauge(
        &mut out,
        "intentgate_gateway_snapshot_age_seconds",
        "gauge",
        "Time since the snapshot (keys, revocations, policies) was last confirmed current.",
        format_args!("{:.3}", s.snapshot.age().as_secs_f64()),
    );
    out.push_str(&tail);
    out
}

/// One family with one unlabelled sample.
fn gauge(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn render_audit(out: &mut String, audit: &AuditTotals) {
    gauge(
        out,
        "intentgate_gateway_audit_queue_depth",
        "gauge",
        "Audit records in the per-core rings, not yet taken by the drain thread.",
        audit.queue_depth,
    );
    gauge(
        out,
        "intentgate_gateway_audit_records_total",
        "counter",
        "Audit records taken from the rings.",
        audit.delivered,
    );
    gauge(
        out,
        "intentgate_gateway_audit_refusals_total",
        "counter",
        "Calls refused with 503 because an audit ring was full (never a silent drop).",
        audit.refused,
    );
}

/// The chain writer's families into `out`, its append histogram into `tail`.
fn render_writer(out: &mut String, tail: &mut String, w: &WriterStats) {
    let persisted = w.persisted.load(Ordering::Relaxed);
    gauge(
        out,
        "intentgate_gateway_audit_rows_persisted_total",
        "counter",
        "Audit rows committed to the Postgres hash chain.",
        persisted,
    );
    // The runbook's freshness alert: "alert when the rate is zero longer than your idle
    // window". One chain insert per committed row.
    gauge(
        out,
        "intentgate_gateway_audit_chain_inserts_total",
        "counter",
        "Rows appended to the audit hash chains (the runbook's chain-advance signal).",
        persisted,
    );
    gauge(
        out,
        "intentgate_gateway_audit_batches_total",
        "counter",
        "Chain writer transactions committed (rows per batch = rows / batches).",
        w.batches.load(Ordering::Relaxed),
    );
    let h = w
        .append_duration
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    family(
        tail,
        "intentgate_gateway_audit_append_duration_seconds",
        "histogram",
        "Time of each committed chain append (one transaction per batch).",
    );
    histogram(
        tail,
        "intentgate_gateway_audit_append_duration_seconds",
        "",
        &[&*h],
    );
    gauge(
        out,
        "intentgate_gateway_audit_append_failures_total",
        "counter",
        "Failed chain appends (each is retried in order).",
        w.failures.load(Ordering::Relaxed),
    );
}

fn render_webhook(out: &mut String, w: &crate::webhook::WebhookStats) {
    for (name, help, v) in [
        (
            "intentgate_gateway_webhook_delivered_total",
            "Webhook events delivered.",
            &w.delivered,
        ),
        (
            "intentgate_gateway_webhook_retries_total",
            "Webhook delivery retries.",
            &w.retried,
        ),
        (
            "intentgate_gateway_webhook_dropped_total",
            "Webhook events dropped (buffer full, refused, or attempts exhausted).",
            &w.dropped,
        ),
    ] {
        gauge(out, name, "counter", help, v.load(Ordering::Relaxed));
    }
}

/// The SIEM families, one sample per forwarder (`sink` label).
fn render_siem(out: &mut String, siem: &[Arc<crate::siem::Status>]) {
    type Read = fn(&crate::siem::Status) -> u64;
    let families: [(&str, &str, &str, Read); 4] = [
        (
            "intentgate_gateway_siem_delivered_total",
            "counter",
            "Audit records a SIEM receiver accepted.",
            |st| st.delivered.load(Ordering::Relaxed),
        ),
        (
            "intentgate_gateway_siem_retries_total",
            "counter",
            "SIEM batches sent again after a transient failure.",
            |st| st.retried.load(Ordering::Relaxed),
        ),
        (
            "intentgate_gateway_siem_dropped_total",
            "counter",
            "Audit records not forwarded: spool full or refused for good.",
            |st| st.dropped.load(Ordering::Relaxed),
        ),
        (
            "intentgate_gateway_siem_spool_events",
            "gauge",
            "Audit records waiting in a SIEM forwarder's spool.",
            |st| st.spool.len() as u64,
        ),
    ];
    for (name, kind, help, read) in families {
        family(out, name, kind, help);
        for st in siem {
            let _ = writeln!(out, "{name}{{sink=\"{}\"}} {}", st.name, read(st));
        }
    }
}

/// The metrics router: `GET /metrics` only.
pub fn router(sources: Arc<Sources>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let body = render(&sources);
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    body,
                )
                    .into_response()
            }
        }),
    )
}

/// Binds `addr` and serves the router until the returned sender is used or dropped.
pub async fn serve(
    addr: SocketAddr,
    sources: Arc<Sources>,
) -> std::io::Result<(SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let served = axum::serve(listener, router(sources)).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = served.await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok((local, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_paths_map_to_bounded_route_labels() {
        assert_eq!(
            ADMIN_ROUTES[admin_route("/v1/admin/mint")],
            "/v1/admin/mint"
        );
        assert_eq!(
            ADMIN_ROUTES[admin_route("/v1/admin/approvals/ab12/decide")],
            "/v1/admin/approvals/decide"
        );
        assert_eq!(
            ADMIN_ROUTES[admin_route("/v1/admin/policies/drafts/d-1")],
            "/v1/admin/policies/drafts/{id}"
        );
        assert_eq!(ADMIN_ROUTES[admin_route("/v1/admin/nope/x")], "other");
        let m = AdminRequests::default();
        m.record(0, 1, 200, std::time::Duration::from_micros(70));
        m.record(0, 1, 401, std::time::Duration::from_micros(70));
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains(r#"intentgate_gateway_admin_requests_total{method="POST",route="/v1/admin/mint",status="4xx"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"intentgate_gateway_admin_request_duration_seconds_count{route="/v1/admin/mint"} 2"#),
            "{out}"
        );
    }
}
