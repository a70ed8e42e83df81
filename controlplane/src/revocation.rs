//! Revocation persistence: in memory (`dev`, single replica) or the Postgres `revoked_tokens`
//! table. The data plane never reads this: it reads the snapshot built from it.

use std::sync::{Arc, Mutex, PoisonError};

use sqlx::PgPool;

use intentgate_shared::snapshot::{RevocationSet, SnapshotCell};
use intentgate_shared::timestamp::Timestamp;

use crate::store::{self, RevokedRow};

/// Where revocations are kept.
#[derive(Debug)]
pub enum RevocationStore {
    /// Process memory.
    Memory(Mutex<Vec<RevokedRow>>),
    /// Postgres.
    Postgres(PgPool),
}

impl RevocationStore {
    /// An empty in-memory store.
    pub fn memory() -> Self {
        Self::Memory(Mutex::new(Vec::new()))
    }

    /// Records (or re-records with a new reason) a revocation.
    pub async fn revoke(&self, jti: &str, tenant: &str, reason: &str) -> Result<(), sqlx::Error> {
        match self {
            Self::Memory(rows) => {
                let mut rows = rows.lock().unwrap_or_else(PoisonError::into_inner);
                match rows.iter_mut().find(|r| r.jti == jti && r.tenant == tenant) {
                    Some(r) => reason.clone_into(&mut r.reason),
                    None => rows.push(RevokedRow {
                        jti: jti.to_owned(),
                        tenant: tenant.to_owned(),
                        reason: reason.to_owned(),
                        revoked_at: Timestamp::now(),
                    }),
                }
                Ok(())
            }
            Self::Postgres(pool) => store::revoke(pool, jti, tenant, reason).await,
        }
    }

    /// Newest first; `tenant` `Some` restricts to one tenant's rows.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<RevokedRow>, sqlx::Error> {
        match self {
            Self::Memory(rows) => {
                let rows = rows.lock().unwrap_or_else(PoisonError::into_inner);
                let mut out: Vec<RevokedRow> = rows
                    .iter()
                    .filter(|r| tenant.is_none_or(|t| r.tenant == t))
                    .cloned()
                    .collect();
                out.sort_by(|a, b| {
                    b.revoked_at
                        .cmp(&a.revoked_at)
                        .then_with(|| a.jti.cmp(&b.jti))
                });
                let skip = usize::try_from(offset).unwrap_or(0);
                let take = usize::try_from(limit).unwrap_or(0);
                Ok(out.into_iter().skip(skip).take(take).collect())
            }
            Self::Postgres(pool) => store::list_revocations(pool, tenant, limit, offset).await,
        }
    }

    /// Every `(jti, tenant)`, for the snapshot.
    pub async fn all(&self) -> Result<Vec<(String, String)>, sqlx::Error> {
        match self {
            Self::Memory(rows) => Ok(rows
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|r| (r.jti.clone(), r.tenant.clone()))
                .collect()),
            Self::Postgres(pool) => store::all_revocations(pool).await,
        }
    }
}

/// Adds one revocation to the data plane's snapshot (no-op when it is there already).
pub fn publish(snapshot: &SnapshotCell, jti: &str, tenant: &str) {
    if snapshot.load().revoked.contains(jti, tenant) {
        return;
    }
    snapshot.update(|s| {
        let mut set = RevocationSet::clone(&s.revoked);
        set.insert(jti, tenant);
        s.revoked = Arc::new(set);
    });
}

/// Publishes the full set read from the store: adds what is missing and marks the snapshot
/// fresh (the store was just read).
pub fn publish_all(snapshot: &SnapshotCell, pairs: &[(String, String)]) {
    let current = snapshot.load();
    if pairs.iter().any(|(j, t)| !current.revoked.contains(j, t)) {
        let mut set = RevocationSet::clone(&current.revoked);
        for (j, t) in pairs {
            set.insert(j, t);
        }
        snapshot.update(|s| s.revoked = Arc::new(set));
    } else {
        snapshot.mark_fresh();
    }
}
