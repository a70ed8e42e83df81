//! Typed configuration from the `INTENTGATE_*` environment (COMPATIBILITY.md §11.2 plus our additions).
//!
//! Every variable is read once at startup. An invalid value does not fall back to a default,
//! as the Go gateway often did: startup stops, and the message names the variable and what
//! it accepts. All problems are collected so an operator fixes them in one pass.
//! [`VARIABLES`] documents every variable; a test keeps it in step with the parser.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::PathBuf;

use crate::audit::redaction::Redaction;
use crate::key_ring::KeyRing;
use crate::policy::Syntax;

mod otel;
mod reader;
mod siem;
mod variables;

pub use otel::Otel;
use otel::read_otel;
pub use reader::{ConfigError, VarError, parse_listen_addr};
use reader::{Reader, default_addr, is_http_url};
pub use siem::{Datadog, S3, Sentinel, SiemOptions, Splunk};
use siem::{read_datadog, read_s3, read_sentinel, read_siem_options, read_splunk};
pub use variables::{VARIABLES, VarDoc};

/// A value that must never be printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself; call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where decisions are written besides the chain store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditTarget {
    /// One JSON line per event on stdout.
    Stdout,
    /// Nowhere.
    None,
}

/// When a decision may return relative to its audit row's commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditDurability {
    /// Return at once; a crash loses at most the unflushed batch.
    Async,
    /// Forward/return only after the row is committed.
    Sync,
}

/// Backend of a control-plane store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackend {
    /// Disabled.
    Off,
    /// In process memory.
    Memory,
    /// Postgres (`INTENTGATE_POSTGRES_URL`).
    Postgres,
}

/// Everything read from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `INTENTGATE_ADDR`: data plane listener.
    pub addr: SocketAddr,
    /// `INTENTGATE_ADMIN_ADDR`: control plane (admin API) listener.
    pub admin_addr: SocketAddr,
    /// `INTENTGATE_METRICS_ADDR`: Prometheus listener.
    pub metrics_addr: SocketAddr,
    /// `INTENTGATE_METRICS_ENABLED`.
    pub metrics_enabled: bool,
    /// `INTENTGATE_MASTER_KEY` and `INTENTGATE_MASTER_KEY_PREVIOUS`.
    pub keys: KeyRing,
    /// `INTENTGATE_REQUIRE_CAPABILITY` (default true: secure default).
    pub require_capability: bool,
    /// `INTENTGATE_REQUIRE_INTENT`.
    pub require_intent: bool,
    /// `INTENTGATE_REQUIRE_BUDGET`.
    pub require_budget: bool,
    /// `INTENTGATE_EXTRACTOR_URL`.
    pub extractor_url: Option<String>,
    /// `INTENTGATE_POLICY_FILE`.
    pub policy_file: Option<PathBuf>,
    /// `INTENTGATE_POLICY_SYNTAX`: Rego v1 (default) or v0 for policies written for the Go gateway.
    pub policy_syntax: Syntax,
    /// `INTENTGATE_REDIS_URL`.
    pub redis_url: Option<Secret>,
    /// `INTENTGATE_AUDIT_TARGET`.
    pub audit_target: AuditTarget,
    /// `INTENTGATE_AUDIT_PERSIST`.
    pub audit_persist: bool,
    /// `INTENTGATE_AUDIT_PERSIST_ARG_VALUES`.
    pub audit_arg_values: Redaction,
    /// `INTENTGATE_AUDIT_DURABILITY`.
    pub audit_durability: AuditDurability,
    /// `INTENTGATE_AUDIT_SIGNING_KEY`: a 32-byte Ed25519 seed, base64.
    pub audit_signing_key: Option<Secret>,
    /// `INTENTGATE_APPROVALS_BACKEND`.
    pub approvals_backend: StoreBackend,
    /// `INTENTGATE_APPROVAL_TIMEOUT_S` (0 means the default, 300).
    pub approval_timeout_s: u64,
    /// `INTENTGATE_POLICY_STORE`.
    pub policy_store: StoreBackend,
    /// `INTENTGATE_TENANT_ADMINS`: `(tenant, token)` pairs.
    pub tenant_admins: Vec<(String, Secret)>,
    /// `INTENTGATE_UPSTREAM_URL`.
    pub upstream_url: Option<String>,
    /// `INTENTGATE_UPSTREAM_TIMEOUT_MS`.
    pub upstream_timeout_ms: u64,
    /// `INTENTGATE_UPSTREAM_CA_FILE`: PEM certificates trusted for https upstreams, besides
    /// the Mozilla roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// `INTENTGATE_POSTGRES_URL`.
    pub postgres_url: Option<Secret>,
    /// `INTENTGATE_ADMIN_TOKEN`.
    pub admin_token: Option<Secret>,
    /// `INTENTGATE_ADMIN_TOKEN_PREVIOUS`: still accepted as the superadmin while admin
    /// clients move to a new token.
    pub admin_token_previous: Option<Secret>,
    /// `INTENTGATE_DATAPLANE_THREADS` (default: available cores).
    pub dataplane_threads: Option<NonZeroUsize>,
    /// `INTENTGATE_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `INTENTGATE_ADMIN_ON_DATA_PORT`.
    pub admin_on_data_port: bool,
    /// `INTENTGATE_SNAPSHOT_MAX_STALENESS_S`.
    pub snapshot_max_staleness_s: u64,
    /// `INTENTGATE_REPLICA_ID` (None: derive from the host name and port).
    pub replica_id: Option<String>,
    /// `INTENTGATE_MCP_SESSION_TTL_S`: the longest an MCP session id the gateway issued
    /// stays valid (never past its token's expiry).
    pub mcp_session_ttl_s: u64,
    /// `INTENTGATE_SHUTDOWN_DELAY_S`: after SIGTERM, how long `/healthz` reports draining
    /// while calls are still served, so load balancers stop routing here first.
    pub shutdown_delay_s: u64,
    /// `INTENTGATE_ALLOWED_ORIGINS` (empty: loopback origins only; `*`: any).
    pub allowed_origins: Vec<String>,
    /// `INTENTGATE_BUDGET_AGENT_PER_HOUR`.
    pub budget_agent_per_hour: Option<u64>,
    /// `INTENTGATE_BUDGET_TENANT_PER_HOUR`.
    pub budget_tenant_per_hour: Option<u64>,
    /// `INTENTGATE_WEBHOOK_URL`, `_SECRET`, `_EVENTS`.
    pub webhook: Option<Webhook>,
    /// `INTENTGATE_SIEM_SPLUNK_*`.
    pub splunk: Option<Splunk>,
    /// `INTENTGATE_SIEM_DATADOG_*`.
    pub datadog: Option<Datadog>,
    /// `INTENTGATE_SIEM_SENTINEL_*`.
    pub sentinel: Option<Sentinel>,
    /// `INTENTGATE_SIEM_S3_*` and the `AWS_*` credentials.
    pub s3: Option<S3>,
    /// Batching and spool sizes shared by the SIEM forwarders.
    pub siem: SiemOptions,
    /// `OTEL_*`: trace export.
    pub otel: Option<Otel>,
    /// `INTENTGATE_OAUTH_*`: OAuth 2.1 protected resource metadata for MCP clients.
    pub oauth: Option<OAuthResource>,
}

