//! Cross-replica propagation over Postgres LISTEN/NOTIFY: revocations
//! (`intentgate_revocations`, payload `tenant` 0x1E `jti`) and approval decisions
//! (`intentgate_approvals`, payload the pending id, compat). A revoke on one replica is
//! denied on the others within one notification round trip; the periodic full resync stays
//! as the safety net for notifications lost while the connection was down.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use intentgate_shared::approval::PendingApprovals;
use intentgate_shared::snapshot::SnapshotCell;

use crate::policies::PolicyManager;
use crate::revocation;
use crate::store;

/// What a notification can change in this process.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The snapshot the data plane reads.
    pub snapshot: Arc<SnapshotCell>,
    /// The local approvals queue, when approvals are shared through Postgres.
    pub approvals: Option<Arc<dyn PendingApprovals>>,
    /// The policy lifecycle, when it is shared through Postgres.
    pub policies: Option<Arc<PolicyManager>>,
}

/// Listens until the process stops, reconnecting after errors.
pub async fn listen(pool: PgPool, targets: Targets) {
    loop {
        match session(&pool, &targets).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn session(pool: &PgPool, targets: &Targets) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all([
            store::REVOCATIONS_CHANNEL,
            store::approvals::CHANNEL,
            store::policies::CHANNEL,
        ])
        .await?;
    // Anything announced before this point was missed: catch up once.
    catch_up(pool, targets).await;
    loop {
        // `None`: the connection dropped and the next call reconnects; notifications sent
        // in between are lost, so catch up again.
        match listener.try_recv().await? {
            Some(n) => dispatch(pool, targets, n.channel(), n.payload()).await,
            None => catch_up(pool, targets).await,
        }
    }
}

async fn dispatch(pool: &PgPool, targets: &Targets, channel: &str, payload: &str) {
    if channel == store::REVOCATIONS_CHANNEL {
        match payload.split_once('\u{1e}') {
            Some((tenant, jti)) => revocation::publish(&targets.snapshot, jti, tenant),
            None => tracing::warn!("malformed revocation notification ignored"),
        }
    } else if channel == store::approvals::CHANNEL
        && let Some(queue) = &targets.approvals
    {
        crate::approvals::on_notify(pool, queue.as_ref(), payload).await;
    } else if channel == store::policies::CHANNEL
        && let Some(m) = &targets.policies
    {
        let slot = payload.split('\u{1e}').next().unwrap_or_default();
        if let Err(e) = m.reload(slot).await {
            tracing::error!(error = %e, slot, "cannot load the policy another replica promoted");
        }
    }
}

async fn catch_up(pool: &PgPool, targets: &Targets) {
    match store::all_revocations(pool).await {
        Ok(pairs) => revocation::publish_all(&targets.snapshot, &pairs),
        Err(e) => tracing::warn!(error = %e, "revocation catch-up failed"),
    }
    if let Some(queue) = &targets.approvals {
        crate::approvals::resync(pool, queue.as_ref()).await;
    }
    // Only the slots that changed while the connection was down are recompiled.
    if let Some(m) = &targets.policies
        && let Err(e) = m.resync().await
    {
        tracing::error!(error = %e, "policy catch-up failed");
    }
}
