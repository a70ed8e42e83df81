//! `intentgate serve` and `intentgate dev`: wire configuration, snapshot, budgets, audit and
//! the data plane workers together, then wait for SIGTERM / Ctrl-C and shut down in order
//! (stop accepting, finish in-flight calls, drain the audit rings).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use intentgate_controlplane::admin::{self, AdminState, auth::AdminAuth};
use intentgate_controlplane::approvals::{self, Approvals};
use intentgate_controlplane::chain_writer::{self, WriterOptions, WriterStats};
use intentgate_controlplane::checkpoint::Signer;
use intentgate_controlplane::policies::{PolicyManager, PolicyStore};
use intentgate_controlplane::revocation::{self, RevocationStore};
use intentgate_controlplane::{metrics, notify, otlp, siem, store, webhook};
use intentgate_dataplane::approvals::ApprovalQueue;
use intentgate_dataplane::audit_ring::{self, AuditCounters, AuditSink, CommitWatch, MemorySink};
use intentgate_dataplane::budget::Budget;
use intentgate_dataplane::demo_upstream;
use intentgate_dataplane::pipeline::Settings;
use intentgate_dataplane::server::{self, ServerConfig, Shared};
use intentgate_dataplane::upstream::UpstreamTarget;
use intentgate_shared::config::{AuditDurability, AuditTarget, Config, Secret, StoreBackend};
use intentgate_shared::key_ring::MasterKey;
use intentgate_shared::policy::{Policy, Syntax};
use intentgate_shared::snapshot::{RevocationSet, Snapshot, SnapshotCell};
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::{Caveat, MintRequest, Token};

/// How long in-flight calls get to finish on shutdown.
const GRACE: Duration = Duration::from_secs(15);

/// Features configured that this build does not provide yet: refusing to start beats
/// silently running without them.
fn refuse_unsupported(cfg: &Config) -> Result<()> {
    let mut missing = Vec::new();
    if cfg.redis_url.is_some() {
        missing.push("INTENTGATE_REDIS_URL (budgets are kept in process, exact across cores)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        bail!(
            "not supported by this build yet: {} — unset them to start",
            missing.join(", ")
        )
    }
}

fn load_policy(cfg: &Config) -> Result<Policy> {
    match &cfg.policy_file {
        Some(path) => {
            let src = std::fs::read_to_string(path).with_context(|| {
                format!("INTENTGATE_POLICY_FILE: cannot read {}", path.display())
            })?;
            Policy::compile(&src, cfg.policy_syntax).map_err(|e| {
                anyhow::anyhow!(
                    "INTENTGATE_POLICY_FILE: {}: {}",
                    path.display(),
                    e.one_line()
                )
            })
        }
        None => Ok(Policy::default_policy()?),
    }
}

struct Plan {
    cfg: Config,
    policy: Policy,
    upstream: Option<UpstreamTarget>,
}

/// Extra trust roots for https upstreams and extractors (`INTENTGATE_UPSTREAM_CA_FILE`).
fn extra_roots(cfg: &Config) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    Ok(match &cfg.upstream_ca_file {
        Some(path) => intentgate_dataplane::upstream::load_ca_file(path)?,
        None => Vec::new(),
    })
}

/// The extractor endpoint `{INTENTGATE_EXTRACTOR_URL}/v1/extract` (10 s, as the Go gateway).
fn extractor(cfg: &Config) -> Result<Option<UpstreamTarget>> {
    cfg.extractor_url
        .as_deref()
        .map(|u| {
            let url = format!("{}/v1/extract", u.trim_end_matches('/'));
            UpstreamTarget::parse(&url, Duration::from_secs(10), 1 << 20, &extra_roots(cfg)?)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}",
                        e.to_string()
                            .replace("INTENTGATE_UPSTREAM_URL", "INTENTGATE_EXTRACTOR_URL")
                    )
                })
        })
        .transpose()
}

fn settings(cfg: &Config) -> Settings {
    Settings {
        require_capability: cfg.require_capability,
        require_intent: cfg.require_intent,
        require_budget: cfg.require_budget,
    }
}

