//! The documentation table of every `INTENTGATE_*` (and `OTEL_*`, `AWS_*`) variable:
//! `docs/CONFIGURATION.md` is rendered from it and checked against the reader.

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
        name: "INTENTGATE_MCP_SESSION_TTL_S",
        default: "86400",
        help: "seconds an MCP session id the gateway issued stays valid (never past its token's expiry); ids are sealed with a key derived from INTENTGATE_MASTER_KEY, so replicas sharing it accept each other's",
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
