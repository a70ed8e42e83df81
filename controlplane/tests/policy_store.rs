//! The Postgres policy store under concurrency: promotes racing on one slot keep both
//! drafts on the pointer (one current, the other previous), and the announcement carries the
//! slot and draft.

// Test helpers fail the test by panicking; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use intentgate_controlplane::policies::{PolicyManager, PolicyStore};
use intentgate_controlplane::store::policies::CHANNEL;
use intentgate_shared::key_ring::{KeyRing, MasterKey};
use intentgate_shared::policy::{DEFAULT_POLICY, Policy, Syntax};
use intentgate_shared::snapshot::{RevocationSet, Snapshot, SnapshotCell};
use intentgate_shared::timestamp::Timestamp;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

fn manager(pool: PgPool) -> Arc<PolicyManager> {
    let snapshot = Snapshot {
        version: 0,
        built_at: Timestamp::now(),
        keys: KeyRing::single(MasterKey::from_bytes(&[1; 32])),
        revoked: Arc::new(RevocationSet::default()),
        default_policy: Policy::default_policy().unwrap(),
        tenant_policies: Arc::default(),
    };
    Arc::new(PolicyManager::new(
        PolicyStore::Postgres(pool),
        Arc::new(SnapshotCell::new(snapshot)),
        Syntax::V1,
        (Policy::default_policy().unwrap(), "embedded default".into()),
    ))
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn racing_promotes_lose_no_pointer(pool: PgPool) {
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen(CHANNEL).await.unwrap();
    let (a, b) = (manager(pool.clone()), manager(pool.clone()));
    let first = a
        .create("acme", "one", "", DEFAULT_POLICY, "")
        .await
        .unwrap();
    let second = a
        .create("acme", "two", "", DEFAULT_POLICY, "")
        .await
        .unwrap();
    let (x, y) = tokio::join!(
        a.promote("acme", &first.id, None, "a"),
        b.promote("acme", &second.id, None, "b")
    );
    x.unwrap();
    y.unwrap();
    let slot = a.active("acme").await.unwrap();
    let mut ids = vec![
        slot.current_draft_id.clone(),
        slot.previous_draft_id.clone(),
    ];
    ids.sort();
    let mut want = vec![first.id.clone(), second.id.clone()];
    want.sort();
    assert_eq!(ids, want, "a racing promote was lost: {slot:?}");
    let n = listener.recv().await.unwrap();
    assert!(n.payload().starts_with("acme\u{1e}"), "{}", n.payload());
    // Rollback swaps back exactly one step.
    let back = a.rollback("acme", "oncall").await.unwrap();
    assert_eq!(back.current_draft_id, slot.previous_draft_id);
    assert!(back.previous_draft_id.is_empty());
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn resync_picks_up_changes_whose_notification_was_lost(pool: PgPool) {
    let (a, b) = (manager(pool.clone()), manager(pool.clone()));
    let d = a
        .create("acme", "strict", "", DEFAULT_POLICY, "")
        .await
        .unwrap();
    a.promote("acme", &d.id, None, "a").await.unwrap();
    // b never heard of it: the periodic resync finds it, then finds nothing more to do.
    assert_eq!(b.resync().await.unwrap(), 1);
    assert_eq!(b.resync().await.unwrap(), 0);
    a.clear("acme").await.unwrap();
    assert_eq!(b.resync().await.unwrap(), 1);
    assert_eq!(b.resync().await.unwrap(), 0);
}
