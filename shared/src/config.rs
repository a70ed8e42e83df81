//! Typed configuration from the `INTENTGATE_*` environment (compat §11.2 plus our additions).
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
mod siem;

pub use otel::Otel;
use otel::read_otel;
pub use siem::{Datadog, S3, Sentinel, SiemOptions, Splunk};
use siem::{read_datadog, read_s3, read_sentinel, read_siem_options, read_splunk};

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

/// One documented variable.
#[derive(Debug, Clone, Copy)]
pub struct VarDoc {
    /// Name.
    pub name: &'static str,
    /// Default, as text ("" = unset).
    pub default: &'static str,
    /// What it does and accepts.
    pub help: &'static str,
}

/// Every variable [`Config::from_source`] reads.
pub const VARIABLES: &[VarDoc] = &[
    VarDoc {
        name: "INTENTGATE_ADDR",
        default: ":8080",
        help: "data plane listen address (host:port or :port)",
    },
    VarDoc {
        name: "INTENTGATE_ADMIN_ADDR",
        default: "127.0.0.1:8081",
        help: "admin API listen address",
    },
    VarDoc {
        name: "INTENTGATE_METRICS_ADDR",
        default: ":9090",
        help: "Prometheus listen address",
    },
    VarDoc {
        name: "INTENTGATE_METRICS_ENABLED",
        default: "false",
        help: "serve /metrics (true|false)",
    },
    VarDoc {
        name: "INTENTGATE_MASTER_KEY",
        default: "",
        help: "base64 HMAC key, >= 16 bytes; unset: ephemeral random key (never logged)",
    },
    VarDoc {
        name: "INTENTGATE_MASTER_KEY_PREVIOUS",
        default: "",
        help: "comma-separated older keys still accepted for verification",
    },
    VarDoc {
        name: "INTENTGATE_REQUIRE_CAPABILITY",
        default: "true",
        help: "deny calls without a capability token (true|false)",
    },
    VarDoc {
        name: "INTENTGATE_REQUIRE_INTENT",
        default: "false",
        help: "deny calls without an intent prompt (true|false)",
    },
    VarDoc {
        name: "INTENTGATE_REQUIRE_BUDGET",
        default: "false",
        help: "deny calls without a token when budgets apply (true|false)",
    },
    VarDoc {
        name: "INTENTGATE_EXTRACTOR_URL",
        default: "",
        help: "intent extractor base URL (http or https)",
    },
    VarDoc {
        name: "INTENTGATE_POLICY_FILE",
        default: "",
        help: "Rego policy file; unset: embedded default policy",
    },
    VarDoc {
        name: "INTENTGATE_POLICY_SYNTAX",
        default: "v1",
        help: "Rego syntax of policies: v1 | v0 (v0: as the Go gateway parsed them)",
    },
    VarDoc {
        name: "INTENTGATE_REDIS_URL",
        default: "",
        help: "Redis URL for budget counters; unset: in memory",
    },
    VarDoc {
        name: "INTENTGATE_AUDIT_TARGET",
        default: "stdout",
        help: "stdout | none | off",
    },
    VarDoc {
        name: "INTENTGATE_AUDIT_PERSIST",
        default: "false",
        help: "write the audit chain to Postgres (true|false)",
    },
    VarDoc {
        name: "INTENTGATE_AUDIT_PERSIST_ARG_VALUES",
        default: "off",
        help: "off | scalars | raw",
    },
    VarDoc {
        name: "INTENTGATE_AUDIT_DURABILITY",
        default: "async",
        help: "async | sync",
    },
    VarDoc {
        name: "INTENTGATE_AUDIT_SIGNING_KEY",
        default: "",
        help: "base64 Ed25519 seed (32 bytes): sign a chain checkpoint per audit batch",
    },
    VarDoc {
        name: "INTENTGATE_APPROVALS_BACKEND",
        default: "memory",
        help: "off | memory | postgres",
    },
    VarDoc {
        name: "INTENTGATE_APPROVAL_TIMEOUT_S",
        default: "300",
        help: "seconds an escalated call waits; 0 means 300",
    },
    VarDoc {
        name: "INTENTGATE_POLICY_STORE",
        default: "off",
        help: "off | memory | postgres",
    },
    VarDoc {
        name: "INTENTGATE_TENANT_ADMINS",
        default: "",
        help: "tenant:token,... per-tenant admin tokens",
    },
    VarDoc {
        name: "INTENTGATE_UPSTREAM_URL",
        default: "",
        help: "upstream MCP server URL (http or https); unset: local fallback",
    },
    VarDoc {
        name: "INTENTGATE_UPSTREAM_TIMEOUT_MS",
        default: "30000",
        help: "upstream timeout in ms (positive integer)",
    },
    VarDoc {
        name: "INTENTGATE_UPSTREAM_CA_FILE",
        default: "",
        help: "PEM file of extra CA certificates for https upstreams and extractors",
    },
    VarDoc {
        name: "INTENTGATE_POSTGRES_URL",
        default: "",
        help: "Postgres URL for all stores",
    },
    VarDoc {
        name: "INTENTGATE_ADMIN_TOKEN",
        default: "",
        help: "superadmin token; unset (and no tenant admins): admin API answers 404",
    },
    VarDoc {
        name: "INTENTGATE_ADMIN_TOKEN_PREVIOUS",
        default: "",
        help: "previous superadmin token, still accepted during a rotation; needs INTENTGATE_ADMIN_TOKEN",
    },
    VarDoc {
        name: "INTENTGATE_DATAPLANE_THREADS",
        default: "",
        help: "data plane threads; unset: available cores",
    },
    VarDoc {
        name: "INTENTGATE_MAX_BODY_BYTES",
        default: "1048576",
        help: "largest request body in bytes",
    },
    VarDoc {
        name: "INTENTGATE_ADMIN_ON_DATA_PORT",
        default: "true",
        help: "relay /v1/admin/* from the data port (true|false)",
    },
    VarDoc {
        name: "INTENTGATE_SNAPSHOT_MAX_STALENESS_S",
        default: "30",
        help: "fail closed when the snapshot is older (seconds)",
    },
    VarDoc {
        name: "INTENTGATE_REPLICA_ID",
        default: "<hostname>:<port of INTENTGATE_ADDR>",
        help: "this process's name on shared pending approvals; unique per replica",
    },
    VarDoc {
        name: "INTENTGATE_SHUTDOWN_DELAY_S",
        default: "0",
        help: "after SIGTERM, seconds /healthz answers 503 draining while calls are still served",
    },
    VarDoc {
        name: "INTENTGATE_ALLOWED_ORIGINS",
        default: "",
        help: "browser origins allowed on /v1/mcp and /v1/tool-call (comma-separated; * allows any); unset: loopback origins only. Requests without Origin are not affected",
    },
    VarDoc {
        name: "INTENTGATE_BUDGET_AGENT_PER_HOUR",
        default: "",
        help: "per-agent calls per hour; unset: off",
    },
    VarDoc {
        name: "INTENTGATE_BUDGET_TENANT_PER_HOUR",
        default: "",
        help: "per-tenant calls per hour; unset: off",
    },
    VarDoc {
        name: "INTENTGATE_WEBHOOK_URL",
        default: "",
        help: "webhook target URL",
    },
    VarDoc {
        name: "INTENTGATE_WEBHOOK_SECRET",
        default: "",
        help: "webhook HMAC secret (64 hex chars = 32 bytes, else raw bytes)",
    },
    VarDoc {
        name: "INTENTGATE_WEBHOOK_EVENTS",
        default: "",
        help: "comma-separated webhook event types; unset: all",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_SPLUNK_URL",
        default: "",
        help: "Splunk HEC URL (needs _TOKEN)",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_SPLUNK_TOKEN",
        default: "",
        help: "Splunk HEC token",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_SPLUNK_INDEX",
        default: "",
        help: "Splunk index",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_DATADOG_API_KEY",
        default: "",
        help: "Datadog API key",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_DATADOG_SITE",
        default: "datadoghq.com",
        help: "Datadog site",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_DATADOG_SERVICE",
        default: "intentgate-gateway",
        help: "Datadog service",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_SENTINEL_DCE_URL",
        default: "",
        help: "Sentinel data collection endpoint (all six _SENTINEL_ vars together)",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_SENTINEL_DCR_ID",
        default: "",
        help: "Sentinel data collection rule id",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_SENTINEL_STREAM",
        default: "",
        help: "Sentinel stream",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_SENTINEL_TENANT_ID",
        default: "",
        help: "Sentinel Entra tenant id",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_SENTINEL_CLIENT_ID",
        default: "",
        help: "Sentinel client id",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_SENTINEL_CLIENT_SECRET",
        default: "",
        help: "Sentinel client secret",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_SENTINEL_AUTHORITY_URL",
        default: "https://login.microsoftonline.com",
        help: "OAuth authority for the Sentinel client-credentials token (sovereign clouds)",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_DATADOG_URL",
        default: "https://http-intake.logs.<site>/api/v2/logs",
        help: "Datadog Logs intake URL; overrides the one derived from _SITE",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_S3_BUCKET",
        default: "",
        help: "S3 bucket for gzip NDJSON audit objects (needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_S3_PREFIX",
        default: "audit/",
        help: "key prefix of the audit objects",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_S3_REGION",
        default: "us-east-1",
        help: "bucket region (signing scope); unset: AWS_REGION, else us-east-1",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_S3_KMS_KEY_ID",
        default: "",
        help: "KMS key id: objects are written with SSE-KMS",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_S3_GATEWAY_ID",
        default: "gateway",
        help: "this gateway's name in object keys (letters, digits, . _ -)",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_S3_ENDPOINT",
        default: "",
        help: "S3-compatible endpoint URL (MinIO, R2, ...); unset: AWS",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_S3_FORCE_PATH_STYLE",
        default: "false",
        help: "address the bucket in the path, not the host name (true|false)",
    },
    VarDoc {
        name: "AWS_REGION",
        default: "",
        help: "region used when INTENTGATE_SIEM_S3_REGION is unset",
    },
    VarDoc {
        name: "AWS_ACCESS_KEY_ID",
        default: "",
        help: "S3 forwarder access key id",
    },
    VarDoc {
        name: "AWS_SECRET_ACCESS_KEY",
        default: "",
        help: "S3 forwarder secret key",
    },
    VarDoc {
        name: "AWS_SESSION_TOKEN",
        default: "",
        help: "S3 forwarder session token (temporary credentials)",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_BATCH_SIZE",
        default: "100",
        help: "events per SIEM request (1-10000)",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_FLUSH_INTERVAL_MS",
        default: "5000",
        help: "longest wait before a partial SIEM batch is sent (ms, >= 10)",
    },
    VarDoc {
        name: "INTENTGATE_SIEM_SPOOL_EVENTS",
        default: "100000",
        help: "events each SIEM forwarder holds while its receiver is down; beyond it new events are dropped and counted",
    },
    VarDoc {
        name: "INTENTGATE_OAUTH_RESOURCE",
        default: "",
        help: "canonical URI of the MCP endpoint (https://gw.example/v1/mcp): publishes OAuth protected resource metadata and answers token-less MCP calls 401 with WWW-Authenticate",
    },
    VarDoc {
        name: "INTENTGATE_OAUTH_AUTHORIZATION_SERVERS",
        default: "",
        help: "comma-separated authorization server (issuer) URLs for the metadata; required with INTENTGATE_OAUTH_RESOURCE",
    },
    VarDoc {
        name: "INTENTGATE_OAUTH_SCOPES",
        default: "",
        help: "comma-separated scopes to advertise in the metadata and the 401 challenge",
    },
    VarDoc {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        default: "",
        help: "OTLP/HTTP collector base URL (traces go to <url>/v1/traces); unset: no traces",
    },
    VarDoc {
        name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        default: "",
        help: "full OTLP/HTTP traces URL; overrides OTEL_EXPORTER_OTLP_ENDPOINT",
    },
    VarDoc {
        name: "OTEL_EXPORTER_OTLP_PROTOCOL",
        default: "http/json",
        help: "http/json (the only protocol this build speaks)",
    },
    VarDoc {
        name: "OTEL_EXPORTER_OTLP_HEADERS",
        default: "",
        help: "key=value,... headers sent to the collector (treated as secret)",
    },
    VarDoc {
        name: "OTEL_TRACES_SAMPLER",
        default: "parentbased_always_on",
        help: "always_on | always_off | traceidratio | parentbased_always_on | parentbased_always_off | parentbased_traceidratio",
    },
    VarDoc {
        name: "OTEL_TRACES_SAMPLER_ARG",
        default: "1.0",
        help: "sampling ratio for the traceidratio samplers (0.0-1.0)",
    },
    VarDoc {
        name: "OTEL_SERVICE_NAME",
        default: "intentgate-gateway",
        help: "service.name of the exported spans",
    },
];