/// OAuth protected resource metadata (RFC 9728) this gateway publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthResource {
    /// The canonical URI of the MCP endpoint (`https://gw.example/v1/mcp`).
    pub resource: String,
    /// Authorization servers (issuer URLs), at least one.
    pub authorization_servers: Vec<String>,
    /// Scopes to advertise (may be empty).
    pub scopes: Vec<String>,
}

/// Webhook settings.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Target URL.
    pub url: String,
    /// HMAC secret (unsigned when absent).
    pub secret: Option<Secret>,
    /// Event types to send (empty: all).
    pub events: Vec<String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(|name| std::env::var(name).ok())
    }

    /// Reads from any source (tests pass a map). Variables are read (and their errors
    /// listed) in a fixed order; the combinations are checked last.
    pub fn from_source<F: Fn(&str) -> Option<String>>(get: F) -> Result<Self, ConfigError> {
        let mut r = Reader::new(get);
        let keys = read_master_keys(&mut r);
        let audit_arg_values = read_audit_arg_values(&mut r);
        let tenant_admins = read_tenant_admins(&mut r);
        let threads = r.opt_u64("INTENTGATE_DATAPLANE_THREADS", 1);
        let cfg = Config {
            addr: r.addr("INTENTGATE_ADDR", default_addr(8080)),
            admin_addr: r.addr(
                "INTENTGATE_ADMIN_ADDR",
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8081),
            ),
            metrics_addr: r.addr("INTENTGATE_METRICS_ADDR", default_addr(9090)),
            metrics_enabled: r.bool("INTENTGATE_METRICS_ENABLED", false),
            require_capability: r.bool("INTENTGATE_REQUIRE_CAPABILITY", true),
            require_intent: r.bool("INTENTGATE_REQUIRE_INTENT", false),
            require_budget: r.bool("INTENTGATE_REQUIRE_BUDGET", false),
            extractor_url: r.url("INTENTGATE_EXTRACTOR_URL"),
            policy_file: r.raw("INTENTGATE_POLICY_FILE").map(PathBuf::from),
            policy_syntax: r.choice(
                "INTENTGATE_POLICY_SYNTAX",
                Syntax::V1,
                &[("v1", Syntax::V1), ("v0", Syntax::V0)],
                "v1, v0",
            ),
            redis_url: r.secret("INTENTGATE_REDIS_URL"),
            audit_target: read_audit_target(&mut r),
            audit_persist: r.bool("INTENTGATE_AUDIT_PERSIST", false),
            audit_arg_values,
            audit_durability: read_audit_durability(&mut r),
            audit_signing_key: r.secret("INTENTGATE_AUDIT_SIGNING_KEY"),
            approvals_backend: read_backend(
                &mut r,
                "INTENTGATE_APPROVALS_BACKEND",
                StoreBackend::Memory,
            ),
            approval_timeout_s: match r.u64("INTENTGATE_APPROVAL_TIMEOUT_S", 300, 0) {
                0 => 300,
                n => n,
            },
            policy_store: read_backend(&mut r, "INTENTGATE_POLICY_STORE", StoreBackend::Off),
            tenant_admins,
            upstream_url: r.url("INTENTGATE_UPSTREAM_URL"),
            upstream_timeout_ms: r.u64("INTENTGATE_UPSTREAM_TIMEOUT_MS", 30_000, 1),
            upstream_ca_file: r.raw("INTENTGATE_UPSTREAM_CA_FILE").map(PathBuf::from),
            postgres_url: r.secret("INTENTGATE_POSTGRES_URL"),
            admin_token: r.secret("INTENTGATE_ADMIN_TOKEN"),
            admin_token_previous: r.secret("INTENTGATE_ADMIN_TOKEN_PREVIOUS"),
            dataplane_threads: threads
                .and_then(|n| usize::try_from(n).ok())
                .and_then(NonZeroUsize::new),
            max_body_bytes: usize::try_from(r.u64("INTENTGATE_MAX_BODY_BYTES", 1 << 20, 1))
                .unwrap_or(usize::MAX),
            admin_on_data_port: r.bool("INTENTGATE_ADMIN_ON_DATA_PORT", true),
            snapshot_max_staleness_s: r.u64("INTENTGATE_SNAPSHOT_MAX_STALENESS_S", 30, 1),
            replica_id: r.raw("INTENTGATE_REPLICA_ID"),
            mcp_session_ttl_s: r.u64("INTENTGATE_MCP_SESSION_TTL_S", 86_400, 1),
            shutdown_delay_s: r.u64("INTENTGATE_SHUTDOWN_DELAY_S", 0, 0),
            allowed_origins: r.list("INTENTGATE_ALLOWED_ORIGINS"),
            budget_agent_per_hour: r.opt_u64("INTENTGATE_BUDGET_AGENT_PER_HOUR", 1),
            budget_tenant_per_hour: r.opt_u64("INTENTGATE_BUDGET_TENANT_PER_HOUR", 1),
            webhook: read_webhook(&mut r),
            splunk: read_splunk(&mut r),
            datadog: read_datadog(&mut r),
            sentinel: read_sentinel(&mut r),
            s3: read_s3(&mut r),
            siem: read_siem_options(&mut r),
            otel: read_otel(&mut r),
            oauth: read_oauth(&mut r),
            keys: keys.unwrap_or_else(|| {
                KeyRing::single(crate::key_ring::MasterKey::from_bytes(&[0; 32]))
            }),
        };
        cfg.check_combinations(&mut r);
        r.finish(cfg)
    }

    /// Settings that are valid alone but not together.
    fn check_combinations<F: Fn(&str) -> Option<String>>(&self, r: &mut Reader<F>) {
        if let Some(key) = &self.audit_signing_key {
            let len = crate::key_ring::decode_base64_any(key.expose()).map(|k| k.len());
            if len != Some(32) {
                r.fail(
                    "INTENTGATE_AUDIT_SIGNING_KEY",
                    "must be a base64 32-byte Ed25519 seed (intentgate audit gen-signing-key)"
                        .into(),
                );
            } else if !self.audit_persist {
                r.fail(
                    "INTENTGATE_AUDIT_SIGNING_KEY",
                    "requires INTENTGATE_AUDIT_PERSIST=true (checkpoints sign persisted chains)"
                        .into(),
                );
            }
        }
        if self.audit_durability == AuditDurability::Sync && !self.audit_persist {
            r.fail(
                "INTENTGATE_AUDIT_DURABILITY",
                "sync requires INTENTGATE_AUDIT_PERSIST=true (there is no store to wait for)"
                    .into(),
            );
        }
        if self.audit_persist && self.postgres_url.is_none() {
            r.fail(
                "INTENTGATE_AUDIT_PERSIST",
                "true requires INTENTGATE_POSTGRES_URL".into(),
            );
        }
        for (var, backend) in [
            ("INTENTGATE_APPROVALS_BACKEND", self.approvals_backend),
            ("INTENTGATE_POLICY_STORE", self.policy_store),
        ] {
            if backend == StoreBackend::Postgres && self.postgres_url.is_none() {
                r.fail(var, "postgres requires INTENTGATE_POSTGRES_URL".into());
            }
        }
    }

    /// Whether any admin token is configured (without one the admin API answers 404).
    pub fn admin_enabled(&self) -> bool {
        self.admin_token.is_some() || !self.tenant_admins.is_empty()
    }
}

