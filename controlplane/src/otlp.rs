//! OpenTelemetry trace export (OTLP over HTTP, JSON encoding). The data plane records the
//! spans of sampled calls as plain timestamps on their audit records
//! (the data plane's `stages` module); the drain thread turns them into OTLP spans here
//! ([`TraceTap`]) and the chain writer adds an `audit.insert` span once a sampled call's
//! record is committed. A task batches spans and posts them to the collector. Export never
//! blocks a decision: when the buffer is full, spans are dropped and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::audit_sink::{Observer, Tap};
use intentgate_shared::config::Otel;
use intentgate_shared::trace::{RequestTrace, hex};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Spans waiting for export before new ones are dropped.
pub const BUFFER: usize = 8192;
/// Spans per export request at most.
pub const BATCH: usize = 512;
/// Longest wait before a partial batch is exported.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Export counters.
#[derive(Debug, Default)]
pub struct OtlpStats {
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans dropped: buffer full or the collector failed twice.
    pub dropped: AtomicU64,
}

/// Hands spans to the export task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Exporter {
    tx: mpsc::Sender<Value>,
    stats: Arc<OtlpStats>,
}

/// The export task and how to stop it.
#[derive(Debug)]
pub struct Running {
    /// Hands spans over.
    pub exporter: Exporter,
    /// Counters.
    pub stats: Arc<OtlpStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// OTLP status codes.
const STATUS_UNSET: u8 = 0;
const STATUS_ERROR: u8 = 2;
/// OTLP span kinds.
const KIND_INTERNAL: u8 = 1;
const KIND_SERVER: u8 = 2;
const KIND_CLIENT: u8 = 3;

fn attr(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

#[expect(
    clippy::too_many_arguments,
    reason = "one OTLP span object: every argument is one of its fields"
)]
fn span(
    t: &RequestTrace,
    span_id: &[u8],
    parent: Option<&[u8]>,
    name: &str,
    kind: u8,
    start_ns: u64,
    end_ns: u64,
    attributes: Vec<Value>,
    status: u8,
) -> Value {
    let mut v = json!({
        "traceId": hex(&t.trace_id),
        "spanId": hex(span_id),
        "name": name,
        "kind": kind,
        "startTimeUnixNano": start_ns.to_string(),
        "endTimeUnixNano": end_ns.to_string(),
        "attributes": attributes,
        "status": {"code": status},
    });
    if let Some(p) = parent {
        v["parentSpanId"] = Value::String(hex(p));
    }
    v
}

/// The request span and its children for a sampled call's record. Tool, tenant, agent and
/// the decision are attributes (spans are per call; metrics never carry them).
pub fn request_spans(e: &AuditEvent) -> Vec<Value> {
    let Some(t) = e.trace.as_deref() else {
        return Vec::new();
    };
    let mut attributes = vec![
        attr("rpc.system", "jsonrpc"),
        attr("rpc.method", "tools/call"),
        attr("intentgate.tool", &e.tool),
        attr("intentgate.decision", e.decision.as_str()),
    ];
    for (key, value) in [
        ("intentgate.check", e.check.as_str()),
        ("intentgate.tenant", &e.tenant),
        ("intentgate.agent_id", &e.agent_id),
        ("intentgate.reason", &e.reason),
    ] {
        if !value.is_empty() {
            attributes.push(attr(key, value));
        }
    }
    let failed_upstream = e.check == Check::Upstream && e.decision == Decision::Block;
    let mut out = Vec::with_capacity(1 + t.children.len());
    out.push(span(
        t,
        &t.request.span_id,
        t.remote_parent.as_ref().map(|p| &p[..]),
        "tools/call",
        KIND_SERVER,
        t.request.start_ns,
        t.request.end_ns,
        attributes,
        if failed_upstream {
            STATUS_ERROR
        } else {
            STATUS_UNSET
        },
    ));
    for c in &t.children {
        let upstream = c.name == "upstream";
        // A check that refused the call is where it stopped.
        let stopped_here = e.decision == Decision::Block && e.check.as_str() == c.name;
        let mut attributes = Vec::new();
        if stopped_here {
            attributes.push(attr("intentgate.decision", "block"));
        }
        out.push(span(
            t,
            &c.span_id,
            Some(&t.request.span_id),
            c.name,
            if upstream { KIND_CLIENT } else { KIND_INTERNAL },
            c.start_ns,
            c.end_ns,
            attributes,
            if upstream && failed_upstream {
                STATUS_ERROR
            } else {
                STATUS_UNSET
            },
        ));
    }
    out
}