fn run(plan: Plan, banner: impl FnOnce(&server::Running, Option<SocketAddr>)) -> Result<()> {
    let Plan {
        cfg,
        policy,
        upstream,
    } = plan;
    let threads = cfg.dataplane_threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    );
    // The control plane's own runtime: small, and never shared with the data plane cores.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("controlplane")
        .enable_all()
        .build()
        .context("cannot start the control plane runtime")?;
    let pool = match &cfg.postgres_url {
        Some(url) => Some(rt.block_on(async {
            let pool = store::connect(url.expose(), 5).await?;
            let applied = store::migrate(&pool).await?;
            tracing::info!(?applied, "database schema up to date");
            Ok::<_, store::StoreError>(pool)
        })?),
        None => None,
    };
    let revocations = match &pool {
        Some(pool) => RevocationStore::Postgres(pool.clone()),
        None => RevocationStore::memory(),
    };
    let mut revoked = RevocationSet::default();
    for (jti, tenant) in rt
        .block_on(revocations.all())
        .context("cannot load revocations")?
    {
        revoked.insert(&jti, &tenant);
    }
    let snapshot = Snapshot {
        version: 0,
        built_at: Timestamp::now(),
        keys: cfg.keys.clone(),
        revoked: Arc::new(revoked),
        default_policy: policy.clone(),
        tenant_policies: Arc::new(HashMap::new()),
    };
    let replica = replica_id(&cfg);
    let window_s = cfg.approval_timeout_s;
    let (approvals, admin_approvals) = match (cfg.approvals_backend, &pool) {
        (StoreBackend::Postgres, Some(pool)) => {
            let (queue, writer) = approvals::mirrored(pool.clone(), replica.clone());
            rt.spawn(writer);
            rt.spawn(approvals::sweep_orphans(
                pool.clone(),
                replica.clone(),
                Duration::from_secs(window_s),
            ));
            let admin = Approvals::Postgres {
                pool: pool.clone(),
                window_s,
            };
            (Some(queue), Some(admin))
        }
        (StoreBackend::Memory, _) => {
            let queue = Arc::new(ApprovalQueue::default());
            (Some(Arc::clone(&queue)), Some(Approvals::Memory(queue)))
        }
        // Off (a Postgres backend without a URL is refused by the configuration).
        _ => (None, None),
    };
    let approvals_for_shutdown = approvals.clone();
    // One counter per ring: the data plane cores and the control plane's.
    let commit_watch = (cfg.audit_durability == AuditDurability::Sync)
        .then(|| Arc::new(CommitWatch::new(threads + 1)));
    let shared = Arc::new(Shared {
        snapshot: Arc::new(SnapshotCell::new(snapshot)),
        budget: Arc::new(Budget::new(
            cfg.budget_agent_per_hour,
            cfg.budget_tenant_per_hour,
        )),
        stopping: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
        approvals: approvals.clone(),
        commit_watch: commit_watch.clone(),
        metrics: Arc::new(intentgate_dataplane::metrics::Metrics::new(threads)),
    });
    // Promoted drafts replace the startup policy per slot; a draft that no longer compiles
    // stops startup rather than running without it.
    let policies = match (cfg.policy_store, &pool) {
        (StoreBackend::Off, _) => None,
        (backend, pool) => {
            let store = match (backend, pool) {
                (StoreBackend::Postgres, Some(pool)) => PolicyStore::Postgres(pool.clone()),
                _ => PolicyStore::Memory(std::sync::Mutex::default()),
            };
            let label = cfg
                .policy_file
                .as_ref()
                .map_or("embedded default".to_owned(), |p| {
                    format!("file:{}", p.display())
                });
            let m = Arc::new(PolicyManager::new(
                store,
                Arc::clone(&shared.snapshot),
                cfg.policy_syntax,
                (policy, label),
            ));
            let loaded = rt
                .block_on(m.load_all())
                .context("INTENTGATE_POLICY_STORE: cannot load the active policies")?;
            tracing::info!(slots = loaded, "active policies loaded");
            Some(m)
        }
    };
    let traces = match &cfg.otel {
        Some(otel) => {
            let _in_runtime = rt.enter();
            Some(
                otlp::start(otel, &replica)
                    .context("OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the HTTP client")?,
            )
        }
        None => None,
    };
    let counters = Arc::new(AuditCounters::default());
    let stdout = cfg.audit_target == AuditTarget::Stdout;
    let writer_stats = Arc::new(WriterStats::default());
    let mut audit_public_key = None;
    let (sink, writer): (Box<dyn AuditSink>, _) = match (&pool, cfg.audit_persist) {
        (Some(pool), true) => {
            let signer = cfg
                .audit_signing_key
                .as_ref()
                .map(|k| Signer::from_seed(k.expose()))
                .transpose()
                .context("INTENTGATE_AUDIT_SIGNING_KEY")?
                .map(Arc::new);
            if let Some(s) = &signer {
                tracing::info!(key_id = s.key_id(), public_key = %s.public_key(), "signing audit checkpoints");
                audit_public_key = Some(s.public_key());
            }
            let options = WriterOptions {
                stdout,
                watch: commit_watch.clone(),
                signer,
                trace: traces.as_ref().map(|t| t.exporter.clone()),
            };
            let (sink, task) =
                chain_writer::start(pool.clone(), Arc::clone(&writer_stats), options);
            (Box::new(sink), Some(rt.spawn(task)))
        }
        _ => (Box::new(MemorySink::new(10_000, stdout)), None),
    };
    let webhook_stats = cfg
        .webhook
        .as_ref()
        .map(|_| Arc::new(webhook::WebhookStats::default()));
    let sink: Box<dyn AuditSink> = match (&cfg.webhook, &webhook_stats) {
        (Some(w), Some(stats)) => {
            let _in_runtime = rt.enter();
            tracing::info!(events = ?w.events, "webhooks on");
            Box::new(
                webhook::start(sink, w, Arc::clone(stats))
                    .context("INTENTGATE_WEBHOOK_URL: cannot build the HTTP client")?,
            )
        }
        _ => sink,
    };
    let siem = {
        let _in_runtime = rt.enter();
        siem::start(&cfg, &replica).context("INTENTGATE_SIEM_*: cannot build the HTTP client")?
    };
    let sink: Box<dyn AuditSink> = match &siem {
        Some(siem) => Box::new(siem.tap(sink)),
        None => sink,
    };
    let sink: Box<dyn AuditSink> = match &traces {
        Some(t) => Box::new(otlp::TraceTap::new(sink, t.exporter.clone())),
        None => sink,
    };
    rt.spawn(report_refusals(Arc::clone(&counters)));
    // One ring per data plane core, plus one for the control plane's admin events.
    let (mut producers, drain) = audit_ring::start(threads + 1, sink, Arc::clone(&counters));
    let admin_producer = producers
        .pop()
        .context("audit ring for the control plane")?;

    // Known to this process's relay only: the admin API believes a relayed client address
    // from it and from no other local process.
    let relay_secret = {
        let mut b = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
            .map_err(|_| anyhow::anyhow!("the system RNG failed"))?;
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    let state = Arc::new(AdminState {
        auth: AdminAuth::new(cfg.admin_token.as_ref(), &cfg.tenant_admins)
            .with_previous(cfg.admin_token_previous.as_ref()),
        keys: cfg.keys.clone(),
        snapshot: Arc::clone(&shared.snapshot),
        revocations,
        audit: std::sync::Mutex::new(admin_producer),
        approvals: admin_approvals,
        audit_store: pool.clone().filter(|_| cfg.audit_persist),
        audit_public_key,
        policies: policies.clone(),
        policy_syntax: cfg.policy_syntax,
        relay_secret: Some(admin::relay_secret_digest(&relay_secret)),
        integrations: admin::Integrations {
            forwarders: siem
                .as_ref()
                .map(|s| s.statuses.clone())
                .unwrap_or_default(),
            webhook: cfg
                .webhook
                .as_ref()
                .zip(webhook_stats.clone())
                .map(|(w, stats)| (siem::display_url(&w.url), stats)),
        },
    });
    let admin_requests = cfg
        .metrics_enabled
        .then(|| Arc::new(metrics::AdminRequests::default()));
    let (admin_addr, admin_stop) = match admin::router(state) {
        Some(app) => {
            let app = match &admin_requests {
                Some(m) => app.layer(axum::middleware::from_fn_with_state(
                    Arc::clone(m),
                    metrics::track_admin,
                )),
                None => app,
            };
            let listener = rt
                .block_on(tokio::net::TcpListener::bind(cfg.admin_addr))
                .with_context(|| {
                    format!("INTENTGATE_ADMIN_ADDR: cannot listen on {}", cfg.admin_addr)
                })?;
            let addr = listener.local_addr()?;
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let handle = rt.spawn(async move {
                let service = app.into_make_service_with_connect_info::<SocketAddr>();
                let served = axum::serve(listener, service).with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                });
                if let Err(e) = served.await {
                    tracing::error!(error = %e, "admin API stopped");
                }
            });
            tracing::info!(%addr, "admin API listening");
            (Some(addr), Some((stop_tx, handle)))
        }
        None => (None, None),
    };

    if let Some(pool) = pool {
        // Other replicas' revocations and approval decisions arrive by NOTIFY; the periodic
        // resync is the safety net. While it fails the snapshot ages, and past
        // INTENTGATE_SNAPSHOT_MAX_STALENESS_S calls are refused.
        let targets = notify::Targets {
            snapshot: Arc::clone(&shared.snapshot),
            approvals: approvals.clone().filter(|q| q.is_mirrored()),
            policies: policies.clone(),
        };
        rt.spawn(notify::listen(pool.clone(), targets));
        let max = Duration::from_secs(cfg.snapshot_max_staleness_s);
        if let Some(m) = policies.clone() {
            rt.spawn(resync_policies(m));
        }
        rt.spawn(resync_revocations(pool, Arc::clone(&shared.snapshot), max));
    }
    let mut sc = ServerConfig::new(cfg.addr, settings(&cfg));
    if cfg.postgres_url.is_some() {
        sc.max_staleness = Some(Duration::from_secs(cfg.snapshot_max_staleness_s));
    }
    sc.threads = threads;
    sc.max_body = cfg.max_body_bytes;
    sc.upstream = upstream;
    sc.extractor = extractor(&cfg)?;
    sc.approval_timeout = Duration::from_secs(cfg.approval_timeout_s);
    sc.trace_sampler = cfg.otel.as_ref().map(|o| o.sampler);
    sc.origins = intentgate_dataplane::origin::OriginPolicy::from_list(&cfg.allowed_origins);
    sc.oauth = cfg
        .oauth
        .as_ref()
        .map(intentgate_dataplane::resource_metadata::ResourceMetadata::new);
    // In-flight forwards may take the whole upstream timeout: give them that long to finish
    // (and be audited) before a worker stops.
    sc.drain_timeout =
        GRACE.max(Duration::from_millis(cfg.upstream_timeout_ms) + Duration::from_secs(2));
    if let (Some(addr), true) = (admin_addr, cfg.admin_on_data_port) {
        sc.admin_relay_secret = Some(relay_secret);
        sc.admin_relay = Some(UpstreamTarget::parse(
            &format!("http://{addr}/"),
            Duration::from_secs(30),
            4 << 20,
            &[],
        )?);
    }
    let _metrics_stop = if cfg.metrics_enabled {
        let sources = Arc::new(metrics::Sources {
            dataplane: Arc::clone(&shared.metrics),
            audit: Arc::clone(&counters),
            writer: writer.is_some().then(|| Arc::clone(&writer_stats)),
            approvals: approvals.clone(),
            snapshot: Arc::clone(&shared.snapshot),
            webhook: webhook_stats.clone(),
            siem: siem
                .as_ref()
                .map(|s| s.statuses.clone())
                .unwrap_or_default(),
            admin: admin_requests.clone(),
            traces: traces.as_ref().map(|t| Arc::clone(&t.stats)),
        });
        let (addr, stop) = rt
            .block_on(metrics::serve(cfg.metrics_addr, sources))
            .with_context(|| {
                format!(
                    "INTENTGATE_METRICS_ADDR: cannot listen on {}",
                    cfg.metrics_addr
                )
            })?;
        tracing::info!(%addr, "metrics listening");
        Some(stop)
    } else {
        None
    };
    let signals = Signals::install()?;
    let running = server::start(sc, Arc::clone(&shared), producers)
        .with_context(|| format!("cannot start the data plane on {}", cfg.addr))?;
    tracing::info!(addr = %running.local_addr, driver = running.driver, threads, "data plane listening");
    banner(&running, admin_addr);
    signals.wait();
    if cfg.shutdown_delay_s > 0 {
        tracing::info!(
            seconds = cfg.shutdown_delay_s,
            "draining: /healthz answers 503 while calls are still served"
        );
        running.start_draining();
        std::thread::sleep(Duration::from_secs(cfg.shutdown_delay_s));
    }
    tracing::info!("shutting down: no new connections; finishing in-flight calls");
    // Calls waiting for a reviewer answer now (approval window expired) and are audited.
    if let Some(queue) = &approvals_for_shutdown {
        queue.expire_all();
    }
    running.shutdown(
        GRACE.max(Duration::from_millis(cfg.upstream_timeout_ms) + Duration::from_secs(3)),
    );
    if let Some((stop, handle)) = admin_stop {
        let _ = stop.send(());
        // Let in-flight admin requests finish (and record their audit events).
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), handle).await });
    }
    // The drain hands its last records to the writer, which ends once it persisted them.
    drain.stop();
    if let Some(writer) = writer {
        let waited =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), writer).await });
        if waited.is_err() {
            tracing::error!(
                persisted = writer_stats
                    .persisted
                    .load(std::sync::atomic::Ordering::Relaxed),
                "audit writer could not finish within 10s (Postgres unreachable?): the records it still held are not persisted"
            );
        }
    }
    if let Some(siem) = siem {
        // The drain has handed over its last records: give the forwarders a bounded time to
        // send what they hold (their receivers may be down).
        let unsent = rt.block_on(siem.shutdown(Duration::from_secs(10)));
        for (sink, events) in unsent {
            tracing::error!(
                sink,
                events,
                "siem forwarder could not send everything within 10s: these records are not forwarded"
            );
        }
    }
    if let Some(t) = traces {
        rt.block_on(t.shutdown(Duration::from_secs(3)));
    }
    rt.shutdown_timeout(Duration::from_secs(5));
    tracing::info!(
        records = counters
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed),
        "audit drained; bye"
    );
    Ok(())
}

