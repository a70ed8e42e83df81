//! `GET /v1/admin/audit` and `GET /v1/admin/audit/verify` (compat §2.4, §8.4), present when
//! the audit chain is persisted. Tenant admins see and verify only their tenant's chain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use intentgate_shared::timestamp::Timestamp;

use super::auth::Principal;
use super::{AdminState, ApiError, page, scoped_tenant, store_error};
use crate::store::audit::{self as sql, Filter};

type Params = Query<HashMap<String, String>>;

/// Authenticates the caller and returns the audit store.
fn caller<'s>(
    state: &'s AdminState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(Principal, &'s sqlx::PgPool), ApiError> {
    let principal = state.authenticate(peer, headers)?;
    let pool = state
        .audit_store
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "audit persistence is off"))?;
    Ok((principal, pool))
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn time_param(params: &HashMap<String, String>, name: &str) -> Result<Option<Timestamp>, ApiError> {
    param(params, name)
        .map(|v| {
            Timestamp::parse_rfc3339(v).map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
        })
        .transpose()
}

fn filter(params: &HashMap<String, String>, tenant: Option<String>) -> Result<Filter, ApiError> {
    let text = |name| param(params, name).map(str::to_owned);
    let int = |name: &str| {
        param(params, name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{name} must be an integer")))
            })
            .transpose()
    };
    Ok(Filter {
        from: time_param(params, "from")?,
        to: time_param(params, "to")?,
        tenant,
        agent_id: text("agent_id"),
        tool: text("tool"),
        decision: text("decision"),
        check: text("check"),
        jti: text("jti"),
        elevation_id: text("elevation_id"),
        before_id: int("before_id")?,
        id: int("id")?,
    })
}

/// `GET /v1/admin/audit`: newest first; `limit`/`offset` as compat, plus the keyset cursor
/// `before_id` (pass the response's `next_before_id` to get the next page: stable while rows
/// are being added).
pub(super) async fn query(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<axum::Json<Value>, ApiError> {
    let (principal, pool) = caller(&state, peer, &headers)?;
    let (limit, offset) = page(&params)?;
    let tenant = scoped_tenant(&principal, param(&params, "tenant"))?;
    let f = filter(&params, tenant)?;
    let rows = sql::query(pool, &f, limit, offset)
        .await
        .map_err(store_error)?;
    let next = rows.last().map(|r| r.id);
    let events: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::from_slice(&r.event.to_json()).unwrap_or(Value::Null))
        .collect();
    let mut out = json!({"events": events, "limit": limit, "offset": offset});
    if let Some(id) = next {
        out["next_before_id"] = id.into();
    }
    if param(&params, "count") == Some("true") {
        out["total"] = sql::count(pool, &f).await.unwrap_or(-1).into();
    }
    Ok(axum::Json(out))
}

/// `GET /v1/admin/audit/verify`: walks one chain (compat response; 200 whenever the walk ran).
pub(super) async fn verify(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<axum::Json<Value>, ApiError> {
    let (principal, pool) = caller(&state, peer, &headers)?;
    let tenant = scoped_tenant(&principal, param(&params, "tenant"))?.unwrap_or_default();
    let (from, to) = (time_param(&params, "from")?, time_param(&params, "to")?);
    let key = intentgate_shared::audit::chain_key(&tenant);
    let v = sql::verify(pool, key, from, to)
        .await
        .map_err(store_error)?;
    let mut out = json!({
        "ok": v.broken.is_none(),
        "tenant": tenant,
        "verified": v.verified,
        "skipped": v.skipped,
    });
    if let Some((id, ts, b)) = &v.broken {
        out["broken_at"] = json!({
            "id": id,
            "ts": ts.to_rfc3339_nano(),
            "stored_hash": b.stored_hash,
            "expected_hash": b.expected_hash,
            "reason": b.reason,
        });
    }
    if let Some(id) = v.baseline_id {
        out["baseline_id"] = id.into();
    }
    if let Some((head_id, at)) = v.head {
        out["head_at"] = at.to_rfc3339_nano().into();
        if let Some(id) = head_id {
            out["head_id"] = id.into();
        }
    }
    Ok(axum::Json(out))
}
