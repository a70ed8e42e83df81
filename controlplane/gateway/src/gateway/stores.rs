//! The control plane's state: the database, revocations, approvals and the policy store, the
//! first snapshot built from them, and the LISTEN/NOTIFY propagation that keeps them in step
//! with other replicas.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use intentgate_controlplane::approvals::{self, Approvals};
use intentgate_controlplane::policies::{PolicyManager, PolicyStore};
use intentgate_controlplane::revocation::{self, RevocationStore};
use intentgate_controlplane::{notify, store};
use intentgate_dataplane::approvals::ApprovalQueue;
use intentgate_shared::approval::PendingApprovals;
use intentgate_shared::config::{Config, StoreBackend};
use intentgate_shared::policy::Policy;
use intentgate_shared::snapshot::{RevocationSet, Snapshot, SnapshotCell};
use intentgate_shared::timestamp::Timestamp;
use sqlx::PgPool;

use super::Process;

/// Connects to `INTENTGATE_POSTGRES_URL` (when set) and applies the migrations.
pub(super) fn start_database(p: &Process) -> Result<Option<PgPool>> {
    Ok(match &p.cfg.postgres_url {
        Some(url) => Some(p.rt.block_on(async {
            let pool = store::connect(url.expose(), 5).await?;
            let applied = store::migrate(&pool).await?;
            tracing::info!(?applied, "database schema up to date");
            Ok::<_, store::StoreError>(pool)
        })?),
        None => None,
    })
}

/// The revocation store and what it held at startup.
pub(super) struct Revocations {
    pub(super) store: RevocationStore,
    pub(super) loaded: RevocationSet,
}

pub(super) fn start_revocations(p: &Process, pool: Option<&PgPool>) -> Result<Revocations> {
    let store = match pool {
        Some(pool) => RevocationStore::Postgres(pool.clone()),
        None => RevocationStore::memory(),
    };
    let mut loaded = RevocationSet::default();
    for (jti, tenant) in
        p.rt.block_on(store.all())
            .context("cannot load revocations")?
    {
        loaded.insert(&jti, &tenant);
    }
    Ok(Revocations { store, loaded })
}

/// Version 0 of the snapshot: the configured keys, the loaded revocations, the startup
/// policy for every tenant.
pub(super) fn initial_snapshot(cfg: &Config, revoked: RevocationSet, policy: &Policy) -> Snapshot {
    Snapshot {
        version: 0,
        built_at: Timestamp::now(),
        keys: cfg.keys.clone(),
        revoked: Arc::new(revoked),
        default_policy: policy.clone(),
        tenant_policies: Arc::new(HashMap::new()),
    }
}

/// The data plane's queue of waiting calls and the admin API's view of it (both absent when
/// approvals are off).
pub(super) struct ApprovalsHandle {
    pub(super) queue: Option<Arc<ApprovalQueue>>,
    pub(super) admin: Option<Approvals>,
}

pub(super) fn start_approvals(p: &Process, pool: Option<&PgPool>) -> ApprovalsHandle {
    let window_s = p.cfg.approval_timeout_s;
    let (queue, admin) = match (p.cfg.approvals_backend, pool) {
        (StoreBackend::Postgres, Some(pool)) => {
            let (mirror, writer) = approvals::mirror(pool.clone(), p.replica.clone());
            let queue = Arc::new(ApprovalQueue::with_mirror(mirror));
            p.rt.spawn(writer);
            p.rt.spawn(approvals::sweep_orphans(
                pool.clone(),
                p.replica.clone(),
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
    ApprovalsHandle { queue, admin }
}

/// Promoted drafts replace the startup policy per slot; a draft that no longer compiles
/// stops startup rather than running without it.
pub(super) fn start_policy_store(
    p: &Process,
    pool: Option<&PgPool>,
    snapshot: &Arc<SnapshotCell>,
    policy: Policy,
) -> Result<Option<Arc<PolicyManager>>> {
    let cfg = &p.cfg;
    let store = match (cfg.policy_store, pool) {
        (StoreBackend::Off, _) => return Ok(None),
        (StoreBackend::Postgres, Some(pool)) => PolicyStore::Postgres(pool.clone()),
        _ => PolicyStore::Memory(std::sync::Mutex::default()),
    };
    let label = cfg
        .policy_file
        .as_ref()
        .map_or("embedded default".to_owned(), |path| {
            format!("file:{}", path.display())
        });
    let m = Arc::new(PolicyManager::new(
        store,
        Arc::clone(snapshot),
        cfg.policy_syntax,
        (policy, label),
    ));
    let loaded =
        p.rt.block_on(m.load_all())
            .context("INTENTGATE_POLICY_STORE: cannot load the active policies")?;
    tracing::info!(slots = loaded, "active policies loaded");
    Ok(Some(m))
}

/// Other replicas' revocations and approval decisions arrive by NOTIFY; the periodic resync
/// is the safety net. While it fails the snapshot ages, and past
/// INTENTGATE_SNAPSHOT_MAX_STALENESS_S calls are refused. Nothing to do without Postgres.
pub(super) fn start_notify(
    p: &Process,
    pool: Option<PgPool>,
    snapshot: &Arc<SnapshotCell>,
    approvals: Option<Arc<ApprovalQueue>>,
    policies: Option<Arc<PolicyManager>>,
) {
    let Some(pool) = pool else {
        return;
    };
    let targets = notify::Targets {
        snapshot: Arc::clone(snapshot),
        approvals: approvals
            .filter(|q| q.is_mirrored())
            .map(|q| q as Arc<dyn PendingApprovals>),
        policies: policies.clone(),
    };
    p.rt.spawn(notify::listen(pool.clone(), targets));
    let max = Duration::from_secs(p.cfg.snapshot_max_staleness_s);
    if let Some(m) = policies {
        p.rt.spawn(resync_policies(m));
    }
    p.rt.spawn(resync_revocations(pool, Arc::clone(snapshot), max));
}

/// Reloads the revocation set from Postgres every third of the staleness bound (at most
/// every 5 s) and publishes it when it changed.
async fn resync_revocations(pool: PgPool, snapshot: Arc<SnapshotCell>, max_staleness: Duration) {
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