/// Reloads the revocation set from Postgres every third of the staleness bound (at most
/// every 5 s) and publishes it when it changed.
async fn resync_revocations(
    pool: sqlx::PgPool,
    snapshot: Arc<SnapshotCell>,
    max_staleness: Duration,
) {
    let period = (max_staleness / 3).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        match store::all_revocations(&pool).await {
            Ok(pairs) => revocation::publish_all(&snapshot, &pairs),
            Err(e) => tracing::warn!(error = %e, "revocation resync failed; the snapshot is aging"),
        }
    }
}

/// Every 5 s (as the Go gateway polled), reloads the policy slots another replica changed
/// while a notification was lost.
async fn resync_policies(m: Arc<PolicyManager>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        match m.resync().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(slots = n, "policy resync picked up missed changes"),
            Err(e) => tracing::warn!(error = %e, "policy resync failed"),
        }
    }
}

/// `INTENTGATE_REPLICA_ID`, or `<hostname>:<port>`. It names the process holding a pending
/// approval's call, so it must be unique per running process: set it when two processes on
/// one host share a port.
fn replica_id(cfg: &Config) -> String {
    cfg.replica_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "intentgate".into());
        format!("{host}:{}", cfg.addr.port())
    })
}

/// Calls refused because the audit queue was full, reported once a second while it happens
/// (a line per refusal would flood the log exactly when it matters).
async fn report_refusals(counters: Arc<AuditCounters>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seen = 0;
    loop {
        tick.tick().await;
        let now = counters.refused.load(std::sync::atomic::Ordering::Relaxed);
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

/// SIGTERM and Ctrl-C, listened for from before the listeners open: a signal that arrives
/// right after startup is a shutdown, not a kill.
struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start signal runtime")?;
        let _in_runtime = rt.enter();
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("cannot listen for Ctrl-C")?;
        drop(_in_runtime);
        Ok(Self { rt, term, int })
    }

    fn wait(mut self) {
        self.rt.block_on(async {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        });
    }
}

