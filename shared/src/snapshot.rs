//! The immutable state the data plane decides with, published by the control plane.
//!
//! A [`Snapshot`] is built whole and swapped in atomically through [`SnapshotCell`]; a core
//! reads the current one with one atomic load per request and never sees half of a change.
//! Revocations and policies live here so the decision path makes no database call.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::key_ring::KeyRing;
use crate::policy::Policy;
use crate::timestamp::Timestamp;

/// Revoked token ids. A revocation with tenant `""` (by a superadmin) is global.
///
/// The map uses std's keyed SipHash: the keys are attacker-chosen token ids.
#[derive(Debug, Clone, Default)]
pub struct RevocationSet {
    by_jti: HashMap<Box<str>, Vec<Box<str>>>,
}

impl RevocationSet {
    /// Adds `(jti, tenant)`.
    pub fn insert(&mut self, jti: &str, tenant: &str) {
        let tenants = self.by_jti.entry(jti.into()).or_default();
        if !tenants.iter().any(|t| &**t == tenant) {
            tenants.push(tenant.into());
        }
    }

    /// True when `jti` is revoked for `tenant` or globally.
    pub fn is_revoked(&self, jti: &str, tenant: &str) -> bool {
        self.by_jti
            .get(jti)
            .is_some_and(|ts| ts.iter().any(|t| t.is_empty() || &**t == tenant))
    }

    /// True when a token with these claims may no longer be used: it, or the root it was
    /// attenuated from, is revoked for its tenant or globally.
    pub fn revokes(&self, claims: &crate::token::Claims) -> bool {
        self.is_revoked(&claims.jti, &claims.tenant)
            || self.is_revoked(&claims.root_jti, &claims.tenant)
    }

    /// True when exactly `(jti, tenant)` was recorded.
    pub fn contains(&self, jti: &str, tenant: &str) -> bool {
        self.by_jti
            .get(jti)
            .is_some_and(|ts| ts.iter().any(|t| &**t == tenant))
    }

    /// Every recorded `(jti, tenant)`.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_jti
            .iter()
            .flat_map(|(j, ts)| ts.iter().map(move |t| (&**j, &**t)))
    }

    /// Number of revoked ids.
    pub fn len(&self) -> usize {
        self.by_jti.len()
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.by_jti.is_empty()
    }
}

/// Everything a decision reads besides the request.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Increases with every publication.
    pub version: u64,
    /// When it was built (for the staleness bound).
    pub built_at: Timestamp,
    /// Keys that verify tokens.
    pub keys: KeyRing,
    /// Revoked tokens.
    pub revoked: Arc<RevocationSet>,
    /// The default policy slot.
    pub default_policy: Policy,
    /// Per-tenant policies; a tenant without one uses the default.
    pub tenant_policies: Arc<HashMap<String, Policy>>,
}

impl Snapshot {
    /// The policy for `tenant`.
    pub fn policy_for(&self, tenant: &str) -> &Policy {
        self.tenant_policies
            .get(tenant)
            .unwrap_or(&self.default_policy)
    }
}

/// The published snapshot, readable from every core.
#[derive(Debug)]
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    /// Serialises writers (rare) so each change applies to the latest snapshot.
    writer: Mutex<u64>,
    /// When the content was last confirmed current (µs since the epoch): a publication or a
    /// resync that found nothing new.
    refreshed_at: AtomicI64,
}

impl SnapshotCell {
    /// A cell holding `first` (its version is set to 1).
    pub fn new(mut first: Snapshot) -> Self {
        first.version = 1;
        Self {
            current: ArcSwap::from_pointee(first),
            writer: Mutex::new(1),
            refreshed_at: AtomicI64::new(Timestamp::now().unix_micros()),
        }
    }

    /// The current snapshot (one atomic load and a reference count).
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Publishes a change made to a copy of the current snapshot; versions only increase.
    pub fn update(&self, change: impl FnOnce(&mut Snapshot)) -> u64 {
        let mut last = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = Snapshot::clone(&self.current.load());
        change(&mut next);
        *last += 1;
        next.version = *last;
        next.built_at = Timestamp::now();
        self.current.store(Arc::new(next));
        self.mark_fresh();
        *last
    }

    /// Records that the snapshot was checked against its sources and is current.
    pub fn mark_fresh(&self) {
        self.refreshed_at
            .store(Timestamp::now().unix_micros(), Ordering::Release);
    }

    /// How long ago the snapshot was last confirmed current.
    pub fn age(&self) -> Duration {
        let micros = Timestamp::now()
            .unix_micros()
            .saturating_sub(self.refreshed_at.load(Ordering::Acquire));
        Duration::from_micros(u64::try_from(micros).unwrap_or(0))
    }

    /// True when the snapshot was last confirmed longer than `max` ago.
    pub fn is_stale(&self, max: Duration) -> bool {
        let age = Timestamp::now()
            .unix_micros()
            .saturating_sub(self.refreshed_at.load(Ordering::Acquire));
        age > i64::try_from(max.as_micros()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_ring::MasterKey;

    fn cell() -> SnapshotCell {
        SnapshotCell::new(Snapshot {
            version: 0,
            built_at: Timestamp::now(),
            keys: KeyRing::single(MasterKey::from_bytes(&[1; 32])),
            revoked: Arc::new(RevocationSet::default()),
            default_policy: Policy::default_policy().unwrap(),
            tenant_policies: Arc::new(HashMap::new()),
        })
    }

    #[test]
    fn updates_bump_versions_and_freshness() {
        let c = cell();
        assert_eq!(c.load().version, 1);
        let v = c.update(|s| {
            let mut r = RevocationSet::clone(&s.revoked);
            r.insert("j", "");
            s.revoked = Arc::new(r);
        });
        assert_eq!((v, c.load().version), (2, 2));
        assert!(c.load().revoked.is_revoked("j", "any"));
        assert!(!c.is_stale(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(c.is_stale(Duration::from_millis(10)));
        c.mark_fresh();
        assert!(!c.is_stale(Duration::from_millis(10)));
    }
}
