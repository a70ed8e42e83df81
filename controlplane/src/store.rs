//! Postgres: connection, schema migrations and the queries (this module and its children
//! are the only ones allowed to hold SQL).

pub mod approvals;
pub mod audit;
pub mod policies;

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The migrations in `migrations/`, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A store failure. Connection strings never appear in these messages (they hold passwords).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL does not parse.
    #[error("INTENTGATE_POSTGRES_URL is not a valid Postgres URL: {0}")]
    BadUrl(String),
    /// Connecting failed.
    #[error("cannot connect to Postgres: {0}")]
    Connect(sqlx::Error),
    /// The server did not answer, refused, or rejected the login.
    #[error("cannot reach Postgres at {at} (INTENTGATE_POSTGRES_URL): {reason}")]
    Unreachable {
        /// `host:port`, never the credentials.
        at: String,
        /// The first connection's error, or the timeout.
        reason: String,
    },
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Parses a Postgres URL without echoing it back in errors.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::BadUrl(redact_url_error(&e.to_string(), url)))
}

fn redact_url_error(message: &str, url: &str) -> String {
    if url.is_empty() {
        message.to_owned()
    } else {
        message.replace(url, "<url>")
    }
}

/// Opens a small pool.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = connect_options(url)?;
    // One direct connection first: it names the real cause (refused, unknown host, login
    // rejected) where the pool would only report that it timed out.
    let unreachable = |reason: String| StoreError::Unreachable {
        at: format!("{}:{}", options.get_host(), options.get_port()),
        reason,
    };
    let first = tokio::time::timeout(
        PROBE_TIMEOUT,
        <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
    )
    .await
    .map_err(|_| unreachable(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())))?;
    let conn = first.map_err(|e| unreachable(e.to_string()))?;
    let _ = sqlx::Connection::close(conn).await;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(StoreError::Connect)
}

/// How long startup waits for Postgres to answer before failing.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Applies pending migrations. sqlx holds a Postgres advisory lock for the duration, so
/// replicas starting together apply each migration exactly once; re-running is a no-op.
/// Returns the versions applied by this call.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let before = applied_versions(pool).await;
    MIGRATOR.run(pool).await?;
    let after = applied_versions(pool).await;
    Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
}

async fn applied_versions(pool: &PgPool) -> Vec<i64> {
    // Before the first run the bookkeeping table does not exist: nothing applied.
    sqlx::query_scalar::<_, i64>(
        "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default()
}

/// One revoked token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedRow {
    /// Token id.
    pub jti: String,
    /// Tenant of the revoking admin ("" = superadmin, global).
    pub tenant: String,
    /// Free-text reason.
    pub reason: String,
    /// When.
    pub revoked_at: intentgate_shared::timestamp::Timestamp,
}

/// The channel revocations are announced on; payload `tenant` 0x1E `jti`.
pub const REVOCATIONS_CHANNEL: &str = "intentgate_revocations";

/// Records a revocation (revoking again updates the reason: compat, idempotent) and
/// announces it to the other replicas in the same transaction.
pub async fn revoke(
    pool: &PgPool,
    jti: &str,
    tenant: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO revoked_tokens (jti, tenant, reason) VALUES ($1, $2, $3) \
         ON CONFLICT (jti, tenant) DO UPDATE SET reason = EXCLUDED.reason",
    )
    .bind(jti)
    .bind(tenant)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(REVOCATIONS_CHANNEL)
        .bind(format!("{tenant}\u{1e}{jti}"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Revocations newest first, optionally of one tenant.
pub async fn list_revocations(
    pool: &PgPool,
    tenant: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<RevokedRow>, sqlx::Error> {
    let rows: Vec<(String, String, String, time::OffsetDateTime)> = sqlx::query_as(
        "SELECT jti, tenant, reason, revoked_at FROM revoked_tokens \
         WHERE ($1::text IS NULL OR tenant = $1) ORDER BY revoked_at DESC, jti LIMIT $2 OFFSET $3",
    )
    .bind(tenant)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(jti, tenant, reason, at)| RevokedRow {
            jti,
            tenant,
            reason,
            revoked_at: at.into(),
        })
        .collect())
}

/// Every `(jti, tenant)` pair, for building the data plane's revocation set.
pub async fn all_revocations(pool: &PgPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT jti, tenant FROM revoked_tokens")
        .fetch_all(pool)
        .await
}
