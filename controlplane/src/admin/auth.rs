//! Admin authentication: bearer tokens compared in constant time, every slot walked whatever
//! matched, and failed attempts from one address throttled. [`Caller`] is the extractor
//! every handler takes: it authenticates once, before the handler runs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ring::digest;

use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::config::Secret;
use intentgate_shared::timestamp::Timestamp;

use super::{AdminState, ApiError};

/// Failed attempts per address within [`WINDOW`] before further attempts are refused.
pub const MAX_FAILURES: u32 = 10;
/// The throttling window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Who is calling: `tenant` `None` is the superadmin (sees every tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant a tenant admin is bound to.
    pub tenant: Option<String>,
}

/// The configured admin tokens and the failure counters.
pub struct AdminAuth {
    /// The current superadmin token and, during a rotation, the previous one.
    superadmin: Vec<[u8; 32]>,
    tenants: Vec<(String, [u8; 32])>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("tenants", &self.tenants.len())
            .finish_non_exhaustive()
    }
}

/// Tokens are compared as SHA-256 digests: equal length, and the comparison time says
/// nothing about the token.
pub(super) fn digest_of(token: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token).as_ref());
    out
}

pub(super) fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AdminAuth {
    /// From `INTENTGATE_ADMIN_TOKEN` and `INTENTGATE_TENANT_ADMINS`.
    pub fn new(superadmin: Option<&Secret>, tenants: &[(String, Secret)]) -> Self {
        Self {
            superadmin: superadmin
                .map(|s| digest_of(s.expose().as_bytes()))
                .into_iter()
                .collect(),
            tenants: tenants
                .iter()
                .map(|(t, s)| (t.clone(), digest_of(s.expose().as_bytes())))
                .collect(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Also accepts `INTENTGATE_ADMIN_TOKEN_PREVIOUS` as the superadmin, so admin clients
    /// can move to a new token while replicas roll (docs/OPERATIONS.md).
    #[must_use]
    pub fn with_previous(mut self, previous: Option<&Secret>) -> Self {
        self.superadmin
            .extend(previous.map(|s| digest_of(s.expose().as_bytes())));
        self
    }

    /// Whether any admin token exists (else the admin API is absent: 404).
    pub fn enabled(&self) -> bool {
        !self.superadmin.is_empty() || !self.tenants.is_empty()
    }

    /// Tenants with an admin token.
    pub fn tenant_ids(&self) -> impl Iterator<Item = &str> {
        self.tenants.iter().map(|(t, _)| t.as_str())
    }

    /// Checks the `Authorization` header (with or without `Bearer `).
    pub fn authenticate(&self, ip: IpAddr, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let now = Instant::now();
        {
            let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((since, _)) = failures.get(&ip).filter(|(since, count)| {
                *count >= MAX_FAILURES && now.duration_since(*since) < WINDOW
            }) {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many failed admin logins from this address; retry later",
                );
                e.retry_after = Some(
                    WINDOW
                        .saturating_sub(now.duration_since(*since))
                        .as_secs()
                        .max(1),
                );
                return Err(e);
            }
        }
        let raw = headers
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let token = raw.strip_prefix(b"Bearer ").unwrap_or(raw).trim_ascii();
        if token.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "admin token required (Authorization: Bearer <token>)",
            ));
        }
        let d = digest_of(token);
        let mut found: Option<Principal> = None;
        for s in &self.superadmin {
            if ct_eq(s, &d) && found.is_none() {
                found = Some(Principal { tenant: None });
            }
        }
        for (tenant, t) in &self.tenants {
            // Walk every slot whatever matched, so timing does not reveal which one did.
            if ct_eq(t, &d) && found.is_none() {
                found = Some(Principal {
                    tenant: Some(tenant.clone()),
                });
            }
        }
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match found {
            Some(p) => {
                failures.remove(&ip);
                Ok(p)
            }
            None => {
                let entry = failures.entry(ip).or_insert((now, 0));
                if now.duration_since(entry.0) >= WINDOW {
                    *entry = (now, 0);
                }
                entry.1 += 1;
                // Bound the table: forget the oldest windows when it grows large.
                if failures.len() > 10_000 {
                    failures.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
                }
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid admin token",
                ))
            }
        }
    }
}

/// An authenticated admin call: the shared state, who is calling and from where. Extracting
/// it authenticates (throttled per client address), so a handler taking a `Caller` never runs
/// for a refused caller; the rejection is the same `{"error": …}` answer (401, 429 with
/// `Retry-After`) the handlers gave when each authenticated on its own.
pub struct Caller {
    /// What the handlers share.
    pub state: Arc<AdminState>,
    /// Who is calling.
    pub principal: Principal,
    /// The client address: the TCP peer, or the address the data plane relayed for.
    pub addr: SocketAddr,
    /// `X-IntentGate-Elevation-Id` (at most 128 bytes), recorded on the call's audit events.
    pub elevation_id: String,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("principal", &self.principal)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FromRequestParts<Arc<AdminState>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AdminState>,
    ) -> Result<Self, Response> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        // Failures are throttled per client address (the relayed one for calls arriving
        // through the data port, so one client cannot lock out every other).
        let addr = state.client_addr(peer, &parts.headers);
        let principal = state
            .auth
            .authenticate(addr.ip().to_canonical(), &parts.headers)
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            state: Arc::clone(state),
            principal,
            addr,
            elevation_id: elevation_id(&parts.headers),
        })
    }
}

fn elevation_id(headers: &HeaderMap) -> String {
    headers
        .get("x-intentgate-elevation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .unwrap_or_default()
        .to_owned()
}

impl Caller {
    /// The audit event of this caller's admin action (check `capability`).
    pub(super) fn event(&self, decision: Decision, tool: &str, tenant: &str) -> AuditEvent {
        let mut e = AuditEvent::new(Timestamp::now(), decision, tool).with_check(Check::Capability);
        e.tenant = tenant.to_owned();
        e.remote_ip = self.addr.to_string();
        e.elevation_id.clone_from(&self.elevation_id);
        e
    }

    /// The tenant the call acts for: a tenant admin's own (403 for another), else the
    /// explicit one.
    pub(super) fn scoped_tenant(&self, explicit: Option<&str>) -> Result<Option<String>, ApiError> {
        super::scoped_tenant(&self.principal, explicit)
    }
}
