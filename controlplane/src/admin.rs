//! The admin API (COMPATIBILITY.md §2.3, §2.4): bearer-token auth for the superadmin and per-tenant
//! admins, tenant scoping (403 for an explicit foreign tenant, 404 for a foreign object), and
//! the routes for tokens (`mint`, `revoke`, `revocations`, `tenants`), approvals and the
//! audit chain (`admin::audit`). Every mutation is audited.
//!
//! Errors are `{"error": "..."}` with the compat status codes. Bodies are capped at 64 KiB
//! and unknown fields are refused.

mod audit;
pub mod auth;
mod body;
mod policies;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::approvals::Approvals;
use intentgate_shared::approval::{DecideError, Status};
use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::audit_sink::AuditRecorder;
use intentgate_shared::key_ring::KeyRing;
use intentgate_shared::snapshot::SnapshotCell;
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::{Caveat, MintRequest, Token};

use self::auth::{AdminAuth, Caller, Principal};
use self::body::JsonBody;
use crate::revocation::RevocationStore;

/// Largest admin request body.
pub const MAX_BODY: usize = 64 * 1024;

/// An admin API failure: status and message, rendered as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A failure with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(json!({"error": self.message}))).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert("retry-after", secs.into());
        }
        resp
    }
}

/// Everything the handlers share.
pub struct AdminState {
    /// Who may call.
    pub auth: AdminAuth,
    /// Keys for minting.
    pub keys: KeyRing,
    /// Published snapshot (revocations go here).
    pub snapshot: Arc<SnapshotCell>,
    /// Revocation persistence.
    pub revocations: RevocationStore,
    /// The control plane's audit ring (its own producer in the data plane's handoff).
    pub audit: Mutex<Box<dyn AuditRecorder>>,
    /// The approvals queue (None: approval routes are absent, as in the Go gateway).
    pub approvals: Option<Approvals>,
    /// The persisted audit chain (None: audit routes answer 404, as in the Go gateway).
    pub audit_store: Option<sqlx::PgPool>,
    /// Public key of the checkpoint signer (base64), when signing is configured.
    pub audit_public_key: Option<String>,
    /// The policy lifecycle (None: `INTENTGATE_POLICY_STORE=off`, the routes answer 503).
    pub policies: Option<Arc<crate::policies::PolicyManager>>,
    /// The Rego dialect candidates compile in (`INTENTGATE_POLICY_SYNTAX`).
    pub policy_syntax: intentgate_shared::policy::Syntax,
    /// SHA-256 of the secret the data plane's relay presents (`X-IntentGate-Relay-Secret`).
    pub relay_secret: Option<[u8; 32]>,
    /// What `GET /v1/admin/integrations` reports.
    pub integrations: Integrations,
}

/// The fan-out targets whose state `GET /v1/admin/integrations` reports.
#[derive(Debug, Default)]
pub struct Integrations {
    /// The SIEM forwarders.
    pub forwarders: Vec<Arc<crate::siem::Status>>,
    /// The webhook's shown URL and counters, when on.
    pub webhook: Option<(String, Arc<crate::webhook::WebhookStats>)>,
}

/// The digest [`AdminState::relay_secret`] holds for a relay secret.
pub fn relay_secret_digest(secret: &str) -> [u8; 32] {
    auth::digest_of(secret.as_bytes())
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").finish_non_exhaustive()
    }
}

/// The router; `None` when no admin token is configured (every admin path is then 404).
pub fn router(state: Arc<AdminState>) -> Option<Router> {
    if !state.auth.enabled() {
        return None;
    }
    let mut app = Router::new()
        .route("/v1/admin/mint", post(mint))
        .route("/v1/admin/revoke", post(revoke))
        .route("/v1/admin/revocations", get(revocations))
        .route("/v1/admin/tenants", get(tenants))
        .route("/v1/admin/integrations", get(integrations))
        .route(
            "/v1/admin/policies/drafts",
            get(policies::list_drafts).post(policies::create_draft),
        )
        .route(
            "/v1/admin/policies/drafts/{id}",
            get(policies::get_draft)
                .put(policies::put_draft)
                .delete(policies::delete_draft),
        )
        .route(
            "/v1/admin/policies/active",
            get(policies::get_active)
                .post(policies::promote)
                .delete(policies::clear),
        )
        .route("/v1/admin/policies/rollback", post(policies::rollback))
        .route("/v1/admin/policies/dry-run", post(policies::dry_run));
    if state.audit_store.is_some() {
        app = app
            .route("/v1/admin/audit", get(audit::query))
            .route("/v1/admin/audit/verify", get(audit::verify))
            .route("/v1/admin/audit/export", get(audit::export))
            .route("/v1/admin/audit/checkpoints", get(audit::checkpoints));
    }
    if state.approvals.is_some() {
        app = app
            .route("/v1/admin/approvals", get(approvals))
            .route("/v1/admin/approvals/{id}/decide", post(decide));
    }
    Some(
        app.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such admin route") })
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(state),
    )
}

