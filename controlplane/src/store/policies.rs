//! SQL of the policy store (COMPATIBILITY.md §7, §10): drafts and the per-tenant active pointer
//! (`tenant ''` is the default slot). Promote, rollback and clear announce the change with
//! `pg_notify('intentgate_policy_active_changed', tenant 0x1E draft_id)` inside their
//! transaction, so other replicas swap the same policy.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::policy_model::{Active, Draft};

/// The channel (compat name).
pub const CHANNEL: &str = "intentgate_policy_active_changed";

type DraftRow = (
    String,
    String,
    String,
    String,
    String,
    OffsetDateTime,
    OffsetDateTime,
    String,
);

fn draft(r: DraftRow) -> Draft {
    Draft {
        id: r.0,
        name: r.1,
        description: r.2,
        rego_source: r.3,
        tenant: r.4,
        created_at: r.5.into(),
        updated_at: r.6.into(),
        created_by: r.7,
    }
}

const DRAFT_COLUMNS: &str =
    "id, name, description, rego_source, tenant, created_at, updated_at, created_by";

/// Drafts newest updated first, optionally of one tenant.
pub async fn list_drafts(
    pool: &PgPool,
    tenant: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Draft>, sqlx::Error> {
    let rows: Vec<DraftRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DRAFT_COLUMNS} FROM policy_drafts WHERE ($1::text IS NULL OR tenant = $1) \
         ORDER BY updated_at DESC, id LIMIT $2 OFFSET $3"
    )))
    .bind(tenant)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(draft).collect())
}

/// One draft.
pub async fn get_draft(pool: &PgPool, id: &str) -> Result<Option<Draft>, sqlx::Error> {
    let row: Option<DraftRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DRAFT_COLUMNS} FROM policy_drafts WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(draft))
}

/// Inserts or replaces a draft (the caller checked scope and compiled the source).
pub async fn save_draft(pool: &PgPool, d: &Draft) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO policy_drafts (id, name, description, rego_source, tenant, created_at, \
         updated_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description, \
         rego_source = EXCLUDED.rego_source, updated_at = EXCLUDED.updated_at",
    )
    .bind(&d.id)
    .bind(&d.name)
    .bind(&d.description)
    .bind(&d.rego_source)
    .bind(&d.tenant)
    .bind(d.created_at.to_offset_datetime())
    .bind(d.updated_at.to_offset_datetime())
    .bind(&d.created_by)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes a draft unless some slot points at it: `Ok(None)` not found, `Ok(Some(false))`
/// in use, `Ok(Some(true))` deleted.
pub async fn delete_draft(pool: &PgPool, id: &str) -> Result<Option<bool>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let in_use: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM policy_active \
         WHERE current_draft_id = $1 OR previous_draft_id = $1)",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if in_use {
        return Ok(Some(false));
    }
    let n = sqlx::query("DELETE FROM policy_drafts WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok((n > 0).then_some(true))
}

type ActiveRow = (String, String, String, Option<OffsetDateTime>, String);

fn active(r: ActiveRow) -> Active {
    Active {
        tenant: r.0,
        current_draft_id: r.1,
        previous_draft_id: r.2,
        promoted_at: r.3.map(Into::into),
        promoted_by: r.4,
    }
}

/// A slot's pointer (an empty one when the slot was never set).
pub async fn get_active(pool: &PgPool, tenant: &str) -> Result<Active, sqlx::Error> {
    let row: Option<ActiveRow> = sqlx::query_as(
        "SELECT tenant, current_draft_id, previous_draft_id, promoted_at, promoted_by \
         FROM policy_active WHERE tenant = $1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    Ok(row.map_or_else(|| Active::empty(tenant), active))
}

/// Every slot with a current draft.
pub async fn all_active(pool: &PgPool) -> Result<Vec<Active>, sqlx::Error> {
    let rows: Vec<ActiveRow> = sqlx::query_as(
        "SELECT tenant, current_draft_id, previous_draft_id, promoted_at, promoted_by \
         FROM policy_active WHERE current_draft_id <> '' ORDER BY tenant",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(active).collect())
}

/// Changes a slot's pointer under a row lock, so two replicas promoting at once cannot lose
/// each other's `previous`: `change` sees the current pointer and returns the new one (`Ok(None)`:
/// leave it). The new pointer is written and announced in the same transaction.
pub async fn modify_active<E>(
    pool: &PgPool,
    tenant: &str,
    change: impl FnOnce(Active) -> Result<Option<Active>, E>,
) -> Result<Result<Active, E>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO policy_active (id, tenant) VALUES ($1, $1) ON CONFLICT (tenant) DO NOTHING",
    )
    .bind(tenant)
    .execute(&mut *tx)
    .await?;
    let row: ActiveRow = sqlx::query_as(
        "SELECT tenant, current_draft_id, previous_draft_id, promoted_at, promoted_by \
         FROM policy_active WHERE tenant = $1 FOR UPDATE",
    )
    .bind(tenant)
    .fetch_one(&mut *tx)
    .await?;
    let current = active(row);
    let next = match change(current.clone()) {
        Err(e) => return Ok(Err(e)),
        Ok(None) => return Ok(Ok(current)),
        Ok(Some(next)) => next,
    };
    write_active(&mut tx, &next).await?;
    tx.commit().await?;
    Ok(Ok(next))
}

async fn write_active(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    a: &Active,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO policy_active (id, tenant, current_draft_id, previous_draft_id, promoted_at, \
         promoted_by) VALUES ($1, $1, $2, $3, $4, $5) \
         ON CONFLICT (tenant) DO UPDATE SET current_draft_id = EXCLUDED.current_draft_id, \
         previous_draft_id = EXCLUDED.previous_draft_id, promoted_at = EXCLUDED.promoted_at, \
         promoted_by = EXCLUDED.promoted_by",
    )
    .bind(&a.tenant)
    .bind(&a.current_draft_id)
    .bind(&a.previous_draft_id)
    .bind(a.promoted_at.map(|t| t.to_offset_datetime()))
    .bind(&a.promoted_by)
    .execute(&mut **tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(format!("{}\u{1e}{}", a.tenant, a.current_draft_id))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
