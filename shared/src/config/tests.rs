use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use super::*;

fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_source(|k| map.get(k).cloned())
}

fn errors(pairs: &[(&str, &str)]) -> Vec<VarError> {
    parse(pairs).unwrap_err().0
}

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

#[test]
fn defaults_are_secure_and_compatible() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.addr.to_string(), "0.0.0.0:8080");
    assert_eq!(c.admin_addr.to_string(), "127.0.0.1:8081");
    assert_eq!(c.metrics_addr.to_string(), "0.0.0.0:9090");
    assert!(c.require_capability);
    assert!(!c.require_intent && !c.require_budget && !c.audit_persist && !c.metrics_enabled);
    assert!(c.admin_on_data_port);
    assert!(c.keys.is_ephemeral());
    assert_eq!(c.audit_target, AuditTarget::Stdout);
    assert_eq!(c.audit_durability, AuditDurability::Async);
    assert_eq!(c.approvals_backend, StoreBackend::Memory);
    assert_eq!(c.policy_store, StoreBackend::Off);
    assert_eq!(
        (
            c.approval_timeout_s,
            c.upstream_timeout_ms,
            c.max_body_bytes
        ),
        (300, 30_000, 1 << 20)
    );
    assert_eq!(c.snapshot_max_staleness_s, 30);
    assert!(!c.admin_enabled());
}

#[test]
fn values_are_parsed() {
    let c = parse(&[
        ("INTENTGATE_ADDR", "127.0.0.1:9000"),
        ("INTENTGATE_ADMIN_ADDR", "[::1]:9001"),
        ("INTENTGATE_METRICS_ADDR", "localhost:9002"),
        ("INTENTGATE_MASTER_KEY", KEY),
        ("INTENTGATE_MASTER_KEY_PREVIOUS", &format!("{KEY},{KEY}")),
        ("INTENTGATE_REQUIRE_CAPABILITY", "FALSE"),
        ("INTENTGATE_AUDIT_TARGET", "off"),
        ("INTENTGATE_AUDIT_PERSIST", "true"),
        ("INTENTGATE_POSTGRES_URL", "postgres://u:pw@127.0.0.1/db"),
        ("INTENTGATE_AUDIT_PERSIST_ARG_VALUES", "scalars"),
        ("INTENTGATE_AUDIT_DURABILITY", "sync"),
        ("INTENTGATE_APPROVAL_TIMEOUT_S", "0"),
        ("INTENTGATE_TENANT_ADMINS", "acme:t1, globex:t2"),
        ("INTENTGATE_UPSTREAM_URL", "http://127.0.0.1:7000/mcp"),
        ("INTENTGATE_DATAPLANE_THREADS", "2"),
        (
            "INTENTGATE_ALLOWED_ORIGINS",
            "https://a.example, https://b.example",
        ),
        ("INTENTGATE_BUDGET_AGENT_PER_HOUR", "100"),
        ("INTENTGATE_ADMIN_TOKEN", "root"),
        ("INTENTGATE_POLICY_SYNTAX", "V0"),
    ])
    .unwrap();
    assert_eq!(c.addr.to_string(), "127.0.0.1:9000");
    assert_eq!(c.admin_addr.to_string(), "[::1]:9001");
    assert_eq!(c.metrics_addr.to_string(), "127.0.0.1:9002");
    assert_eq!(c.keys.keys().count(), 3);
    assert!(!c.require_capability);
    assert_eq!(c.audit_target, AuditTarget::None);
    assert_eq!(c.audit_arg_values, Redaction::Scalars);
    assert_eq!(c.audit_durability, AuditDurability::Sync);
    assert_eq!(c.approval_timeout_s, 300);
    assert_eq!(c.tenant_admins.len(), 2);
    assert_eq!(c.tenant_admins[1].0, "globex");
    assert_eq!(c.dataplane_threads.map(NonZeroUsize::get), Some(2));
    assert_eq!(
        c.allowed_origins,
        ["https://a.example", "https://b.example"]
    );
    assert_eq!(c.budget_agent_per_hour, Some(100));
    assert!(c.admin_enabled());
    assert_eq!(c.policy_syntax, crate::policy::Syntax::V0);
}