/// `INTENTGATE_MASTER_KEY` and `_PREVIOUS`; `None` (and an error) when either is unusable.
fn read_master_keys<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> Option<KeyRing> {
    match KeyRing::from_config(
        r.raw("INTENTGATE_MASTER_KEY").as_deref(),
        r.raw("INTENTGATE_MASTER_KEY_PREVIOUS").as_deref(),
    ) {
        Ok(k) => Some(k),
        Err(e) => {
            let var = match e {
                crate::key_ring::KeyError::EmptyPrevious { .. }
                | crate::key_ring::KeyError::Previous { .. } => "INTENTGATE_MASTER_KEY_PREVIOUS",
                _ => "INTENTGATE_MASTER_KEY",
            };
            r.fail(var, e.to_string());
            None
        }
    }
}

fn read_audit_arg_values<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> Redaction {
    match r
        .raw("INTENTGATE_AUDIT_PERSIST_ARG_VALUES")
        .unwrap_or_default()
        .parse()
    {
        Ok(m) => m,
        Err(e) => {
            r.fail("INTENTGATE_AUDIT_PERSIST_ARG_VALUES", format!("{e}"));
            Redaction::Off
        }
    }
}

/// `INTENTGATE_TENANT_ADMINS`, refused whole when an entry reuses another admin's token
/// (a shared token would give one admin another's scope: first match wins); also checks
/// that `INTENTGATE_ADMIN_TOKEN_PREVIOUS` only accompanies a new superadmin token.
fn read_tenant_admins<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> Vec<(String, Secret)> {
    let mut tenant_admins = parse_tenant_admins(r.raw("INTENTGATE_TENANT_ADMINS").as_deref())
        .unwrap_or_else(|e| {
            r.fail("INTENTGATE_TENANT_ADMINS", e.to_string());
            Vec::new()
        });
    let superadmin = r.raw("INTENTGATE_ADMIN_TOKEN");
    let previous = r.raw("INTENTGATE_ADMIN_TOKEN_PREVIOUS");
    if previous.is_some() && superadmin.is_none() {
        r.fail(
            "INTENTGATE_ADMIN_TOKEN_PREVIOUS",
            "set only during a rotation, beside the new INTENTGATE_ADMIN_TOKEN".into(),
        );
    }
    let reused = tenant_admins.iter().enumerate().find(|(i, (_, tok))| {
        superadmin.as_deref() == Some(tok.expose())
            || previous.as_deref() == Some(tok.expose())
            || tenant_admins[..*i].iter().any(|(_, other)| other == tok)
    });
    if let Some((i, _)) = reused {
        r.fail(
            "INTENTGATE_TENANT_ADMINS",
            format!(
                "entry #{} reuses another admin's token; every admin needs its own",
                i + 1
            ),
        );
        tenant_admins.clear();
    }
    tenant_admins
}

