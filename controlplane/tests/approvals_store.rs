//! The shared approvals table: decide once, tenant scope, the approval window, expiry that
//! overrides a decision nobody received, orphan sweeps, and the NOTIFY sent with a decision.

// Test helpers fail the test by panicking; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use intentgate_controlplane::store::approvals::{self as sql, CHANNEL, Decided};
use intentgate_shared::approval::{PendingRequest, Status};
use intentgate_shared::timestamp::Timestamp;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

fn row(id: &str, tenant: &str, created_at: Timestamp) -> PendingRequest {
    PendingRequest {
        pending_id: id.into(),
        tenant: tenant.into(),
        capability_token_id: "jti-1".into(),
        root_capability_token_id: String::new(),
        agent_id: "agent-1".into(),
        tool: "wire_money".into(),
        args: Some(serde_json::json!({"amount": 5})),
        intent_summary: String::new(),
        reason: "wire needs review".into(),
        status: Status::Pending,
        created_at,
        decided_at: None,
        decided_by: String::new(),
        decide_note: String::new(),
        requires_step_up: true,
    }
}

fn ago(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros((Timestamp::now().unix_seconds() - seconds) * 1_000_000)
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn rows_round_trip_and_list_by_tenant_and_status(pool: PgPool) {
    let (now, earlier) = (ago(0), ago(2));
    sql::insert(&pool, &row("p1", "acme", earlier), "r1")
        .await
        .unwrap();
    sql::insert(&pool, &row("p2", "", now), "r1").await.unwrap();
    // Inserting the same id again changes nothing.
    sql::insert(&pool, &row("p2", "globex", now), "r1")
        .await
        .unwrap();
    let all = sql::list(&pool, None, None, 10, 0).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| r.pending_id.as_str())
            .collect::<Vec<_>>(),
        ["p2", "p1"]
    );
    assert_eq!(all[0].tenant, "");
    assert_eq!(all[1], row("p1", "acme", earlier));
    let acme = sql::list(&pool, Some("acme"), None, 10, 0).await.unwrap();
    assert_eq!(acme.len(), 1);
    assert!(
        sql::list(&pool, None, Some(Status::Approved), 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(sql::list(&pool, None, None, 1, 1).await.unwrap().len(), 1);
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn a_decision_is_taken_once_in_scope_and_announced(pool: PgPool) {
    sql::insert(&pool, &row("p1", "acme", ago(0)), "r1")
        .await
        .unwrap();
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen(CHANNEL).await.unwrap();

    // Another tenant's admin cannot see it.
    assert!(matches!(
        sql::decide(&pool, "p1", true, "mallory", "", Some("globex"), 300)
            .await
            .unwrap(),
        Decided::NotFound
    ));
    assert!(matches!(
        sql::decide(&pool, "nope", true, "x", "", None, 300)
            .await
            .unwrap(),
        Decided::NotFound
    ));
    let Decided::Done(done) = sql::decide(&pool, "p1", true, "alice", "ok", Some("acme"), 300)
        .await
        .unwrap()
    else {
        panic!("first decision refused");
    };
    assert_eq!(
        (
            done.status,
            done.decided_by.as_str(),
            done.decide_note.as_str()
        ),
        (Status::Approved, "alice", "ok")
    );
    assert!(done.decided_at.is_some());
    let n = listener.recv().await.unwrap();
    assert_eq!((n.channel(), n.payload()), (CHANNEL, "p1"));

    let Decided::AlreadyDecided(current) = sql::decide(&pool, "p1", false, "bob", "", None, 300)
        .await
        .unwrap()
    else {
        panic!("second decision accepted");
    };
    assert_eq!(current.status, Status::Approved);
    assert_eq!(current.decided_by, "alice");
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn rows_past_the_window_cannot_be_decided(pool: PgPool) {
    sql::insert(&pool, &row("old", "", ago(120)), "r1")
        .await
        .unwrap();
    let Decided::AlreadyDecided(current) = sql::decide(&pool, "old", true, "alice", "", None, 60)
        .await
        .unwrap()
    else {
        panic!("a decision past the window was accepted");
    };
    assert_eq!(current.status, Status::Timeout);
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn expiry_overrides_a_decision_the_call_never_received(pool: PgPool) {
    sql::insert(&pool, &row("p1", "", ago(0)), "r1")
        .await
        .unwrap();
    assert!(matches!(
        sql::decide(&pool, "p1", true, "alice", "", None, 300)
            .await
            .unwrap(),
        Decided::Done(_)
    ));
    sql::expire(&pool, "p1").await.unwrap();
    assert_eq!(
        sql::get(&pool, "p1").await.unwrap().unwrap().status,
        Status::Timeout
    );
    assert!(sql::get(&pool, "nope").await.unwrap().is_none());
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn orphan_sweeps_expire_own_and_abandoned_rows_only(pool: PgPool) {
    for (id, replica, age) in [
        ("mine", "r1", 0),
        ("theirs-fresh", "r2", 0),
        ("theirs-old", "r2", 1000),
    ] {
        sql::insert(&pool, &row(id, "", ago(age)), replica)
            .await
            .unwrap();
    }
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen(CHANNEL).await.unwrap();
    assert_eq!(
        sql::expire_orphans(&pool, Some("r1"), 600).await.unwrap(),
        2
    );
    let mut announced = vec![
        listener.recv().await.unwrap().payload().to_owned(),
        listener.recv().await.unwrap().payload().to_owned(),
    ];
    announced.sort();
    assert_eq!(announced, ["mine", "theirs-old"]);
    let status = |id: &'static str| {
        let pool = pool.clone();
        async move { sql::get(&pool, id).await.unwrap().unwrap().status }
    };
    assert_eq!(status("mine").await, Status::Timeout);
    assert_eq!(status("theirs-old").await, Status::Timeout);
    assert_eq!(status("theirs-fresh").await, Status::Pending);
    let settled = sql::settled(&pool, &["mine".into(), "theirs-fresh".into()])
        .await
        .unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(sql::expire_orphans(&pool, None, 600).await.unwrap(), 0);
}
