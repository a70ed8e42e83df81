//! The policy routes (COMPATIBILITY.md §7.1, §7.2): drafts, the active pointer, rollback. Tenant
//! admins work in their own tenant's slot and drafts (403 for an explicit other tenant, 404
//! for another tenant's draft); every pointer change is audited.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use intentgate_shared::audit::{Check, Decision};

use super::auth::Caller;
use super::body::{JsonBody, OptionalJsonBody};
use super::{AdminState, ApiError, page};
use crate::policies::{PolicyError, PolicyManager};
use crate::policy_model::{Active, Draft};

type Params = Query<HashMap<String, String>>;

fn draft_json(d: &Draft) -> Value {
    let mut v = json!({
        "id": d.id,
        "name": d.name,
        "rego_source": d.rego_source,
        "created_at": d.created_at.to_rfc3339_nano(),
        "updated_at": d.updated_at.to_rfc3339_nano(),
    });
    for (k, s) in [
        ("description", &d.description),
        ("tenant", &d.tenant),
        ("created_by", &d.created_by),
    ] {
        if !s.is_empty() {
            v[k] = s.as_str().into();
        }
    }
    v
}

fn active_json(a: &Active) -> Value {
    let mut v = json!({});
    for (k, s) in [
        ("tenant", &a.tenant),
        ("current_draft_id", &a.current_draft_id),
        ("previous_draft_id", &a.previous_draft_id),
        ("promoted_by", &a.promoted_by),
    ] {
        if !s.is_empty() {
            v[k] = s.as_str().into();
        }
    }
    if let Some(t) = a.promoted_at {
        v["promoted_at"] = t.to_rfc3339_nano().into();
    }
    v
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        let status = match &e {
            PolicyError::NotFound | PolicyError::NoPrevious => StatusCode::NOT_FOUND,
            PolicyError::Compile(_) => StatusCode::BAD_REQUEST,
            PolicyError::InUse => StatusCode::CONFLICT,
            PolicyError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.to_string())
    }
}

/// An authenticated caller of the policy routes and the policy lifecycle: 503 when the
/// policy store is off, answered right after authentication and before any body is read.
pub(super) struct PolicyCaller {
    caller: Caller,
    manager: Arc<PolicyManager>,
}

impl FromRequestParts<Arc<AdminState>> for PolicyCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AdminState>,
    ) -> Result<Self, Response> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let manager = state.policies.clone().ok_or_else(|| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "policy store is off").into_response()
        })?;
        Ok(Self { caller, manager })
    }
}