fn read_audit_target<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> AuditTarget {
    r.choice(
        "INTENTGATE_AUDIT_TARGET",
        AuditTarget::Stdout,
        &[
            ("stdout", AuditTarget::Stdout),
            ("none", AuditTarget::None),
            ("off", AuditTarget::None),
        ],
        "stdout, none, off",
    )
}

fn read_audit_durability<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> AuditDurability {
    r.choice(
        "INTENTGATE_AUDIT_DURABILITY",
        AuditDurability::Async,
        &[
            ("async", AuditDurability::Async),
            ("sync", AuditDurability::Sync),
        ],
        "async, sync",
    )
}

fn read_backend<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    var: &'static str,
    default: StoreBackend,
) -> StoreBackend {
    use StoreBackend::{Memory, Off, Postgres};
    r.choice(
        var,
        default,
        &[("off", Off), ("memory", Memory), ("postgres", Postgres)],
        "off, memory, postgres",
    )
}

fn read_webhook<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> Option<Webhook> {
    let url = r.url("INTENTGATE_WEBHOOK_URL");
    let secret = r.secret("INTENTGATE_WEBHOOK_SECRET");
    let events = r.list("INTENTGATE_WEBHOOK_EVENTS");
    if url.is_none()
        && (secret.is_some() || !events.is_empty())
        && r.raw("INTENTGATE_WEBHOOK_URL").is_none()
    {
        r.fail(
            "INTENTGATE_WEBHOOK_URL",
            "required when INTENTGATE_WEBHOOK_SECRET or _EVENTS is set".into(),
        );
    }
    url.map(|url| Webhook {
        url,
        secret,
        events,
    })
}

