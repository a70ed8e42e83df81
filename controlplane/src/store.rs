//! Postgres: connection and schema migrations. The only module allowed to hold SQL.

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
    Connect(#[source] sqlx::Error),
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
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(connect_options(url)?)
        .await
        .map_err(StoreError::Connect)
}

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