pub(super) async fn list_drafts(
    Query(params): Params,
    PolicyCaller { caller, manager: m }: PolicyCaller,
) -> Result<axum::Json<Value>, ApiError> {
    let (limit, offset) = page(&params)?;
    let tenant = caller.scoped_tenant(params.get("tenant").map(String::as_str))?;
    let drafts = m.list(tenant.as_deref(), limit, offset).await?;
    let list: Vec<Value> = drafts.iter().map(draft_json).collect();
    Ok(axum::Json(
        json!({"drafts": list, "limit": limit, "offset": offset}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DraftBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    rego_source: String,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    tenant: Option<String>,
}

pub(super) async fn create_draft(
    PolicyCaller { caller, manager: m }: PolicyCaller,
    JsonBody(b): JsonBody<DraftBody>,
) -> Result<Response, ApiError> {
    let tenant = caller
        .scoped_tenant(b.tenant.as_deref())?
        .unwrap_or_default();
    let d = m
        .create(
            &tenant,
            &b.name,
            &b.description,
            &b.rego_source,
            &b.created_by,
        )
        .await?;
    audit_change(
        &caller,
        "admin/create_policy_draft",
        &d.tenant,
        format!(
            "policy draft created: id={} name={:?} by={}",
            d.id, d.name, b.created_by
        ),
    )?;
    Ok((StatusCode::CREATED, axum::Json(draft_json(&d))).into_response())
}

pub(super) async fn get_draft(
    Path(id): Path<String>,
    PolicyCaller { caller, manager: m }: PolicyCaller,
) -> Result<axum::Json<Value>, ApiError> {
    let d = m.get(&id, caller.principal.tenant.as_deref()).await?;
    Ok(axum::Json(draft_json(&d)))
}

pub(super) async fn put_draft(
    Path(id): Path<String>,
    PolicyCaller { caller, manager: m }: PolicyCaller,
    JsonBody(b): JsonBody<DraftBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let d = m
        .update(
            &id,
            caller.principal.tenant.as_deref(),
            &b.name,
            &b.description,
            &b.rego_source,
        )
        .await?;
    audit_change(
        &caller,
        "admin/update_policy_draft",
        &d.tenant,
        format!("policy draft updated: id={} name={:?}", d.id, d.name),
    )?;
    Ok(axum::Json(draft_json(&d)))
}

pub(super) async fn delete_draft(
    Path(id): Path<String>,
    PolicyCaller { caller, manager: m }: PolicyCaller,
) -> Result<axum::Json<Value>, ApiError> {
    let tenant = m.get(&id, caller.principal.tenant.as_deref()).await?.tenant;
    m.delete(&id, caller.principal.tenant.as_deref()).await?;
    audit_change(
        &caller,
        "admin/delete_policy_draft",
        &tenant,
        format!("policy draft deleted: id={id}"),
    )?;
    Ok(axum::Json(json!({"ok": true, "id": id})))
}

pub(super) async fn get_active(
    Query(params): Params,
    PolicyCaller { caller, manager: m }: PolicyCaller,
) -> Result<axum::Json<Value>, ApiError> {
    let slot = caller
        .scoped_tenant(params.get("tenant").map(String::as_str))?
        .unwrap_or_default();
    let a = m.active(&slot).await?;
    let mut out = json!({"active": active_json(&a)});
    let m = &*m;
    let draft_of = |id: &str| {
        let id = id.to_owned();
        async move { m.get(&id, None).await.ok() }
    };
    if !a.current_draft_id.is_empty() {
        if let Some(d) = draft_of(&a.current_draft_id).await {
            out["current_draft"] = draft_json(&d);
        }
        out["source"] = "draft".into();
    } else {
        let fallback = if slot.is_empty() {
            None
        } else {
            Some(m.active("").await?).filter(|d| !d.current_draft_id.is_empty())
        };
        match fallback {
            Some(def) => {
                if let Some(d) = draft_of(&def.current_draft_id).await {
                    out["current_draft"] = draft_json(&d);
                }
                out["source"] = "fallback".into();
            }
            None => out["source"] = m.base_label().into(),
        }
    }
    if !a.previous_draft_id.is_empty()
        && let Some(d) = draft_of(&a.previous_draft_id).await
    {
        out["previous_draft"] = draft_json(&d);
    }
    Ok(axum::Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PromoteBody {
    draft_id: String,
    #[serde(default)]
    promoted_by: String,
    #[serde(default)]
    tenant: Option<String>,
}

fn audit_change(caller: &Caller, tool: &str, slot: &str, reason: String) -> Result<(), ApiError> {
    let mut e = caller.event(Decision::Allow, tool, slot);
    e.check = Check::Policy.into();
    e.reason = reason;
    caller.state.record(e)
}

pub(super) async fn promote(
    PolicyCaller { caller, manager: m }: PolicyCaller,
    JsonBody(b): JsonBody<PromoteBody>,
) -> Result<axum::Json<Value>, ApiError> {
    if b.draft_id.trim().is_empty() {
        return Err(ApiError::bad_request("draft_id is required"));
    }
    let slot = caller
        .scoped_tenant(b.tenant.as_deref())?
        .unwrap_or_default();
    let (a, prior) = m
        .promote(
            &slot,
            &b.draft_id,
            caller.principal.tenant.as_deref(),
            &b.promoted_by,
        )
        .await?;
    audit_change(
        &caller,
        "admin/promote_policy",
        &slot,
        format!(
            "policy promoted: tenant={slot} draft={} prior={} by={}",
            b.draft_id,
            prior.unwrap_or_default(),
            b.promoted_by
        ),
    )?;
    let promoted_at = a
        .promoted_at
        .map(|t| t.to_rfc3339_nano())
        .unwrap_or_default();
    Ok(axum::Json(
        json!({"active": active_json(&a), "swapped": true, "promoted_at": promoted_at}),
    ))
}

pub(super) async fn clear(
    Query(params): Params,
    PolicyCaller { caller, manager: m }: PolicyCaller,
) -> Result<axum::Json<Value>, ApiError> {
    let slot = caller
        .scoped_tenant(params.get("tenant").map(String::as_str))?
        .unwrap_or_default();
    let cleared = m.clear(&slot).await?;
    audit_change(
        &caller,
        "admin/clear_policy",
        &slot,
        format!(
            "policy cleared: tenant={slot} draft={}",
            cleared.current_draft_id
        ),
    )?;
    Ok(axum::Json(
        json!({"cleared": active_json(&cleared), "swapped": true}),
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RollbackBody {
    #[serde(default)]
    rolled_back_by: String,
    #[serde(default)]
    tenant: Option<String>,
}

pub(super) async fn rollback(
    PolicyCaller { caller, manager: m }: PolicyCaller,
    // An empty body is fine (compat); a body that is there must be valid.
    OptionalJsonBody(b): OptionalJsonBody<RollbackBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let slot = caller
        .scoped_tenant(b.tenant.as_deref())?
        .unwrap_or_default();
    let a = m.rollback(&slot, &b.rolled_back_by).await?;
    audit_change(
        &caller,
        "admin/rollback_policy",
        &slot,
        format!(
            "policy rolled back: tenant={slot} draft={} by={}",
            a.current_draft_id, b.rolled_back_by
        ),
    )?;
    Ok(axum::Json(
        json!({"active": active_json(&a), "swapped": true}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DryRunBody {
    #[serde(default)]
    rego: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    max_samples: Option<usize>,
    #[serde(default)]
    tenant: Option<String>,
}

/// `POST /v1/admin/policies/dry-run`: replays a candidate over the audit history.
pub(super) async fn dry_run(
    caller: Caller,
    JsonBody(b): JsonBody<DryRunBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let pool = caller.state.audit_store.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dry-run needs the persisted audit history (INTENTGATE_AUDIT_PERSIST=true)",
        )
    })?;
    if b.rego.trim().is_empty() {
        return Err(ApiError::bad_request(
            "rego is required (a non-empty Rego source)",
        ));
    }
    let candidate = intentgate_shared::policy::Policy::compile(&b.rego, caller.state.policy_syntax)
        .map_err(|e| ApiError::bad_request(format!("compile candidate: {e}")))?;
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                intentgate_shared::timestamp::Timestamp::parse_rfc3339(s)
                    .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
            })
            .transpose()
    };
    let text = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let req = crate::dry_run::Request {
        from: time("from", &b.from)?,
        to: time("to", &b.to)?,
        tenant: caller.scoped_tenant(b.tenant.as_deref())?,
        agent_id: text(b.agent_id),
        tool: text(b.tool),
        limit: b
            .limit
            .filter(|&n| n > 0)
            .unwrap_or(crate::dry_run::DEFAULT_LIMIT)
            .min(crate::dry_run::MAX_LIMIT),
        max_samples: b
            .max_samples
            .filter(|&n| n > 0)
            .unwrap_or(crate::dry_run::DEFAULT_SAMPLES)
            .min(crate::dry_run::MAX_SAMPLES),
    };
    let report = crate::dry_run::run(pool, &candidate, &b.rego, &req)
        .await
        .map_err(super::store_error)?;
    Ok(axum::Json(report))
}
