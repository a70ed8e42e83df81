//! The admin API's listener (`INTENTGATE_ADMIN_ADDR`): its state, the secret the data plane's
//! relay proves itself with, and its graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use intentgate_controlplane::admin::{self, AdminState, auth::AdminAuth};
use intentgate_controlplane::approvals::Approvals;
use intentgate_controlplane::metrics::{self, AdminRequests};
use intentgate_controlplane::policies::PolicyManager;
use intentgate_controlplane::revocation::RevocationStore;
use intentgate_controlplane::siem;
use intentgate_dataplane::audit_ring::AuditProducer;
use intentgate_shared::snapshot::SnapshotCell;
use sqlx::PgPool;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Process;
use super::audit::Audit;

/// The stores the admin API reads and writes, and its own audit ring.
pub(super) struct AdminStores {
    pub(super) revocations: RevocationStore,
    pub(super) approvals: Option<Approvals>,
    pub(super) policies: Option<Arc<PolicyManager>>,
    pub(super) pool: Option<PgPool>,
    pub(super) audit: AuditProducer,
}

/// The running admin API (`addr` is `None` when no admin token is configured).
pub(super) struct AdminApi {
    pub(super) addr: Option<SocketAddr>,
    /// Known to this process's relay only: the admin API believes a relayed client address
    /// from it and from no other local process.
    pub(super) relay_secret: String,
    /// Requests counted for `/metrics`, when metrics are on.
    pub(super) requests: Option<Arc<AdminRequests>>,
    serving: Option<Serving>,
}

/// The admin API's server task and the sender that stops it gracefully.
struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub(super) fn start_admin_api(
    p: &Process,
    snapshot: &Arc<SnapshotCell>,
    audit: &Audit,
    stores: AdminStores,
) -> Result<AdminApi> {
    let relay_secret = relay_secret()?;
    let state = admin_state(p, snapshot, audit, stores, &relay_secret);
    let requests = p
        .cfg
        .metrics_enabled
        .then(|| Arc::new(AdminRequests::default()));
    let (addr, serving) = match admin::router(state) {
        Some(app) => {
            let (addr, serving) = serve(p, app, requests.as_ref())?;
            (Some(addr), Some(serving))
        }
        None => (None, None),
    };
    Ok(AdminApi {
        addr,
        relay_secret,
        requests,
        serving,
    })
}

/// 32 random bytes, hex.
fn relay_secret() -> Result<String> {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| anyhow::anyhow!("the system RNG failed"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

fn admin_state(
    p: &Process,
    snapshot: &Arc<SnapshotCell>,
    audit: &Audit,
    stores: AdminStores,
    relay_secret: &str,
) -> Arc<AdminState> {
    let cfg = &p.cfg;
    Arc::new(AdminState {
        auth: AdminAuth::new(cfg.admin_token.as_ref(), &cfg.tenant_admins)
            .with_previous(cfg.admin_token_previous.as_ref()),
        keys: cfg.keys.clone(),
        snapshot: Arc::clone(snapshot),
        revocations: stores.revocations,
        audit: std::sync::Mutex::new(Box::new(stores.audit)),
        approvals: stores.approvals,
        audit_store: stores.pool.filter(|_| cfg.audit_persist),
        audit_public_key: audit.writer.public_key.clone(),
        policies: stores.policies,
        policy_syntax: cfg.policy_syntax,
        relay_secret: Some(admin::relay_secret_digest(relay_secret)),
        integrations: admin::Integrations {
            forwarders: audit
                .siem
                .as_ref()
                .map(|s| s.statuses.clone())
                .unwrap_or_default(),
            webhook: cfg
                .webhook
                .as_ref()
                .zip(audit.webhooks.clone())
                .map(|(w, stats)| (siem::display_url(&w.url), stats)),
        },
    })
}

/// Binds `INTENTGATE_ADMIN_ADDR` and serves `app` on the control plane runtime until stopped.
fn serve(
    p: &Process,
    app: axum::Router,
    requests: Option<&Arc<AdminRequests>>,
) -> Result<(SocketAddr, Serving)> {
    let cfg = &p.cfg;
    let app = match requests {
        Some(m) => app.layer(axum::middleware::from_fn_with_state(
            Arc::clone(m),
            metrics::track_admin,
        )),
        None => app,
    };
    let listener = p
        .rt
        .block_on(tokio::net::TcpListener::bind(cfg.admin_addr))
        .with_context(|| format!("INTENTGATE_ADMIN_ADDR: cannot listen on {}", cfg.admin_addr))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = p.rt.spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, service).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = served.await {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    tracing::info!(%addr, "admin API listening");
    Ok((addr, Serving { stop, task }))
}

/// Shutdown: stop accepting admin requests and let in-flight ones finish (and record their
/// audit events), within 5 s.
pub(super) fn stop_admin_api(rt: &Runtime, admin: AdminApi) {
    if let Some(Serving { stop, task }) = admin.serving {
        let _ = stop.send(());
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await });
    }
}