#[test]
fn each_invalid_value_names_the_variable_and_what_it_accepts() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "INTENTGATE_REQUIRE_CAPABILITY",
            "yes",
            "accepted: true, false",
        ),
        ("INTENTGATE_METRICS_ENABLED", "on", "accepted: true, false"),
        ("INTENTGATE_ADDR", "8080", "accepted: host:port"),
        (
            "INTENTGATE_ADMIN_ADDR",
            "example.com:80",
            "accepted: host:port",
        ),
        (
            "INTENTGATE_AUDIT_TARGET",
            "file",
            "accepted: stdout, none, off",
        ),
        (
            "INTENTGATE_AUDIT_DURABILITY",
            "eventually",
            "accepted: async, sync",
        ),
        (
            "INTENTGATE_AUDIT_PERSIST_ARG_VALUES",
            "most",
            "accepted: off, scalars, raw",
        ),
        (
            "INTENTGATE_APPROVALS_BACKEND",
            "redis",
            "accepted: off, memory, postgres",
        ),
        (
            "INTENTGATE_POLICY_STORE",
            "s3",
            "accepted: off, memory, postgres",
        ),
        ("INTENTGATE_POLICY_SYNTAX", "v2", "accepted: v1, v0"),
        ("INTENTGATE_APPROVAL_TIMEOUT_S", "-1", "an integer >= 0"),
        ("INTENTGATE_UPSTREAM_TIMEOUT_MS", "0", "an integer >= 1"),
        ("INTENTGATE_MAX_BODY_BYTES", "1MB", "an integer >= 1"),
        ("INTENTGATE_DATAPLANE_THREADS", "0", "an integer >= 1"),
        ("INTENTGATE_UPSTREAM_URL", "ftp://x", "http:// or https://"),
        ("INTENTGATE_EXTRACTOR_URL", "http://", "http:// or https://"),
        ("INTENTGATE_MASTER_KEY", "c2hvcnQ", "at least 16"),
        (
            "INTENTGATE_MASTER_KEY_PREVIOUS",
            "%%%",
            "previous master key #1",
        ),
        ("INTENTGATE_TENANT_ADMINS", "acme", "not tenant:token"),
        ("INTENTGATE_TENANT_ADMINS", "acme:a,acme:b", "listed twice"),
        ("INTENTGATE_TENANT_ADMINS", "acme:", "empty tenant or token"),
        (
            "INTENTGATE_TENANT_ADMINS",
            "acme:t1,globex:t1",
            "entry #2 reuses another admin's token",
        ),
        (
            "INTENTGATE_AUDIT_PERSIST",
            "true",
            "requires INTENTGATE_POSTGRES_URL",
        ),
        (
            "INTENTGATE_AUDIT_DURABILITY",
            "sync",
            "sync requires INTENTGATE_AUDIT_PERSIST=true",
        ),
        (
            "INTENTGATE_AUDIT_SIGNING_KEY",
            "c2hvcnQ",
            "must be a base64 32-byte Ed25519 seed",
        ),
        (
            "INTENTGATE_POLICY_STORE",
            "postgres",
            "requires INTENTGATE_POSTGRES_URL",
        ),
        (
            "INTENTGATE_SIEM_SPLUNK_URL",
            "https://splunk.example",
            "INTENTGATE_SIEM_SPLUNK_URL is set",
        ),
        (
            "INTENTGATE_SIEM_SENTINEL_STREAM",
            "s",
            "required when any INTENTGATE_SIEM_SENTINEL_*",
        ),
        (
            "INTENTGATE_WEBHOOK_SECRET",
            "s",
            "required when INTENTGATE_WEBHOOK_SECRET",
        ),
    ];
    for (var, value, needle) in cases {
        let errs = errors(&[(var, value)]);
        assert!(
            errs.iter().any(|e| e.message.contains(needle)),
            "{var}={value}: {errs:?} lacks {needle:?}"
        );
    }
}

