//! The audit pipeline, built from the inside out: the sink that stores records (the chain
//! writer, or memory), the taps that fan them out (webhooks, SIEM forwarders, trace
//! export), then the rings the data plane cores and the admin API write into. Its shutdown
//! steps live here too, in the order they must run.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result};
use intentgate_controlplane::chain_writer::{self, WriterOptions, WriterStats};
use intentgate_controlplane::checkpoint::Signer;
use intentgate_controlplane::siem::{self, Siem};
use intentgate_controlplane::{otlp, webhook};
use intentgate_dataplane::audit_ring::{
    self, AuditCounters, AuditDrain, AuditProducer, AuditSink, CommitWatch, MemorySink,
};
use intentgate_shared::audit_sink::CommitListener;
use intentgate_shared::config::AuditTarget;
use sqlx::PgPool;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::Process;

/// The sink built so far: each tap wraps it and hands the wrapped one on.
type Sink = Box<dyn AuditSink>;

/// What the running audit pipeline leaves to read (counters) and to stop (the drain, the
/// writer task, the SIEM forwarders).
pub(super) struct Audit {
    pub(super) counters: Arc<AuditCounters>,
    pub(super) writer: AuditWriter,
    pub(super) webhooks: Option<Arc<webhook::WebhookStats>>,
    pub(super) siem: Option<Siem>,
    pub(super) drain: AuditDrain,
}

/// The chain writer (when records persist) and its checkpoint signer's public key.
pub(super) struct AuditWriter {
    pub(super) task: Option<JoinHandle<()>>,
    pub(super) stats: Arc<WriterStats>,
    pub(super) public_key: Option<String>,
}

/// One ring per data plane core, plus one for the control plane's admin events.
pub(super) struct Producers {
    pub(super) cores: Vec<AuditProducer>,
    pub(super) admin: AuditProducer,
}

/// OTLP trace export (`OTEL_EXPORTER_OTLP_ENDPOINT`), when configured.
pub(super) fn start_tracing(p: &Process) -> Result<Option<otlp::Running>> {
    match &p.cfg.otel {
        Some(otel) => {
            let _in_runtime = p.rt.enter();
            Ok(Some(otlp::start(otel, &p.replica).context(
                "OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the HTTP client",
            )?))
        }
        None => Ok(None),
    }
}

/// The whole pipeline, store first, rings last.
pub(super) fn start_audit(
    p: &Process,
    pool: Option<&PgPool>,
    commit_watch: Option<Arc<CommitWatch>>,
    traces: Option<&otlp::Running>,
) -> Result<(Audit, Producers)> {
    let counters = Arc::new(AuditCounters::default());
    let (writer, sink) = start_audit_writer(p, pool, commit_watch, traces)?;
    let (webhooks, sink) = start_webhooks(p, sink)?;
    let (siem, sink) = start_siem(p, sink)?;
    let sink = tap_traces(sink, traces);
    let (producers, drain) = start_rings(p, sink, &counters)?;
    let audit = Audit {
        counters,
        writer,
        webhooks,
        siem,
        drain,
    };
    Ok((audit, producers))
}

/// The chain writer on Postgres with `INTENTGATE_AUDIT_PERSIST=true` (signing checkpoints
/// when a key is set); otherwise an in-memory sink.
fn start_audit_writer(
    p: &Process,
    pool: Option<&PgPool>,
    commit_watch: Option<Arc<CommitWatch>>,
    traces: Option<&otlp::Running>,
) -> Result<(AuditWriter, Sink)> {
    let cfg = &p.cfg;
    let stdout = cfg.audit_target == AuditTarget::Stdout;
    let stats = Arc::new(WriterStats::default());
    let (Some(pool), true) = (pool, cfg.audit_persist) else {
        let writer = AuditWriter {
            task: None,
            stats,
            public_key: None,
        };
        return Ok((writer, Box::new(MemorySink::new(10_000, stdout))));
    };
    let signer = cfg
        .audit_signing_key
        .as_ref()
        .map(|k| Signer::from_seed(k.expose()))
        .transpose()
        .context("INTENTGATE_AUDIT_SIGNING_KEY")?
        .map(Arc::new);
    let mut public_key = None;
    if let Some(s) = &signer {
        tracing::info!(key_id = s.key_id(), public_key = %s.public_key(), "signing audit checkpoints");
        public_key = Some(s.public_key());
    }
    let options = WriterOptions {
        stdout,
        watch: commit_watch.map(|w| w as Arc<dyn CommitListener>),
        signer,
        trace: traces.map(|t| t.exporter.clone()),
    };
    let (sink, task) = chain_writer::start(pool.clone(), Arc::clone(&stats), options);
    let writer = AuditWriter {
        task: Some(p.rt.spawn(task)),
        stats,
        public_key,
    };
    Ok((writer, Box::new(sink)))
}