/// `intentgate serve`.
pub fn serve() -> Result<()> {
    let cfg = Config::from_env()?;
    refuse_unsupported(&cfg)?;
    if cfg.keys.is_ephemeral() {
        tracing::warn!(
            "INTENTGATE_MASTER_KEY is unset: using a random key; tokens die with this process"
        );
    }
    if !cfg.require_capability {
        tracing::warn!(
            "INTENTGATE_REQUIRE_CAPABILITY=false: calls without a token reach the policy (unsafe)"
        );
    }

    let policy = load_policy(&cfg)?;
    let roots = extra_roots(&cfg)?;
    let upstream = cfg
        .upstream_url
        .as_deref()
        .map(|u| {
            UpstreamTarget::parse(
                u,
                Duration::from_millis(cfg.upstream_timeout_ms),
                cfg.max_body_bytes,
                &roots,
            )
        })
        .transpose()?;
    run(
        Plan {
            cfg,
            policy,
            upstream,
        },
        |_, _| {},
    )
}

/// `intentgate dev`: in-memory everything, the demo upstream and the runbook's policy, on
/// loopback unless `INTENTGATE_ADDR` says otherwise.
pub fn dev() -> Result<()> {
    let mut cfg = Config::from_source(|name| match name {
        // Loopback by default: a quickstart must not expose itself to the network.
        "INTENTGATE_ADDR" => Some(std::env::var(name).unwrap_or_else(|_| "127.0.0.1:8080".into())),
        "INTENTGATE_DATAPLANE_THREADS" => Some(std::env::var(name).unwrap_or_else(|_| "2".into())),
        "INTENTGATE_AUDIT_TARGET" => Some(std::env::var(name).unwrap_or_else(|_| "none".into())),
        _ => std::env::var(name).ok(),
    })?;
    refuse_unsupported(&cfg)?;
    let (demo_addr, _demo) = demo_upstream::start().context("cannot start the demo upstream")?;
    let upstream = UpstreamTarget::parse(
        &format!("http://{demo_addr}/mcp"),
        Duration::from_secs(10),
        cfg.max_body_bytes,
        &[],
    )?;
    cfg.upstream_url = Some(format!("http://{demo_addr}/mcp"));
    let policy = Policy::compile(demo_upstream::DEMO_POLICY, Syntax::V1)?;
    // The superadmin token: the operator's if set, else a fresh random one printed below.
    let admin_token = match &cfg.admin_token {
        Some(t) => t.expose().to_owned(),
        None => {
            let (_, token) = MasterKey::generate()?;
            cfg.admin_token = Some(Secret::new(token.clone()));
            token
        }
    };
    let now = Timestamp::now().unix_seconds();
    let agent = Token::mint(
        cfg.keys.current(),
        MintRequest {
            subject: "demo-agent".into(),
            issuer: "intentgate dev".into(),
            tenant: "default".into(),
            caveats: vec![
                Caveat::agent_lock("demo-agent"),
                Caveat::exp(now + 24 * 3600),
                Caveat::tool_allow(demo_upstream::TOOLS.iter().copied()),
            ],
            ..MintRequest::default()
        },
        now,
    )?;
    let agent_token = agent.encode();
    run(
        Plan {
            cfg,
            policy,
            upstream: Some(upstream),
        },
        move |running, admin_addr| {
            let url = format!("http://{}", running.local_addr);
            println!(
                "IntentGate dev gateway on {url} ({} driver); demo MCP upstream on {demo_addr}",
                running.driver
            );
            if let Some(addr) = admin_addr {
                println!("admin API on http://{addr} (also relayed at {url}/v1/admin/*)");
            }
            println!("admin token:      {admin_token}");
            println!("demo agent token: {agent_token}");
            println!("try it:");
            println!(
                "  curl -s {url}/v1/mcp -H 'Authorization: Bearer {agent_token}' -H 'Content-Type: application/json' \\\n    -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"read_invoice\",\"arguments\":{{\"id\":\"INV-42\"}}}}}}'"
            );
            println!("Ctrl-C to stop.");
        },
    )
}