fn read_oauth<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> Option<OAuthResource> {
    let resource = r.url("INTENTGATE_OAUTH_RESOURCE");
    let servers = r.list("INTENTGATE_OAUTH_AUTHORIZATION_SERVERS");
    let scopes = r.list("INTENTGATE_OAUTH_SCOPES");
    let bad_server = servers.iter().find(|s| !is_http_url(s)).cloned();
    if let Some(bad) = bad_server {
        r.fail(
            "INTENTGATE_OAUTH_AUTHORIZATION_SERVERS",
            format!(
                "invalid entry {} (accepted: http:// or https:// issuer URLs)",
                Reader::<F>::shown(&bad)
            ),
        );
        return None;
    }
    if scopes
        .iter()
        .any(|s| s == "offline_access" || s.contains(['"', ' ', '\\']))
    {
        r.fail(
            "INTENTGATE_OAUTH_SCOPES",
            "scopes are plain tokens, and offline_access must not be advertised".into(),
        );
        return None;
    }
    match resource {
        Some(resource) if resource.contains('#') => {
            r.fail(
                "INTENTGATE_OAUTH_RESOURCE",
                "the canonical resource URI has no fragment".into(),
            );
            None
        }
        Some(resource) if servers.is_empty() => {
            let _ = resource;
            r.fail(
                "INTENTGATE_OAUTH_AUTHORIZATION_SERVERS",
                "at least one is required when INTENTGATE_OAUTH_RESOURCE is set".into(),
            );
            None
        }
        Some(resource) => Some(OAuthResource {
            resource: resource.trim_end_matches('/').to_owned(),
            authorization_servers: servers,
            scopes,
        }),
        None => {
            if !servers.is_empty() && r.raw("INTENTGATE_OAUTH_RESOURCE").is_none() {
                r.fail(
                    "INTENTGATE_OAUTH_RESOURCE",
                    "required when INTENTGATE_OAUTH_AUTHORIZATION_SERVERS is set".into(),
                );
            }
            None
        }
    }
}

/// An invalid `INTENTGATE_TENANT_ADMINS` (never shows a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantAdminsError {
    /// An entry without a colon (1-based).
    #[error("entry #{0} is not tenant:token")]
    NotPair(usize),
    /// An entry with an empty side (1-based).
    #[error("entry #{0} has an empty tenant or token")]
    Empty(usize),
    /// A tenant listed twice.
    #[error("tenant {0:?} is listed twice")]
    Duplicate(String),
}

/// Parses `tenant:token,tenant:token`. Errors never include a token.
pub fn parse_tenant_admins(
    value: Option<&str>,
) -> Result<Vec<(String, Secret)>, TenantAdminsError> {
    let mut out: Vec<(String, Secret)> = Vec::new();
    let Some(value) = value else { return Ok(out) };
    for (i, entry) in value.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((tenant, token)) = entry.split_once(':') else {
            return Err(TenantAdminsError::NotPair(i + 1));
        };
        let (tenant, token) = (tenant.trim(), token.trim());
        if tenant.is_empty() || token.is_empty() {
            return Err(TenantAdminsError::Empty(i + 1));
        }
        if out.iter().any(|(t, _)| t == tenant) {
            return Err(TenantAdminsError::Duplicate(tenant.to_owned()));
        }
        out.push((tenant.to_owned(), Secret(token.to_owned())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
