//! SQL of the shared approvals queue (`pending_approvals`, COMPATIBILITY.md §6 and §10).
//!
//! A decision and its `NOTIFY intentgate_approvals` (payload: the pending id) commit in one
//! transaction, so whichever replica holds the waiting call learns of it without polling.

use sqlx::PgPool;
use sqlx::types::Json;
use time::OffsetDateTime;

use intentgate_shared::approval::{PendingRequest, Status};

/// The channel decisions and timeouts are announced on (compat name).
pub const CHANNEL: &str = "intentgate_approvals";

/// The columns [`Row`] reads, as a literal so queries stay `&'static str` (`concat!`).
macro_rules! columns {
    () => {
        "pending_id, COALESCE(tenant, ''), COALESCE(capability_token_id, ''), \
         COALESCE(root_capability_token_id, ''), agent_id, tool, args, intent_summary, reason, \
         status, created_at, decided_at, decided_by, decide_note, requires_step_up"
    };
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<Json<serde_json::Value>>,
    String,
    String,
    String,
    OffsetDateTime,
    Option<OffsetDateTime>,
    String,
    String,
    bool,
);

fn from_row(r: Row) -> PendingRequest {
    PendingRequest {
        pending_id: r.0,
        tenant: r.1,
        capability_token_id: r.2,
        root_capability_token_id: r.3,
        agent_id: r.4,
        tool: r.5,
        args: r.6.map(|Json(v)| v),
        intent_summary: r.7,
        reason: r.8,
        // The CHECK constraint admits only the four names.
        status: Status::parse(&r.9).unwrap_or(Status::Timeout),
        created_at: r.10.into(),
        decided_at: r.11.map(Into::into),
        decided_by: r.12,
        decide_note: r.13,
        requires_step_up: r.14,
    }
}

fn nullable(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Stores a new pending row held by `replica`.
pub async fn insert(pool: &PgPool, row: &PendingRequest, replica: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pending_approvals (pending_id, tenant, capability_token_id, \
         root_capability_token_id, agent_id, tool, args, intent_summary, reason, status, \
         created_at, requires_step_up, replica) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12) \
         ON CONFLICT (pending_id) DO NOTHING",
    )
    .bind(&row.pending_id)
    .bind(nullable(&row.tenant))
    .bind(nullable(&row.capability_token_id))
    .bind(nullable(&row.root_capability_token_id))
    .bind(&row.agent_id)
    .bind(&row.tool)
    .bind(row.args.as_ref().map(Json))
    .bind(&row.intent_summary)
    .bind(&row.reason)
    .bind(row.created_at.to_offset_datetime())
    .bind(row.requires_step_up)
    .bind(replica)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks a row `timeout` because its call stopped waiting. A decision recorded a moment
/// before is overwritten: the call it was meant for did not run.
pub async fn expire(pool: &PgPool, pending_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pending_approvals SET status = 'timeout', decided_at = now() \
         WHERE pending_id = $1 AND status <> 'timeout'",
    )
    .bind(pending_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The outcome of [`decide`].
#[derive(Debug)]
pub enum Decided {
    /// Recorded; the row as it is now.
    Done(PendingRequest),
    /// No such row in scope.
    NotFound,
    /// Decided (or expired) before; the row as it is now.
    AlreadyDecided(PendingRequest),
}

/// Records a decision once, refusing rows older than the approval window (their call has
/// given up), and announces it in the same transaction.
pub async fn decide(
    pool: &PgPool,
    pending_id: &str,
    approved: bool,
    by: &str,
    note: &str,
    tenant: Option<&str>,
    window_s: u64,
) -> Result<Decided, sqlx::Error> {
    let window = i64::try_from(window_s).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    let row: Option<Row> = sqlx::query_as(concat!(
        "UPDATE pending_approvals SET status = $2, decided_at = now(), decided_by = $3, \
         decide_note = $4 \
         WHERE pending_id = $1 AND status = 'pending' AND ($5::text IS NULL OR tenant = $5) \
         AND created_at > now() - make_interval(secs => $6) RETURNING ",
        columns!(),
        ""
    ))
    .bind(pending_id)
    .bind(if approved { "approved" } else { "rejected" })
    .bind(by)
    .bind(note)
    .bind(tenant)
    .bind(window as f64)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = row {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(pending_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(Decided::Done(from_row(row)));
    }
    // Not decidable: past its window (expire it now), decided before, or not in scope.
    let current: Option<Row> = sqlx::query_as(concat!(
        "UPDATE pending_approvals SET status = CASE WHEN status = 'pending' THEN 'timeout' \
         ELSE status END, decided_at = COALESCE(decided_at, now()) \
         WHERE pending_id = $1 AND ($2::text IS NULL OR tenant = $2) RETURNING ",
        columns!(),
        ""
    ))
    .bind(pending_id)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(match current {
        Some(row) => Decided::AlreadyDecided(from_row(row)),
        None => Decided::NotFound,
    })
}

/// One row, if it exists.
pub async fn get(pool: &PgPool, pending_id: &str) -> Result<Option<PendingRequest>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM pending_approvals WHERE pending_id = $1"
    ))
    .bind(pending_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(from_row))
}

/// Rows among `ids` that are no longer pending (after a lost listener connection).
pub async fn settled(pool: &PgPool, ids: &[String]) -> Result<Vec<PendingRequest>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM pending_approvals \
         WHERE pending_id = ANY($1) AND status <> 'pending'"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Newest first, optionally one tenant's and one status.
pub async fn list(
    pool: &PgPool,
    tenant: Option<&str>,
    status: Option<Status>,
    limit: i64,
    offset: i64,
) -> Result<Vec<PendingRequest>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM pending_approvals \
         WHERE ($1::text IS NULL OR COALESCE(tenant, '') = $1) \
         AND ($2::text IS NULL OR status = $2) \
         ORDER BY created_at DESC, pending_id LIMIT $3 OFFSET $4"
    ))
    .bind(tenant)
    .bind(status.map(Status::as_str))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Times out the pending rows whose calls cannot be waiting any more: those `replica` held
/// before it restarted, and anyone's older than `older_than_s`. Each is announced, so a
/// replica still holding one of them lets its call go. Returns how many were expired.
pub async fn expire_orphans(
    pool: &PgPool,
    replica: Option<&str>,
    older_than_s: u64,
) -> Result<u64, sqlx::Error> {
    let secs = older_than_s as f64;
    let ids: Vec<String> = sqlx::query_scalar(
        "WITH expired AS ( \
           UPDATE pending_approvals SET status = 'timeout', decided_at = now(), \
             decide_note = 'the gateway holding this call stopped before a decision' \
           WHERE status = 'pending' \
             AND (replica = $1 OR created_at < now() - make_interval(secs => $2)) \
           RETURNING pending_id) \
         SELECT pending_id FROM expired",
    )
    .bind(replica)
    .bind(secs)
    .fetch_all(pool)
    .await?;
    if !ids.is_empty() {
        sqlx::query("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id")
            .bind(CHANNEL)
            .bind(&ids)
            .execute(pool)
            .await?;
    }
    Ok(ids.len() as u64)
}