/// Signed webhook deliveries (`INTENTGATE_WEBHOOK_URL`): a tap around `sink`.
fn start_webhooks(p: &Process, sink: Sink) -> Result<(Option<Arc<webhook::WebhookStats>>, Sink)> {
    let Some(w) = &p.cfg.webhook else {
        return Ok((None, sink));
    };
    let stats = Arc::new(webhook::WebhookStats::default());
    let _in_runtime = p.rt.enter();
    tracing::info!(events = ?w.events, "webhooks on");
    let tap = webhook::start(sink, w, Arc::clone(&stats))
        .context("INTENTGATE_WEBHOOK_URL: cannot build the HTTP client")?;
    Ok((Some(stats), Box::new(tap)))
}

/// The SIEM forwarders (`INTENTGATE_SIEM_*`): a tap around `sink`, when any is configured.
fn start_siem(p: &Process, sink: Sink) -> Result<(Option<Siem>, Sink)> {
    let siem = {
        let _in_runtime = p.rt.enter();
        siem::start(&p.cfg, &p.replica)
            .context("INTENTGATE_SIEM_*: cannot build the HTTP client")?
    };
    let sink: Sink = match &siem {
        Some(siem) => Box::new(siem.tap(sink)),
        None => sink,
    };
    Ok((siem, sink))
}

/// Sampled calls' timestamps become spans: a tap around `sink`, when traces are on.
fn tap_traces(sink: Sink, traces: Option<&otlp::Running>) -> Sink {
    match traces {
        Some(t) => Box::new(otlp::TraceTap::new(sink, t.exporter.clone())),
        None => sink,
    }
}

/// The rings and the drain thread feeding `sink`, and the refusal report.
fn start_rings(
    p: &Process,
    sink: Sink,
    counters: &Arc<AuditCounters>,
) -> Result<(Producers, AuditDrain)> {
    p.rt.spawn(report_refusals(Arc::clone(counters)));
    let (mut cores, drain) = audit_ring::start(p.threads + 1, sink, Arc::clone(counters));
    let admin = cores.pop().context("audit ring for the control plane")?;
    Ok((Producers { cores, admin }, drain))
}

/// Calls refused because the audit queue was full, reported once a second while it happens
/// (a line per refusal would flood the log exactly when it matters).
async fn report_refusals(counters: Arc<AuditCounters>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seen = 0;
    loop {
        tick.tick().await;
        let now = counters.refused.load(Ordering::Relaxed);
        if now > seen {
            tracing::warn!(
                refused = now - seen,
                total = now,
                "calls refused with 503: the audit queue is full"
            );
            seen = now;
        }
    }
}

/// Shutdown: the drain hands its last records to the writer, which ends once it persisted
/// them.
pub(super) fn flush(rt: &Runtime, drain: AuditDrain, writer: AuditWriter) {
    drain.stop();
    if let Some(task) = writer.task {
        let waited =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await });
        if waited.is_err() {
            tracing::error!(
                persisted = writer.stats.persisted.load(Ordering::Relaxed),
                "audit writer could not finish within 10s (Postgres unreachable?): the records it still held are not persisted"
            );
        }
    }
}

/// Shutdown: the drain has handed over its last records; give the forwarders a bounded time
/// to send what they hold (their receivers may be down).
pub(super) fn stop_siem(rt: &Runtime, siem: Option<Siem>) {
    let Some(siem) = siem else {
        return;
    };
    let unsent = rt.block_on(siem.shutdown(Duration::from_secs(10)));
    for (sink, events) in unsent {
        tracing::error!(
            sink,
            events,
            "siem forwarder could not send everything within 10s: these records are not forwarded"
        );
    }
}

/// Shutdown: send the spans still queued, within 3 s.
pub(super) fn stop_tracing(rt: &Runtime, traces: Option<otlp::Running>) {
    if let Some(t) = traces {
        rt.block_on(t.shutdown(Duration::from_secs(3)));
    }
}
