//! The audit chain in Postgres: batched appends link every chain, concurrent writers keep
//! one gapless chain, and every kind of tampering is reported at the right row.

// Test helpers fail the test by panicking; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use intentgate_controlplane::store::audit::{self as sql, Filter};
use intentgate_shared::audit::{self, AuditEvent, Decision};
use intentgate_shared::timestamp::Timestamp;
use sqlx::PgPool;

fn event(i: i64, tenant: &str) -> AuditEvent {
    let mut e = AuditEvent::new(
        Timestamp::from_unix_micros(1_790_000_000_000_000 + i * 1000),
        if i % 3 == 0 {
            Decision::Block
        } else {
            Decision::Allow
        },
        format!("tool_{}", i % 4),
    );
    e.tenant = tenant.into();
    e.agent_id = format!("agent-{}", i % 2);
    e.reason = format!("reason {i}");
    e.arg_keys = vec!["a".into(), "b".into()];
    e.latency_ms = i;
    e.caveat_count = 3;
    e
}

async fn seeded(pool: &PgPool, n: i64) {
    let batch: Vec<AuditEvent> = (0..n)
        .map(|i| event(i, if i % 2 == 0 { "acme" } else { "" }))
        .collect();
    sql::append(pool, &batch[..n as usize / 2]).await.unwrap();
    sql::append(pool, &batch[n as usize / 2..]).await.unwrap();
}

async fn ids(pool: &PgPool, key: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT id FROM audit_events WHERE COALESCE(tenant,'default') = $1 ORDER BY id",
    )
    .bind(key)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Runs a statement the way an attacker with the database owner's rights could: in a
/// session that switched the append-only guard off.
async fn tamper(pool: &PgPool, sql: &'static str, binds: &[i64]) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL intentgate.audit_maintenance = 'on'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    q.execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

async fn exec(pool: &PgPool, sql: &'static str, id: i64) {
    tamper(pool, sql, &[id]).await;
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn appended_batches_form_gapless_chains_that_verify(pool: PgPool) {
    seeded(&pool, 20).await;
    for key in ["acme", "default"] {
        let v = sql::verify(&pool, key, None, None).await.unwrap();
        assert!(v.broken.is_none(), "{key}: {:?}", v.broken);
        assert_eq!((v.verified, v.skipped), (10, 0));
        let seqs: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM audit_events WHERE COALESCE(tenant,'default') = $1 ORDER BY id",
        )
        .bind(key)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
        assert_eq!(v.head.unwrap().0, ids(&pool, key).await.last().copied());
    }
    // Rows read back hash exactly as written.
    let rows = sql::query(&pool, &Filter::default(), 100, 0).await.unwrap();
    assert_eq!(rows.len(), 20);
    let mut prev = String::new();
    for r in rows.iter().rev().filter(|r| r.event.tenant == "acme") {
        assert_eq!(r.prev_hash, prev);
        assert_eq!(r.event.chain_hash(&prev), r.hash);
        prev = r.hash.clone();
    }
    let unknown = sql::verify(&pool, "nobody", None, None).await.unwrap();
    assert!(unknown.head.is_none() && unknown.verified == 0 && unknown.broken.is_none());
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn queries_filter_page_by_keyset_and_count(pool: PgPool) {
    seeded(&pool, 20).await;
    let acme = Filter {
        tenant: Some("acme".into()),
        ..Filter::default()
    };
    assert_eq!(sql::count(&pool, &acme).await.unwrap(), 10);
    let default = Filter {
        tenant: Some(String::new()),
        decision: Some("block".into()),
        ..Filter::default()
    };
    let rows = sql::query(&pool, &default, 100, 0).await.unwrap();
    assert!(
        rows.iter()
            .all(|r| r.event.tenant.is_empty() && r.event.decision == "block")
    );
    assert_eq!(rows.len(), 3); // i = 3, 9, 15
    // Keyset paging: pages of 7 cover every row once, newest first, even with inserts between.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let f = Filter {
            before_id: before,
            ..Filter::default()
        };
        let page = sql::query(&pool, &f, 7, 0).await.unwrap();
        if page.is_empty() {
            break;
        }
        sql::append(&pool, &[event(99, "acme")]).await.unwrap();
        before = page.last().map(|r| r.id);
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen.len(), 20);
    assert!(seen.windows(2).all(|w| w[0] > w[1]));
    let window = Filter {
        from: Some(Timestamp::from_unix_micros(1_790_000_000_000_000 + 5_000)),
        to: Some(Timestamp::from_unix_micros(1_790_000_000_000_000 + 7_000)),
        ..Filter::default()
    };
    assert_eq!(sql::count(&pool, &window).await.unwrap(), 3);
}