impl AdminState {
    /// Caller address: the TCP peer, or the address the data plane relayed for. The relayed
    /// address is believed only from a loopback peer that also presents this process's relay
    /// secret (any local process could send the header; only the data plane knows the secret).
    fn client_addr(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        let from_relay = peer.ip().to_canonical().is_loopback()
            && self.relay_secret.as_ref().is_some_and(|want| {
                headers
                    .get("x-intentgate-relay-secret")
                    .is_some_and(|got| auth::ct_eq(&auth::digest_of(got.as_bytes()), want))
            });
        let relayed = headers
            .get("x-intentgate-relayed-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<SocketAddr>().ok());
        match relayed {
            Some(r) if from_relay => r,
            _ => peer,
        }
    }

    /// Pushes an admin event; a full ring refuses the mutation's answer with 503 (the change
    /// itself already happened, and says so).
    fn record(&self, event: AuditEvent) -> Result<(), ApiError> {
        let mut audit = self.audit.lock().unwrap_or_else(PoisonError::into_inner);
        audit.push(event).map_err(|_| {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "change applied, but the audit queue is full: retry the read to confirm",
            );
            e.retry_after = Some(1);
            e
        })?;
        Ok(())
    }
}

/// The tenant a call acts for: a tenant admin's own (403 for another), else the explicit one.
fn scoped_tenant(
    principal: &Principal,
    explicit: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let explicit = explicit.map(str::trim).filter(|t| !t.is_empty());
    match (&principal.tenant, explicit) {
        (Some(own), Some(other)) if own != other => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tenant admins may only act for their own tenant",
        )),
        (Some(own), _) => Ok(Some(own.clone())),
        (None, explicit) => Ok(explicit.map(str::to_owned)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    subject: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    ttl_seconds: i64,
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    max_calls: i64,
    #[serde(default)]
    step_up: bool,
}

async fn mint(
    caller: Caller,
    JsonBody(b): JsonBody<MintBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let subject = b.subject.trim().to_owned();
    if subject.is_empty() {
        return Err(ApiError::bad_request("subject is required"));
    }
    if b.ttl_seconds < 0 {
        return Err(ApiError::bad_request("ttl_seconds must not be negative"));
    }
    if b.max_calls < 0 {
        return Err(ApiError::bad_request("max_calls must not be negative"));
    }
    let tenant = caller
        .scoped_tenant(b.tenant.as_deref())?
        .unwrap_or_else(|| "default".into());
    let now = Timestamp::now().unix_seconds();
    let mut caveats = vec![Caveat::agent_lock(&subject)];
    if b.ttl_seconds > 0 {
        caveats.push(Caveat::exp(now.saturating_add(b.ttl_seconds)));
    }
    let tools: Vec<String> = b
        .tools
        .iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if !tools.is_empty() {
        caveats.push(Caveat::tool_allow(tools));
    }
    if b.max_calls > 0 {
        caveats.push(Caveat::max_calls(b.max_calls));
    }
    if b.step_up {
        caveats.push(Caveat::step_up(now));
    }
    let req = MintRequest {
        subject: subject.clone(),
        issuer: b.issuer,
        tenant: tenant.clone(),
        caveats,
        ..MintRequest::default()
    };
    let token = Token::mint(caller.state.keys.current(), req, now)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let expires_at = token
        .expires_at()
        .map(|s| Timestamp::from_unix_micros(s.saturating_mul(1_000_000)).to_rfc3339_nano())
        .unwrap_or_default();
    let mut event = caller.event(Decision::Allow, "admin/mint", &tenant);
    event.reason = format!("token minted for subject={subject}");
    event.agent_id.clone_from(&subject);
    event.capability_token_id.clone_from(&token.claims.jti);
    event
        .root_capability_token_id
        .clone_from(&token.claims.root_jti);
    event.caveat_count = token.caveats.len() as i64;
    caller.state.record(event)?;
    Ok(axum::Json(json!({
        "token": token.encode(),
        "jti": token.claims.jti,
        "subject": subject,
        "expires_at": expires_at,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    jti: String,
    #[serde(default)]
    reason: String,
}

async fn revoke(
    caller: Caller,
    JsonBody(b): JsonBody<RevokeBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let state = &caller.state;
    let jti = b.jti.trim().to_owned();
    if jti.is_empty() {
        return Err(ApiError::bad_request("jti is required"));
    }
    let tenant = caller.principal.tenant.clone().unwrap_or_default();
    state
        .revocations
        .revoke(&jti, &tenant, &b.reason)
        .await
        .map_err(store_error)?;
    crate::revocation::publish(&state.snapshot, &jti, &tenant);
    let mut event = caller.event(Decision::Block, "admin/revoke", &tenant);
    event.reason = format!("token revoked: {}", b.reason);
    event.capability_token_id.clone_from(&jti);
    state.record(event)?;
    Ok(axum::Json(json!({"ok": true, "jti": jti})))
}

/// A store failure: 503, so clients retry; the text names no connection details.
fn store_error(e: sqlx::Error) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("store error: {e}"))
}

/// `limit` (default 100, 1..=1000) and `offset` (≥ 0). Unlike the Go gateway, which fell back
/// to the default silently, a value that is not an integer is a 400.
fn page(params: &std::collections::HashMap<String, String>) -> Result<(i64, i64), ApiError> {
    let int = |name: &str, default: i64| -> Result<i64, ApiError> {
        match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("{name} must be an integer"))),
        }
    };
    Ok((int("limit", 100)?.clamp(1, 1000), int("offset", 0)?.max(0)))
}

