//! `intentgate serve` and `intentgate dev`: wire configuration, snapshot, budgets, audit and
//! the data plane workers together, then wait for SIGTERM / Ctrl-C and shut down in order
//! (stop accepting, finish in-flight calls, drain the audit rings).
//!
//! `run` is the whole process as a list: one `start_*` per subsystem, in the order they
//! depend on each other, then `shutdown`. Each subsystem's wiring is in the module named
//! after it.

mod admin_listener;
mod audit;
mod data_plane;
mod metrics_listener;
mod plan;
mod signals;
mod stores;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use intentgate_controlplane::otlp;
use intentgate_dataplane::approvals::ApprovalQueue;
use intentgate_dataplane::demo_upstream;
use intentgate_dataplane::runtime::Running;
use intentgate_dataplane::upstream::UpstreamTarget;
use intentgate_shared::config::{Config, Secret};
use intentgate_shared::key_ring::MasterKey;
use intentgate_shared::policy::{Policy, Syntax};
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::{Caveat, MintRequest, Token};

use admin_listener::{AdminApi, AdminStores};
use audit::Audit;
use plan::Plan;
use signals::Signals;

/// What every subsystem starts with: the configuration, the data plane's thread count, this
/// process's replica id, and the control plane's runtime.
struct Process {
    cfg: Config,
    threads: usize,
    replica: String,
    rt: tokio::runtime::Runtime,
}

/// The control plane's own runtime: small, and never shared with the data plane cores.
fn start_runtime(cfg: Config) -> Result<Process> {
    let threads = plan::dataplane_threads(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("controlplane")
        .enable_all()
        .build()
        .context("cannot start the control plane runtime")?;
    let replica = plan::replica_id(&cfg);
    Ok(Process {
        cfg,
        threads,
        replica,
        rt,
    })
}

fn run(plan: Plan, banner: impl FnOnce(&Running, Option<SocketAddr>)) -> Result<()> {
    let Plan {
        cfg,
        policy,
        upstream,
    } = plan;
    let p = start_runtime(cfg)?;
    let pool = stores::start_database(&p)?;
    let revocations = stores::start_revocations(&p, pool.as_ref())?;
    let snapshot = stores::initial_snapshot(&p.cfg, revocations.loaded, &policy);
    let approvals = stores::start_approvals(&p, pool.as_ref());
    let shared = data_plane::state(&p, snapshot, approvals.queue.clone());
    let policies = stores::start_policy_store(&p, pool.as_ref(), &shared.snapshot, policy)?;
    let traces = audit::start_tracing(&p)?;
    let (audit, producers) = audit::start_audit(
        &p,
        pool.as_ref(),
        shared.commit_watch.clone(),
        traces.as_ref(),
    )?;
    let admin_stores = AdminStores {
        revocations: revocations.store,
        approvals: approvals.admin,
        policies: policies.clone(),
        pool: pool.clone(),
        audit: producers.admin,
    };
    let admin = admin_listener::start_admin_api(&p, &shared.snapshot, &audit, admin_stores)?;
    let queue = approvals.queue;
    stores::start_notify(&p, pool, &shared.snapshot, queue.clone(), policies.clone());
    let sc = data_plane::config(&p, upstream, &admin)?;
    let _metrics = metrics_listener::start_metrics(
        &p,
        &shared,
        &audit,
        &admin,
        queue.clone(),
        traces.as_ref(),
    )?;
    let signals = Signals::install()?;
    let running = data_plane::start(&p, sc, &shared, producers.cores)?;
    banner(&running, admin.addr);
    signals.wait();
    shutdown(p, running, admin, audit, queue.as_deref(), traces);
    Ok(())
}

/// The shutdown order, each step waiting for the one before: the drain delay (`/healthz`
/// 503), stop accepting and finish in-flight calls, stop the admin API (its last audit
/// events), flush the audit (drain, then writer), let the SIEM forwarders and the trace
/// export send what they hold, stop the runtime.
fn shutdown(
    p: Process,
    running: Running,
    admin: AdminApi,
    audit: Audit,
    approvals: Option<&ApprovalQueue>,
    traces: Option<otlp::Running>,
) {
    let Process { cfg, rt, .. } = p;
    data_plane::drain_delay(&cfg, &running);
    data_plane::finish_in_flight(&cfg, running, approvals);
    admin_listener::stop_admin_api(&rt, admin);
    audit::flush(&rt, audit.drain, audit.writer);
    audit::stop_siem(&rt, audit.siem);
    audit::stop_tracing(&rt, traces);
    rt.shutdown_timeout(Duration::from_secs(5));
    let records = audit
        .counters
        .delivered
        .load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(records, "audit drained; bye");
}

/// `intentgate serve`.
pub fn serve() -> Result<()> {
    let cfg = Config::from_env()?;
    plan::refuse_unsupported(&cfg)?;
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

    let policy = plan::load_policy(&cfg)?;
    let roots = plan::extra_roots(&cfg)?;
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
    plan::refuse_unsupported(&cfg)?;
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