async fn broken(pool: &PgPool) -> (i64, &'static str) {
    let v = sql::verify(pool, "acme", None, None).await.unwrap();
    let (id, _, b) = v.broken.expect("tampering went unnoticed");
    (id, b.reason)
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn a_modified_row_is_reported(pool: PgPool) {
    seeded(&pool, 20).await;
    let ids = ids(&pool, "acme").await;
    exec(
        &pool,
        "UPDATE audit_events SET reason = 'nothing to see' WHERE id = $1",
        ids[4],
    )
    .await;
    assert_eq!(broken(&pool).await, (ids[4], audit::TAMPERED_ROW));
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn a_deleted_middle_row_is_reported(pool: PgPool) {
    seeded(&pool, 20).await;
    let ids = ids(&pool, "acme").await;
    exec(&pool, "DELETE FROM audit_events WHERE id = $1", ids[3]).await;
    assert_eq!(broken(&pool).await, (ids[4], audit::DELETED_ROWS));
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn deleted_newest_rows_are_reported(pool: PgPool) {
    seeded(&pool, 20).await;
    let ids = ids(&pool, "acme").await;
    exec(
        &pool,
        "DELETE FROM audit_events WHERE id >= $1 AND tenant = 'acme'",
        ids[8],
    )
    .await;
    assert_eq!(broken(&pool).await, (ids[7], audit::TRUNCATED));
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn swapped_rows_are_reported(pool: PgPool) {
    seeded(&pool, 20).await;
    let ids = ids(&pool, "acme").await;
    // Swap rows 3 and 4 (ids stay, contents trade places).
    for (from, to) in [(ids[3], -1), (ids[4], ids[3]), (-1, ids[4])] {
        tamper(
            &pool,
            "UPDATE audit_events SET id = $2 WHERE id = $1",
            &[from, to],
        )
        .await;
    }
    assert_eq!(broken(&pool).await, (ids[3], audit::REORDERED_ROWS));
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn a_forged_row_is_reported(pool: PgPool) {
    seeded(&pool, 20).await;
    // A perfectly chained forgery written behind the writer's back (head not moved).
    let (head_hash, head_seq): (String, i64) =
        sqlx::query_as("SELECT head_hash, head_seq FROM audit_chain_heads WHERE tenant = 'acme'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let forged = event(1000, "acme");
    let hash = forged.chain_hash(&head_hash);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_events (ts, decision, tool, tenant, reason, agent_id, arg_keys, \
         latency_ms, caveat_count, prev_hash, hash, seq, schema_version) \
         VALUES ($1, $2, $3, 'acme', $4, $5, '[\"a\",\"b\"]', $6, 3, $7, $8, $9, $10) \
         RETURNING id",
    )
    .bind(forged.ts.to_offset_datetime())
    .bind(forged.decision.as_str())
    .bind(&forged.tool)
    .bind(&forged.reason)
    .bind(&forged.agent_id)
    .bind(forged.latency_ms)
    .bind(&head_hash)
    .bind(&hash)
    .bind(head_seq + 1)
    .bind(&forged.schema_version)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(broken(&pool).await, (id, audit::BEYOND_HEAD));
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn concurrent_writers_keep_one_gapless_chain(pool: PgPool) {
    let writer = |w: i64| {
        let pool = pool.clone();
        tokio::spawn(async move {
            for b in 0..20 {
                let batch: Vec<AuditEvent> = (0..25)
                    .map(|i| event(w * 100_000 + b * 100 + i, "acme"))
                    .collect();
                sql::append(&pool, &batch).await.unwrap();
            }
        })
    };
    let (a, b, c) = tokio::join!(writer(1), writer(2), writer(3));
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let v = sql::verify(&pool, "acme", None, None).await.unwrap();
    assert!(v.broken.is_none(), "{:?}", v.broken);
    assert_eq!(v.verified, 3 * 20 * 25);
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn audit_rows_cannot_be_changed_or_removed_by_default(pool: PgPool) {
    seeded(&pool, 4).await;
    for sql in [
        "UPDATE audit_events SET reason = 'x'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.unwrap_err();
        assert!(
            err.to_string().contains("audit_events is append-only"),
            "{sql}: {err}"
        );
    }
    let v = sql::verify(&pool, "acme", None, None).await.unwrap();
    assert!(v.broken.is_none());
    assert_eq!(v.verified, 2);
}

#[sqlx::test(migrator = "intentgate_controlplane::store::MIGRATOR")]
async fn a_rebaselined_chain_verifies_from_its_marker(pool: PgPool) {
    seeded(&pool, 20).await;
    let ids = ids(&pool, "acme").await;
    exec(&pool, "DELETE FROM audit_events WHERE id = $1", ids[3]).await;
    assert_eq!(broken(&pool).await.1, audit::DELETED_ROWS);
    let marker = sql::rebaseline(&pool, "acme", "row 4 lost in a restore; INC-7")
        .await
        .unwrap();
    sql::append(&pool, &[event(500, "acme"), event(501, "acme")])
        .await
        .unwrap();
    let v = sql::verify(&pool, "acme", None, None).await.unwrap();
    assert!(v.broken.is_none(), "{:?}", v.broken);
    assert_eq!((v.verified, v.baseline_id), (3, Some(marker)));
    // The old rows stay readable, the marker says why.
    let f = Filter {
        id: Some(marker),
        ..Filter::default()
    };
    let rows = sql::query(&pool, &f, 10, 0).await.unwrap();
    assert_eq!(rows[0].event.reason, "row 4 lost in a restore; INC-7");
    assert_eq!(rows[0].event.tool, sql::REBASELINE_TOOL);
    assert_eq!(sql::count(&pool, &Filter::default()).await.unwrap(), 19 + 3);
}