async fn revocations(
    Query(params): Query<std::collections::HashMap<String, String>>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    let (limit, offset) = page(&params)?;
    let rows = caller
        .state
        .revocations
        .list(caller.principal.tenant.as_deref(), limit, offset)
        .await
        .map_err(store_error)?;
    let list: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let mut v = json!({"jti": r.jti, "revoked_at": r.revoked_at.to_rfc3339_nano()});
            if !r.reason.is_empty() {
                v["reason"] = r.reason.into();
            }
            if !r.tenant.is_empty() {
                v["tenant"] = r.tenant.into();
            }
            v
        })
        .collect();
    Ok(axum::Json(
        json!({"revocations": list, "limit": limit, "offset": offset}),
    ))
}

async fn tenants(caller: Caller) -> Result<axum::Json<Value>, ApiError> {
    let mut ids: Vec<&str> = match &caller.principal.tenant {
        Some(own) => vec![own.as_str()],
        None => caller.state.auth.tenant_ids().collect(),
    };
    ids.sort_unstable();
    let list: Vec<Value> = ids
        .into_iter()
        .map(|id| json!({"id": id, "has_admin": true}))
        .collect();
    Ok(axum::Json(json!({"tenants": list})))
}

/// `GET /v1/admin/integrations` (compat shape plus buffer use, flush timings and the
/// webhook): each SIEM forwarder's state. Superadmin only; a tenant admin gets 403 (the Go
/// gateway answered 401, as if the token were wrong).
async fn integrations(caller: Caller) -> Result<axum::Json<Value>, ApiError> {
    if caller.principal.tenant.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "integrations are visible to the superadmin only",
        ));
    }
    let i = &caller.state.integrations;
    Ok(axum::Json(crate::siem::integrations_json(
        &i.forwarders,
        i.webhook.as_ref(),
    )))
}

async fn approvals(
    Query(params): Query<std::collections::HashMap<String, String>>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    let (limit, offset) = page(&params)?;
    let status = match params
        .get("status")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request("status must be one of pending, approved, rejected, timeout")
        })?),
    };
    let queue = caller
        .state
        .approvals
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "approvals are off"))?;
    let rows = queue
        .list(caller.principal.tenant.as_deref(), status, limit, offset)
        .await
        .map_err(store_error)?;
    let list: Vec<Value> = rows.iter().map(|r| r.to_json()).collect();
    Ok(axum::Json(
        json!({"approvals": list, "limit": limit, "offset": offset}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    decision: String,
    #[serde(default)]
    decided_by: String,
    #[serde(default)]
    note: String,
}

async fn decide(
    Path(id): Path<String>,
    caller: Caller,
    JsonBody(b): JsonBody<DecideBody>,
) -> Result<Response, ApiError> {
    let (state, principal) = (&caller.state, &caller.principal);
    let approved = match b.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return Err(ApiError::bad_request(
                "decision must be \"approve\" or \"reject\"",
            ));
        }
    };
    let queue = state
        .approvals
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "approvals are off"))?;
    let decided = queue
        .decide(
            &id,
            approved,
            &b.decided_by,
            &b.note,
            principal.tenant.as_deref(),
        )
        .await
        .map_err(store_error)?;
    match decided {
        Ok(row) => {
            let decision = if approved {
                Decision::Allow
            } else {
                Decision::Block
            };
            let mut event = caller.event(decision, "admin/decide_approval", &row.tenant);
            event.check = Check::Policy.into();
            // decided_by is the reviewer's free text (compat); the audit says who really acted.
            let actor = principal
                .tenant
                .as_deref()
                .map_or("superadmin".to_string(), |t| format!("tenant admin {t}"));
            event.reason = format!(
                "{} by {} (as {actor})",
                if approved { "approved" } else { "rejected" },
                b.decided_by
            );
            event.pending_id.clone_from(&row.pending_id);
            event.decided_by = b.decided_by;
            event.agent_id.clone_from(&row.agent_id);
            state.record(event)?;
            Ok(axum::Json(row.to_json()).into_response())
        }
        Err(DecideError::NotFound) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such pending approval",
        )),
        Err(DecideError::AlreadyDecided(row)) => Ok((
            StatusCode::CONFLICT,
            axum::Json(json!({"error": "already decided", "current": row.to_json()})),
        )
            .into_response()),
    }
}

#[cfg(test)]
mod tests;
