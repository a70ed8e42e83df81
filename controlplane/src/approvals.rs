//! Approvals for the admin API and, with Postgres, across replicas.
//!
//! In memory the data plane's approvals queue is the store (reached as [`PendingApprovals`]).
//! With Postgres the queue keeps only the calls waiting in this process: a [`PgMirror`]
//! (handed to the queue as its [`ApprovalMirror`]) writes each new row and each
//! expiry to `pending_approvals` (in order, off the data plane cores), any replica's admin
//! API decides there, and the NOTIFY of that decision ([`crate::notify`]) wakes the call
//! wherever it waits.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;

use intentgate_shared::approval::{
    ApprovalMirror, DecideError, Decided, PendingApprovals, PendingRequest, Status,
};

use crate::store::approvals as sql;

/// A change of the local queue on its way to Postgres.
#[derive(Debug)]
enum Change {
    Enqueued(Box<PendingRequest>),
    Expired(String),
}

/// Hands the queue's changes to [`write_changes`] (a channel send: never blocks a core).
#[derive(Debug)]
pub struct PgMirror {
    tx: mpsc::UnboundedSender<Change>,
}

impl ApprovalMirror for PgMirror {
    fn enqueued(&self, row: &PendingRequest) {
        let _ = self.tx.send(Change::Enqueued(Box::new(row.clone())));
    }

    fn expired(&self, pending_id: &str) {
        let _ = self.tx.send(Change::Expired(pending_id.to_owned()));
    }
}

/// The mirror to build the data plane's queue with (its rows then live in Postgres), and
/// the task that writes the queue's changes (spawn it on the control plane runtime).
pub fn mirror(pool: PgPool, replica: String) -> (Arc<PgMirror>, impl Future<Output = ()> + Send) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(PgMirror { tx }), write_changes(pool, replica, rx))
}

/// Writes changes in the order they happened, retrying each for a while: a row that never
/// reaches Postgres cannot be decided, and its call times out.
async fn write_changes(pool: PgPool, replica: String, mut rx: mpsc::UnboundedReceiver<Change>) {
    while let Some(change) = rx.recv().await {
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=6 {
            let done = match &change {
                Change::Enqueued(row) => sql::insert(&pool, row, &replica).await,
                Change::Expired(id) => sql::expire(&pool, id).await,
            };
            match done {
                Ok(()) => break,
                Err(e) if attempt == 6 => {
                    tracing::error!(error = %e, "approvals: giving up writing a change to Postgres");
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "approvals: Postgres write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }
}

/// What a stored decision means for the call waiting on it.
fn outcome(row: &PendingRequest) -> Option<Decided> {
    match row.status {
        Status::Approved | Status::Rejected => Some(Decided {
            approved: row.status == Status::Approved,
            decided_by: row.decided_by.clone(),
            note: row.decide_note.clone(),
        }),
        Status::Pending | Status::Timeout => None,
    }
}

/// Applies a settled row to the local queue: wakes its call with the decision, or lets it
/// go when the row timed out.
fn settle(queue: &dyn PendingApprovals, row: &PendingRequest) {
    match outcome(row) {
        Some(d) => {
            queue.resolve(&row.pending_id, d);
        }
        None if row.status == Status::Timeout => queue.expire(&row.pending_id),
        None => {}
    }
}

/// A NOTIFY on the approvals channel: `pending_id` changed.
pub async fn on_notify(pool: &PgPool, queue: &dyn PendingApprovals, pending_id: &str) {
    if !queue.is_waiting(pending_id) {
        return; // another replica's call
    }
    match sql::get(pool, pending_id).await {
        Ok(Some(row)) => settle(queue, &row),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "approvals: cannot read a decided row"),
    }
}

/// After the listener reconnected: notifications may have been missed, so settle every
/// waiting call whose row is no longer pending.
pub async fn resync(pool: &PgPool, queue: &dyn PendingApprovals) {
    let ids = queue.waiting();
    if ids.is_empty() {
        return;
    }
    match sql::settled(pool, &ids).await {
        Ok(rows) => rows.iter().for_each(|r| settle(queue, r)),
        Err(e) => tracing::warn!(error = %e, "approvals: resync after reconnect failed"),
    }
}

/// Times out orphaned rows: at start, those of this replica's previous life; then, every
/// minute, anyone's older than the approval window plus a minute.
pub async fn sweep_orphans(pool: PgPool, replica: String, window: Duration) {
    let older = window.as_secs().saturating_add(60);
    match sql::expire_orphans(&pool, Some(&replica), older).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "approvals: timed out rows orphaned by a restart"),
        Err(e) => tracing::warn!(error = %e, "approvals: orphan sweep failed"),
    }
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        match sql::expire_orphans(&pool, None, older).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "approvals: timed out abandoned rows"),
            Err(e) => tracing::warn!(error = %e, "approvals: orphan sweep failed"),
        }
    }
}

/// Where the admin API lists and decides approvals.
#[derive(Debug)]
pub enum Approvals {
    /// This process's queue is the store.
    Memory(Arc<dyn PendingApprovals>),
    /// The shared table; decisions older than `window_s` are refused.
    Postgres {
        /// Pool.
        pool: PgPool,
        /// The approval window (`INTENTGATE_APPROVAL_TIMEOUT_S`).
        window_s: u64,
    },
}

impl Approvals {
    /// Newest first, optionally one tenant's and one status.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        status: Option<Status>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<PendingRequest>, sqlx::Error> {
        match self {
            Self::Memory(q) => Ok(q.list(
                tenant,
                status,
                usize::try_from(limit).unwrap_or(0),
                usize::try_from(offset).unwrap_or(0),
            )),
            Self::Postgres { pool, .. } => sql::list(pool, tenant, status, limit, offset).await,
        }
    }

    /// Records a decision once.
    pub async fn decide(
        &self,
        id: &str,
        approved: bool,
        by: &str,
        note: &str,
        tenant: Option<&str>,
    ) -> Result<Result<PendingRequest, DecideError>, sqlx::Error> {
        match self {
            Self::Memory(q) => Ok(q.decide(id, approved, by, note, tenant)),
            Self::Postgres { pool, window_s } => Ok(
                match sql::decide(pool, id, approved, by, note, tenant, *window_s).await? {
                    sql::Decided::Done(row) => Ok(row),
                    sql::Decided::NotFound => Err(DecideError::NotFound),
                    sql::Decided::AlreadyDecided(row) => {
                        Err(DecideError::AlreadyDecided(Box::new(row)))
                    }
                },
            ),
        }
    }
}
