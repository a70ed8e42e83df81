//! `GET /metrics` on `INTENTGATE_METRICS_ADDR`: every subsystem's counters, read at scrape
//! time.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use intentgate_controlplane::{metrics, otlp};
use intentgate_dataplane::approvals::ApprovalQueue;
use intentgate_dataplane::runtime::Shared;
use intentgate_dataplane::scrape::Scrape;
use intentgate_shared::approval::PendingApprovals;
use tokio::sync::oneshot;

use super::Process;
use super::admin_listener::AdminApi;
use super::audit::Audit;

/// Serves until the returned sender is dropped (`None` when metrics are off).
pub(super) fn start_metrics(
    p: &Process,
    shared: &Shared,
    audit: &Audit,
    admin: &AdminApi,
    approvals: Option<Arc<ApprovalQueue>>,
    traces: Option<&otlp::Running>,
) -> Result<Option<oneshot::Sender<()>>> {
    let cfg = &p.cfg;
    if !cfg.metrics_enabled {
        return Ok(None);
    }
    let sources = Arc::new(metrics::Sources {
        dataplane: Arc::new(Scrape {
            metrics: Arc::clone(&shared.metrics),
            audit: Arc::clone(&audit.counters),
        }),
        writer: audit
            .writer
            .task
            .is_some()
            .then(|| Arc::clone(&audit.writer.stats)),
        approvals: approvals.map(|q| q as Arc<dyn PendingApprovals>),
        snapshot: Arc::clone(&shared.snapshot),
        webhook: audit.webhooks.clone(),
        siem: audit
            .siem
            .as_ref()
            .map(|s| s.statuses.clone())
            .unwrap_or_default(),
        admin: admin.requests.clone(),
        traces: traces.map(|t| Arc::clone(&t.stats)),
    });
    let (addr, stop) =
        p.rt.block_on(metrics::serve(cfg.metrics_addr, sources))
            .with_context(|| {
                format!(
                    "INTENTGATE_METRICS_ADDR: cannot listen on {}",
                    cfg.metrics_addr
                )
            })?;
    tracing::info!(%addr, "metrics listening");
    Ok(Some(stop))
}
