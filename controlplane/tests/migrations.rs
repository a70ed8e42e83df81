//! The schema: migrations apply on an empty database, re-running is a no-op, replicas
//! starting together apply each migration once, and the tables hold what the compat
//! schema (COMPATIBILITY.md §10) says, plus the chain `seq`.

// Test helpers fail the test by panicking; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use intentgate_controlplane::store::{MIGRATOR, migrate};
use sqlx::PgPool;

async fn columns(pool: &PgPool, table: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT column_name::text FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position")
        .bind(table)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn migrations_apply_once_and_rerun_as_noop(pool: PgPool) {
    let first = migrate(&pool).await.unwrap();
    assert_eq!(first.len(), MIGRATOR.iter().count());
    assert!(
        migrate(&pool).await.unwrap().is_empty(),
        "second run must apply nothing"
    );
    for table in [
        "revoked_tokens",
        "audit_events",
        "audit_chain_heads",
        "pending_approvals",
        "policy_drafts",
        "policy_active",
    ] {
        assert!(!columns(&pool, table).await.is_empty(), "{table} missing");
    }
    let audit = columns(&pool, "audit_events").await;
    for col in [
        "id",
        "ts",
        "event_name",
        "schema_version",
        "decision",
        "check_stage",
        "reason",
        "agent_id",
        "session_id",
        "tool",
        "arg_keys",
        "capability_token_id",
        "intent_summary",
        "latency_ms",
        "remote_ip",
        "upstream_status",
        "root_capability_token_id",
        "caveat_count",
        "tenant",
        "arg_values",
        "prev_hash",
        "hash",
        "elevation_id",
        "pending_id",
        "decided_by",
        "requires_step_up",
        "seq",
    ] {
        assert!(
            audit.contains(&col.to_string()),
            "audit_events.{col} missing"
        );
    }
    assert!(
        columns(&pool, "audit_chain_heads")
            .await
            .contains(&"head_seq".to_string())
    );
    let slot: String = sqlx::query_scalar("SELECT id FROM policy_active WHERE tenant = ''")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(slot, "global");
}

#[sqlx::test(migrations = false)]
async fn concurrent_replicas_migrate_without_conflict(pool: PgPool) {
    let (a, b, c) = tokio::join!(migrate(&pool), migrate(&pool), migrate(&pool));
    for r in [a, b, c] {
        r.unwrap();
    }
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        rows,
        MIGRATOR.iter().count() as i64,
        "each migration recorded exactly once"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn chain_seq_is_unique_per_chain_key(pool: PgPool) {
    let insert = |tenant: Option<&'static str>, seq: i64| {
        sqlx::query(
            "INSERT INTO audit_events (ts, decision, tenant, seq) VALUES (NOW(), 'allow', $1, $2)",
        )
        .bind(tenant)
        .bind(seq)
        .execute(&pool)
    };
    insert(Some("acme"), 1).await.unwrap();
    insert(Some("globex"), 1).await.unwrap();
    insert(None, 1).await.unwrap();
    assert!(
        insert(Some("acme"), 1).await.is_err(),
        "duplicate seq in one chain"
    );
    // NULL tenant chains as 'default': the unique index must see them as one chain.
    assert!(
        insert(None, 1).await.is_err(),
        "duplicate seq in the default chain"
    );
    assert!(
        insert(Some("default"), 1).await.is_err(),
        "'default' and NULL share a chain"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn migrations_accept_a_database_left_by_the_go_gateway(pool: PgPool) {
    // A Go-era table without our column and with old rows keeps its rows and gains `seq`.
    sqlx::query("DROP TABLE audit_events CASCADE")
        .execute(&pool)
        .await
        .unwrap();
    // The schema-v1 table of the Go gateway: later columns arrive through ADD COLUMN.
    sqlx::query(
        "CREATE TABLE audit_events (id BIGSERIAL PRIMARY KEY, ts TIMESTAMPTZ NOT NULL, \
         event_name TEXT NOT NULL DEFAULT 'intentgate.tool_call', schema_version TEXT NOT NULL DEFAULT '1', \
         decision TEXT NOT NULL, check_stage TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', \
         agent_id TEXT NOT NULL DEFAULT '', session_id TEXT NOT NULL DEFAULT '', tool TEXT NOT NULL DEFAULT '', \
         arg_keys JSONB, capability_token_id TEXT NOT NULL DEFAULT '', intent_summary TEXT NOT NULL DEFAULT '', \
         latency_ms BIGINT NOT NULL DEFAULT 0, remote_ip TEXT NOT NULL DEFAULT '', upstream_status INTEGER NOT NULL DEFAULT 0)",
    )
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO audit_events (ts, decision) VALUES (NOW(), 'allow')")
        .execute(&pool)
        .await
        .unwrap();
    let sql = MIGRATOR
        .iter()
        .find(|m| m.description.contains("audit"))
        .unwrap()
        .sql
        .clone();
    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    let cols = columns(&pool, "audit_events").await;
    assert!(cols.contains(&"seq".to_string()) && cols.contains(&"elevation_id".to_string()));
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn bad_urls_are_reported_without_the_url() {
    let err = intentgate_controlplane::store::connect("postgres://user:sekrit@[bad", 1)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("INTENTGATE_POSTGRES_URL is not a valid Postgres URL"),
        "{text}"
    );
    assert!(!text.contains("sekrit"), "{text}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn revocations_persist_update_and_list(pool: PgPool) {
    use intentgate_controlplane::revocation::RevocationStore;
    let store = RevocationStore::Postgres(pool);
    store.revoke("j1", "acme", "first").await.unwrap();
    store.revoke("j1", "acme", "second").await.unwrap();
    store.revoke("j2", "", "").await.unwrap();
    let all = store.list(None, 10, 0).await.unwrap();
    assert_eq!(all.len(), 2, "re-revoking updates, it does not duplicate");
    let acme = store.list(Some("acme"), 10, 0).await.unwrap();
    assert_eq!((acme.len(), acme[0].reason.as_str()), (1, "second"));
    let mut pairs = store.all().await.unwrap();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("j1".to_string(), "acme".to_string()),
            ("j2".to_string(), String::new())
        ]
    );
    assert_eq!(store.list(None, 1, 1).await.unwrap().len(), 1);
}