/// The `audit.insert` span of a sampled call whose record was committed in `[start, end]`.
pub fn insert_span(
    t: &RequestTrace,
    span_id: [u8; 8],
    start_ns: u64,
    end_ns: u64,
    rows: usize,
) -> Value {
    span(
        t,
        &span_id,
        Some(&t.request.span_id),
        "audit.insert",
        KIND_CLIENT,
        start_ns,
        end_ns,
        vec![
            attr("db.system", "postgresql"),
            json!({"key": "intentgate.batch_rows", "value": {"intValue": rows.to_string()}}),
        ],
        STATUS_UNSET,
    )
}

impl Exporter {
    /// Queues spans; drops (and counts) what does not fit.
    pub fn offer(&self, spans: Vec<Value>) {
        for s in spans {
            if self.tx.try_send(s).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Starts the export task on the current tokio runtime.
pub fn start(cfg: &Otel, instance: &str) -> Result<Running, reqwest::Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &cfg.headers {
        if let (Ok(n), Ok(mut v)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_str(value.expose()),
        ) {
            v.set_sensitive(true);
            headers.insert(n, v);
        }
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let stats = Arc::new(OtlpStats::default());
    let (stop, stop_rx) = watch::channel(false);
    let resource = json!({"attributes": [
        attr("service.name", &cfg.service_name),
        attr("service.version", intentgate_shared::VERSION),
        attr("service.instance.id", instance),
    ]});
    let task = tokio::spawn(export(
        rx,
        client,
        cfg.traces_url.clone(),
        resource,
        Arc::clone(&stats),
        stop_rx,
    ));
    tracing::info!(endpoint = %crate::siem::display_url(&cfg.traces_url), sampler = ?cfg.sampler, "trace export on");
    Ok(Running {
        exporter: Exporter {
            tx,
            stats: Arc::clone(&stats),
        },
        stats,
        stop,
        task,
    })
}

impl Running {
    /// Exports what is queued (at most `within`), then stops.
    pub async fn shutdown(self, within: Duration) {
        let _ = self.stop.send(true);
        drop(self.exporter);
        let _ = tokio::time::timeout(within, self.task).await;
    }
}

async fn export(
    mut rx: mpsc::Receiver<Value>,
    client: reqwest::Client,
    url: String,
    resource: Value,
    stats: Arc<OtlpStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut batch: Vec<Value> = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        // (send now, stop afterwards)
        let (flush, stopping) = tokio::select! {
            s = rx.recv() => match s {
                Some(s) => {
                    batch.push(s);
                    (batch.len() >= BATCH, false)
                }
                None => (true, true),
            },
            _ = tick.tick() => (true, false),
            _ = stop.changed() => (true, true),
        };
        if stopping {
            while let Ok(s) = rx.try_recv() {
                batch.push(s);
            }
        }
        if flush && !batch.is_empty() {
            for chunk in batch.chunks(BATCH) {
                post(&client, &url, &resource, chunk, &stats).await;
            }
            batch.clear();
        }
        if stopping {
            return;
        }
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    resource: &Value,
    spans: &[Value],
    stats: &OtlpStats,
) {
    let body = json!({"resourceSpans": [{
        "resource": resource,
        "scopeSpans": [{"scope": {"name": "intentgate", "version": intentgate_shared::VERSION}, "spans": spans}],
    }]})
    .to_string();
    for attempt in 1..=2 {
        let sent = client
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                stats
                    .exported
                    .fetch_add(spans.len() as u64, Ordering::Relaxed);
                return;
            }
            Ok(r) => {
                tracing::warn!(status = r.status().as_u16(), attempt, "trace export failed")
            }
            Err(e) => tracing::warn!(error = %e.without_url(), attempt, "trace export failed"),
        }
        if attempt == 1 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    stats
        .dropped
        .fetch_add(spans.len() as u64, Ordering::Relaxed);
}

/// The drain thread's side: exports each sampled call's spans (the trace stays on the
/// record so the chain writer can add its insert span).
impl Observer for Exporter {
    fn observe(&mut self, batch: &[AuditEvent]) {
        for e in batch.iter().filter(|e| e.trace.is_some()) {
            self.offer(request_spans(e));
        }
    }
}

/// The audit sink with trace export in front of it.
pub type TraceTap<S> = Tap<S, Exporter>;