/// One invalid variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarError {
    /// Variable name.
    pub var: &'static str,
    /// What is wrong and what is accepted (never the value of a secret).
    pub message: String,
}

/// All invalid variables found; displayed as one line per variable, so each
/// misconfiguration is a line of its own at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|e| format!("{}: {}", e.var, e.message)).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<VarError>);

struct Reader<F> {
    get: F,
    errors: Vec<VarError>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    /// The trimmed value, `None` when unset or blank.
    fn raw(&self, var: &str) -> Option<String> {
        (self.get)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn fail(&mut self, var: &'static str, message: String) {
        self.errors.push(VarError { var, message });
    }

    /// Shows a non-secret value in an error, shortened.
    fn shown(value: &str) -> String {
        format!("{:?}", value.chars().take(80).collect::<String>())
    }

    fn bool(&mut self, var: &'static str, default: bool) -> bool {
        match self.raw(var).map(|v| v.to_ascii_lowercase()) {
            None => default,
            Some(v) if v == "true" || v == "1" => true,
            Some(v) if v == "false" || v == "0" => false,
            Some(v) => {
                self.fail(
                    var,
                    format!("invalid value {} (accepted: true, false)", Self::shown(&v)),
                );
                default
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        var: &'static str,
        default: T,
        options: &[(&str, T)],
        accepted: &str,
    ) -> T {
        let Some(v) = self.raw(var) else {
            return default;
        };
        let lower = v.to_ascii_lowercase();
        match options.iter().find(|(name, _)| *name == lower) {
            Some((_, value)) => *value,
            None => {
                self.fail(
                    var,
                    format!("invalid value {} (accepted: {accepted})", Self::shown(&v)),
                );
                default
            }
        }
    }

    fn u64(&mut self, var: &'static str, default: u64, min: u64) -> u64 {
        self.opt_u64(var, min).unwrap_or(default)
    }

    fn opt_u64(&mut self, var: &'static str, min: u64) -> Option<u64> {
        let v = self.raw(var)?;
        match v.parse::<u64>() {
            Ok(n) if n >= min => Some(n),
            _ => {
                self.fail(
                    var,
                    format!(
                        "invalid value {} (accepted: an integer >= {min})",
                        Self::shown(&v)
                    ),
                );
                None
            }
        }
    }

    fn addr(&mut self, var: &'static str, default: SocketAddr) -> SocketAddr {
        let Some(v) = self.raw(var) else {
            return default;
        };
        match parse_listen_addr(&v) {
            Some(a) => a,
            None => {
                self.fail(
                    var,
                    format!(
                        "invalid value {} (accepted: host:port, [v6]:port or :port)",
                        Self::shown(&v)
                    ),
                );
                default
            }
        }
    }

    fn url(&mut self, var: &'static str) -> Option<String> {
        let v = self.raw(var)?;
        if is_http_url(&v) {
            Some(v)
        } else {
            self.fail(
                var,
                format!(
                    "invalid value {} (accepted: an http:// or https:// URL with a host)",
                    Self::shown(&v)
                ),
            );
            None
        }
    }

    fn secret(&self, var: &str) -> Option<Secret> {
        self.raw(var).map(Secret)
    }

    fn list(&self, var: &str) -> Vec<String> {
        self.raw(var)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses `host:port`, `[v6]:port` or Go's `:port` (all interfaces).
pub fn parse_listen_addr(s: &str) -> Option<SocketAddr> {
    if let Some(port) = s.strip_prefix(':') {
        return port
            .parse::<u16>()
            .ok()
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    match host {
        "localhost" => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
        _ => None,
    }
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !host.starts_with(':') && !host.contains(char::is_whitespace)
        }
        None => false,
    }
}

fn default_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(|name| std::env::var(name).ok())
    }

    /// Reads from any source (tests pass a map).
    pub fn from_source<F: Fn(&str) -> Option<String>>(get: F) -> Result<Self, ConfigError> {
        use StoreBackend::{Memory, Off, Postgres};
        let mut r = Reader {
            get,
            errors: Vec::new(),
        };
        let backends = [("off", Off), ("memory", Memory), ("postgres", Postgres)];

        let keys = match KeyRing::from_config(
            r.raw("INTENTGATE_MASTER_KEY").as_deref(),
            r.raw("INTENTGATE_MASTER_KEY_PREVIOUS").as_deref(),
        ) {
            Ok(k) => Some(k),
            Err(e) => {
                let var = match e {
                    crate::key_ring::KeyError::EmptyPrevious { .. }
                    | crate::key_ring::KeyError::Previous { .. } => {
                        "INTENTGATE_MASTER_KEY_PREVIOUS"
                    }
                    _ => "INTENTGATE_MASTER_KEY",
                };
                r.fail(var, e.to_string());
                None
            }
        };

        let audit_arg_values = match r
            .raw("INTENTGATE_AUDIT_PERSIST_ARG_VALUES")
            .unwrap_or_default()
            .parse()
        {
            Ok(m) => m,
            Err(e) => {
                r.fail("INTENTGATE_AUDIT_PERSIST_ARG_VALUES", format!("{e}"));
                Redaction::Off
            }
        };

        let mut tenant_admins = parse_tenant_admins(r.raw("INTENTGATE_TENANT_ADMINS").as_deref())
            .unwrap_or_else(|m| {
                r.fail("INTENTGATE_TENANT_ADMINS", m);
                Vec::new()
            });
        // A shared token would give one admin another's scope (first match wins).
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
            audit_target: r.choice(
                "INTENTGATE_AUDIT_TARGET",
                AuditTarget::Stdout,
                &[
                    ("stdout", AuditTarget::Stdout),
                    ("none", AuditTarget::None),
                    ("off", AuditTarget::None),
                ],
                "stdout, none, off",
            ),
            audit_persist: r.bool("INTENTGATE_AUDIT_PERSIST", false),
            audit_arg_values,
            audit_durability: r.choice(
                "INTENTGATE_AUDIT_DURABILITY",
                AuditDurability::Async,
                &[
                    ("async", AuditDurability::Async),
                    ("sync", AuditDurability::Sync),
                ],
                "async, sync",
            ),
            audit_signing_key: r.secret("INTENTGATE_AUDIT_SIGNING_KEY"),
            approvals_backend: r.choice(
                "INTENTGATE_APPROVALS_BACKEND",
                Memory,
                &backends,
                "off, memory, postgres",
            ),
            approval_timeout_s: match r.u64("INTENTGATE_APPROVAL_TIMEOUT_S", 300, 0) {
                0 => 300,
                n => n,
            },
            policy_store: r.choice(
                "INTENTGATE_POLICY_STORE",
                Off,
                &backends,
                "off, memory, postgres",
            ),
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
        if let Some(key) = &cfg.audit_signing_key {
            let len = crate::key_ring::decode_base64_any(key.expose()).map(|k| k.len());
            if len != Some(32) {
                r.fail(
                    "INTENTGATE_AUDIT_SIGNING_KEY",
                    "must be a base64 32-byte Ed25519 seed (intentgate audit gen-signing-key)"
                        .into(),
                );
            } else if !cfg.audit_persist {
                r.fail(
                    "INTENTGATE_AUDIT_SIGNING_KEY",
                    "requires INTENTGATE_AUDIT_PERSIST=true (checkpoints sign persisted chains)"
                        .into(),
                );
            }
        }
        if cfg.audit_durability == AuditDurability::Sync && !cfg.audit_persist {
            r.fail(
                "INTENTGATE_AUDIT_DURABILITY",
                "sync requires INTENTGATE_AUDIT_PERSIST=true (there is no store to wait for)"
                    .into(),
            );
        }
        if cfg.audit_persist && cfg.postgres_url.is_none() {
            r.fail(
                "INTENTGATE_AUDIT_PERSIST",
                "true requires INTENTGATE_POSTGRES_URL".into(),
            );
        }
        for (var, backend) in [
            ("INTENTGATE_APPROVALS_BACKEND", cfg.approvals_backend),
            ("INTENTGATE_POLICY_STORE", cfg.policy_store),
        ] {
            if backend == Postgres && cfg.postgres_url.is_none() {
                r.fail(var, "postgres requires INTENTGATE_POSTGRES_URL".into());
            }
        }
        if r.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError(r.errors))
        }
    }

    /// Whether any admin token is configured (without one the admin API answers 404).
    pub fn admin_enabled(&self) -> bool {
        self.admin_token.is_some() || !self.tenant_admins.is_empty()
    }
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

/// Parses `tenant:token,tenant:token`. Errors never include a token.
pub fn parse_tenant_admins(value: Option<&str>) -> Result<Vec<(String, Secret)>, String> {
    let mut out: Vec<(String, Secret)> = Vec::new();
    let Some(value) = value else { return Ok(out) };
    for (i, entry) in value.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((tenant, token)) = entry.split_once(':') else {
            return Err(format!("entry #{} is not tenant:token", i + 1));
        };
        let (tenant, token) = (tenant.trim(), token.trim());
        if tenant.is_empty() || token.is_empty() {
            return Err(format!("entry #{} has an empty tenant or token", i + 1));
        }
        if out.iter().any(|(t, _)| t == tenant) {
            return Err(format!("tenant {tenant:?} is listed twice"));
        }
        out.push((tenant.to_owned(), Secret(token.to_owned())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