#[test]
fn a_tenant_token_equal_to_the_superadmin_token_is_refused() {
    let errs = errors(&[
        ("INTENTGATE_ADMIN_TOKEN", "same"),
        ("INTENTGATE_TENANT_ADMINS", "acme:same"),
    ]);
    assert!(
        errs.iter()
            .any(|e| e.message.contains("entry #1 reuses another admin's token")),
        "{errs:?}"
    );
}

#[test]
fn a_previous_admin_token_needs_a_current_one_and_its_own_value() {
    let errs = errors(&[("INTENTGATE_ADMIN_TOKEN_PREVIOUS", "old")]);
    assert!(
        errs.iter()
            .any(|e| e.var == "INTENTGATE_ADMIN_TOKEN_PREVIOUS"
                && e.message.contains("beside the new")),
        "{errs:?}"
    );
    let errs = errors(&[
        ("INTENTGATE_ADMIN_TOKEN", "new"),
        ("INTENTGATE_ADMIN_TOKEN_PREVIOUS", "old"),
        ("INTENTGATE_TENANT_ADMINS", "acme:old"),
    ]);
    assert!(
        errs.iter()
            .any(|e| e.message.contains("entry #1 reuses another admin's token")),
        "{errs:?}"
    );
    let cfg = parse(&[
        ("INTENTGATE_ADMIN_TOKEN", "new"),
        ("INTENTGATE_ADMIN_TOKEN_PREVIOUS", "old"),
    ])
    .unwrap();
    assert_eq!(
        cfg.admin_token_previous.map(|s| s.expose().to_owned()),
        Some("old".into())
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let err = parse(&[("INTENTGATE_ADDR", "x"), ("INTENTGATE_AUDIT_TARGET", "y")]).unwrap_err();
    assert_eq!(err.0.len(), 2);
    let text = err.to_string();
    assert!(
        text.contains("INTENTGATE_ADDR: invalid value \"x\""),
        "{text}"
    );
    assert!(text.contains("INTENTGATE_AUDIT_TARGET"), "{text}");
}

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    let err = parse(&[(
        "INTENTGATE_TENANT_ADMINS",
        "acme:sekrit-token,acme:other-sekrit",
    )])
    .unwrap_err();
    assert!(!err.to_string().contains("sekrit"));
    let c = parse(&[
        ("INTENTGATE_ADMIN_TOKEN", "sekrit-admin"),
        ("INTENTGATE_POSTGRES_URL", "postgres://u:sekrit-pw@h/db"),
        ("INTENTGATE_MASTER_KEY", KEY),
        ("INTENTGATE_TENANT_ADMINS", "acme:sekrit-tenant"),
    ])
    .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("sekrit"), "{shown}");
    assert!(!shown.contains(KEY), "{shown}");
    let err = parse(&[("INTENTGATE_MASTER_KEY", "sekrit-but-not-base64!")]).unwrap_err();
    assert!(!err.to_string().contains("sekrit"));
}

#[test]
fn variables_table_lists_exactly_what_the_parser_reads() {
    let read = RefCell::new(BTreeSet::new());
    let _ = Config::from_source(|k| {
        read.borrow_mut().insert(k.to_string());
        None
    });
    // Optional groups are only read fully once their first variable is set.
    let _ = Config::from_source(|k| {
        read.borrow_mut().insert(k.to_string());
        k.starts_with("INTENTGATE_SIEM_")
            .then(|| "https://x.example".to_string())
    });
    let documented: BTreeSet<String> = VARIABLES.iter().map(|v| v.name.to_string()).collect();
    assert_eq!(*read.borrow(), documented);
}
