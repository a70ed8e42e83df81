//! The data plane as this process runs it: the state its cores share, its server settings
//! from the configuration, its start, and its two shutdown steps (the drain delay, then
//! finishing in-flight calls).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use anyhow::{Context as _, Result};
use intentgate_dataplane::approvals::ApprovalQueue;
use intentgate_dataplane::audit_ring::{AuditProducer, CommitWatch};
use intentgate_dataplane::budget::Budget;
use intentgate_dataplane::runtime::{self as server, Running, ServerConfig, Shared};
use intentgate_dataplane::server_requests::ServerRequests;
use intentgate_dataplane::session_seal::SessionSeal;
use intentgate_dataplane::upstream::UpstreamTarget;
use intentgate_shared::config::{AuditDurability, Config};
use intentgate_shared::snapshot::{Snapshot, SnapshotCell};

use super::Process;
use super::admin_listener::AdminApi;
use super::plan;

/// How long in-flight calls get to finish on shutdown.
const GRACE: Duration = Duration::from_secs(15);

/// What the cores share: the snapshot, budgets, lifecycle flags, the approvals queue, the
/// commit watch of `INTENTGATE_AUDIT_DURABILITY=sync`, metrics.
pub(super) fn state(
    p: &Process,
    snapshot: Snapshot,
    approvals: Option<Arc<ApprovalQueue>>,
) -> Arc<Shared> {
    let cfg = &p.cfg;
    // One counter per ring: the data plane cores and the control plane's.
    let commit_watch = (cfg.audit_durability == AuditDurability::Sync)
        .then(|| Arc::new(CommitWatch::new(p.threads + 1)));
    Arc::new(Shared {
        snapshot: Arc::new(SnapshotCell::new(snapshot)),
        budget: Arc::new(Budget::new(
            cfg.budget_agent_per_hour,
            cfg.budget_tenant_per_hour,
        )),
        stopping: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
        approvals,
        commit_watch,
        metrics: Arc::new(intentgate_dataplane::metrics::Metrics::new(p.threads)),
        server_requests: ServerRequests::default(),
    })
}

/// The server settings: listener, threads, limits, upstream and extractor, approvals,
/// tracing, origins, OAuth metadata, the MCP session keys, and the relay to the admin API
/// on the data port.
pub(super) fn config(
    p: &Process,
    upstream: Option<UpstreamTarget>,
    admin: &AdminApi,
) -> Result<ServerConfig> {
    let cfg = &p.cfg;
    let mut sc = ServerConfig::new(cfg.addr, plan::settings(cfg));
    if cfg.postgres_url.is_some() {
        sc.max_staleness = Some(Duration::from_secs(cfg.snapshot_max_staleness_s));
    }
    sc.threads = p.threads;
    sc.max_body = cfg.max_body_bytes;
    sc.upstream = upstream;
    sc.extractor = plan::extractor(cfg)?;
    sc.approval_timeout = Duration::from_secs(cfg.approval_timeout_s);
    sc.trace_sampler = cfg.otel.as_ref().map(|o| o.sampler);
    sc.origins = intentgate_dataplane::origin::OriginPolicy::from_list(&cfg.allowed_origins);
    sc.oauth = cfg
        .oauth
        .as_ref()
        .map(intentgate_dataplane::resource_metadata::ResourceMetadata::new);
    // Derived once, here: from the master key ring, so every replica with the same keys
    // opens every replica's session ids, and they rotate with it. Without a configured
    // master key the ring's key is random, and so are the sessions': one process only.
    let lifetime = Duration::from_secs(cfg.mcp_session_ttl_s);
    let seal = SessionSeal::from_ring(&cfg.keys, lifetime)
        .context("cannot derive the MCP session key from the master key")?;
    sc.sessions = Some(Arc::new(seal));
    // In-flight forwards may take the whole upstream timeout: give them that long to finish
    // (and be audited) before a worker stops.
    sc.drain_timeout =
        GRACE.max(Duration::from_millis(cfg.upstream_timeout_ms) + Duration::from_secs(2));
    if let (Some(addr), true) = (admin.addr, cfg.admin_on_data_port) {
        sc.admin_relay_secret = Some(admin.relay_secret.clone());
        sc.admin_relay = Some(UpstreamTarget::parse(
            &format!("http://{addr}/"),
            Duration::from_secs(30),
            4 << 20,
            &[],
        )?);
    }
    Ok(sc)
}

/// Opens the listeners and starts the cores.
pub(super) fn start(
    p: &Process,
    sc: ServerConfig,
    shared: &Arc<Shared>,
    producers: Vec<AuditProducer>,
) -> Result<Running> {
    let running = server::start(sc, Arc::clone(shared), producers)
        .with_context(|| format!("cannot start the data plane on {}", p.cfg.addr))?;
    tracing::info!(addr = %running.local_addr, driver = running.driver, threads = p.threads, "data plane listening");
    Ok(running)
}

/// Shutdown, first step (`INTENTGATE_SHUTDOWN_DELAY_S`): `/healthz` answers 503 so load
/// balancers stop sending, while calls are still served.
pub(super) fn drain_delay(cfg: &Config, running: &Running) {
    if cfg.shutdown_delay_s > 0 {
        tracing::info!(
            seconds = cfg.shutdown_delay_s,
            "draining: /healthz answers 503 while calls are still served"
        );
        running.start_draining();
        std::thread::sleep(Duration::from_secs(cfg.shutdown_delay_s));
    }
}

/// Shutdown: stop accepting, answer the calls waiting for a reviewer, and let in-flight
/// calls finish within the grace period.
pub(super) fn finish_in_flight(cfg: &Config, running: Running, approvals: Option<&ApprovalQueue>) {
    tracing::info!("shutting down: no new connections; finishing in-flight calls");
    // Calls waiting for a reviewer answer now (approval window expired) and are audited.
    if let Some(queue) = approvals {
        queue.expire_all();
    }
    running.shutdown(
        GRACE.max(Duration::from_millis(cfg.upstream_timeout_ms) + Duration::from_secs(3)),
    );
}
