//! `/metrics` end to end: a known number of calls through the real binary, then a scrape
//! that must be valid Prometheus text (checked by hand and by an independent parser) and
//! whose counts must match the calls.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking; that is their job"
)]

use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "support/gateway.rs"]
mod support;
use support::*;

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_owned()
}

/// Checks the exposition format strictly and returns every sample by its series text
/// (`name{labels}`).
fn samples(text: &str) -> HashMap<String, f64> {
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut out = HashMap::new();
    let mut seen_families = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                seen_families.insert(name.to_owned()),
                "family twice: {name}"
            );
            typed.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{name}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            typed.contains_key(family),
            "{name} has no TYPE line before it"
        );
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{series}");
            for pair in labels[1..labels.len() - 1].split(',') {
                let (k, v) = pair.split_once('=').unwrap();
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{pair}"
                );
                assert!(v.starts_with('"') && v.ends_with('"'), "{pair}");
                for banned in ["tool", "agent", "jti", "tenant"] {
                    assert_ne!(k, banned, "unbounded label {k}");
                }
            }
        }
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(
            out.insert(series.to_owned(), v).is_none(),
            "series twice: {series}"
        );
    }
    out
}

#[test]
fn metrics_are_valid_prometheus_text_and_count_every_call() {
    let policy = temp_file("policy.rego", READ_ONLY_POLICY);
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
            ("INTENTGATE_METRICS_ENABLED", "true"),
            ("INTENTGATE_METRICS_ADDR", &metrics_addr.to_string()),
            ("INTENTGATE_ADMIN_TOKEN", "metrics-admin-token"),
        ],
    );
    assert_eq!(
        admin(
            gw.addr,
            "GET",
            "/v1/admin/revocations",
            "metrics-admin-token",
            ""
        )
        .status,
        200
    );
    assert_eq!(
        admin(gw.addr, "GET", "/v1/admin/revocations", "wrong-token", "").status,
        401
    );
    let token = mint(&["read_invoice", "delete_customer"], vec![]);
    for _ in 0..7 {
        let v = call(gw.addr, Some(&token), "read_invoice", json!({}));
        assert!(v.get("result").is_some(), "{v}");
    }
    for _ in 0..3 {
        assert_eq!(
            error_of(&call(gw.addr, Some(&token), "delete_customer", json!({}))).0,
            -32012
        );
    }
    for _ in 0..2 {
        assert_eq!(
            error_of(&call(
                gw.addr,
                Some("not-a-token"),
                "read_invoice",
                json!({})
            ))
            .0,
            -32010
        );
    }
    let health = raw(gw.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(health.status, 200);
    let unknown = raw(gw.addr, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(unknown.status, 404);

    // The drain thread tallies decisions a few milliseconds after the calls: wait until all
    // twelve reached the capability row, then scrape once more so no record is half-counted.
    let capability = |s: &HashMap<String, f64>| {
        ["allow", "block"]
            .iter()
            .map(|d| {
                s.get(&format!(
                    "intentgate_gateway_check_decisions_total{{check=\"capability\",decision=\"{d}\"}}"
                ))
                .copied()
                .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while capability(&samples(&scrape(metrics_addr))) < 12.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let text = scrape(metrics_addr);
    let s = samples(&text);
    let get = |series: &str| {
        *s.get(series)
            .unwrap_or_else(|| panic!("{series} missing from\n{text}"))
    };
    assert_eq!(
        get(
            "intentgate_gateway_http_requests_total{method=\"POST\",route=\"/v1/mcp\",status=\"2xx\"}"
        ),
        12.0
    );
    assert_eq!(
        get(
            "intentgate_gateway_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"2xx\"}"
        ),
        1.0
    );
    assert_eq!(
        get(
            "intentgate_gateway_http_requests_total{method=\"GET\",route=\"other\",status=\"4xx\"}"
        ),
        1.0
    );
    for (check, decision, n) in [
        ("capability", "allow", 10.0),
        ("capability", "block", 2.0),
        ("intent", "skip", 10.0),
        ("policy", "allow", 7.0),
        ("policy", "block", 3.0),
        ("budget", "allow", 7.0),
        ("budget", "block", 0.0),
    ] {
        assert_eq!(
            get(&format!(
                "intentgate_gateway_check_decisions_total{{check=\"{check}\",decision=\"{decision}\"}}"
            )),
            n,
            "{check} {decision}"
        );
    }
    // The histogram: cumulative buckets ending at +Inf = count = requests.
    let base = "intentgate_gateway_http_request_duration_seconds";
    let labels = "method=\"POST\",route=\"/v1/mcp\"";
    let mut last = 0.0;
    for bound in intentgate_shared::metrics::LATENCY_BOUNDS {
        let v = get(&format!("{base}_bucket{{{labels},le=\"{bound}\"}}"));
        assert!(v >= last, "buckets must not decrease");
        last = v;
    }
    assert_eq!(get(&format!("{base}_bucket{{{labels},le=\"+Inf\"}}")), 12.0);
    assert_eq!(get(&format!("{base}_count{{{labels}}}")), 12.0);
    assert!(get(&format!("{base}_sum{{{labels}}}")) > 0.0);
    assert_eq!(get("intentgate_gateway_audit_refusals_total"), 0.0);
    assert!(get("intentgate_gateway_audit_records_total") >= 12.0);
    assert!(get("intentgate_gateway_snapshot_age_seconds") >= 0.0);

    // Time per check: every call passed capability (the two bad tokens stopped there), ten
    // reached the policy, seven the budget. No extractor: no intent samples.
    for (check, n) in [("capability", 12.0), ("policy", 10.0), ("budget", 7.0)] {
        assert_eq!(
            get(&format!(
                "intentgate_gateway_check_duration_seconds_count{{check=\"{check}\"}}"
            )),
            n,
            "{check}"
        );
    }
    assert!(!text.contains("check_duration_seconds_count{check=\"intent\"}"));
    // Undecodable tokens never reach the revocation set.
    assert_eq!(
        get("intentgate_gateway_revocation_lookups_total{result=\"not_revoked\"}"),
        10.0
    );
    assert_eq!(
        get("intentgate_gateway_revocation_lookups_total{result=\"revoked\"}"),
        0.0
    );
    assert_eq!(
        get("intentgate_gateway_revocation_lookup_duration_seconds_count"),
        10.0
    );
    assert_eq!(
        get("intentgate_gateway_upstream_pool_idle_connections"),
        0.0
    );
    // One token verified once per core, then served from the cache; the two undecodable
    // tokens are misses too.
    let hits = get("intentgate_gateway_token_cache_lookups_total{result=\"hit\"}");
    let misses = get("intentgate_gateway_token_cache_lookups_total{result=\"miss\"}");
    assert_eq!(hits + misses, 12.0);
    assert!((3.0..=4.0).contains(&misses), "{misses} misses");
    for outcome in ["approved", "rejected", "timed_out"] {
        assert_eq!(
            get(&format!(
                "intentgate_gateway_approvals_total{{outcome=\"{outcome}\"}}"
            )),
            0.0
        );
    }
    // The admin listener's own requests, by route label (no ids) and status class.
    for (status, n) in [("2xx", 1.0), ("4xx", 1.0)] {
        assert_eq!(
            get(&format!(
                "intentgate_gateway_admin_requests_total{{method=\"GET\",route=\"/v1/admin/revocations\",status=\"{status}\"}}"
            )),
            n
        );
    }
    assert_eq!(
        get(
            "intentgate_gateway_admin_request_duration_seconds_count{route=\"/v1/admin/revocations\"}"
        ),
        2.0
    );

    // An independent parser reads the same numbers.
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let policy_blocks = parsed
        .samples
        .iter()
        .find(|x| {
            x.metric == "intentgate_gateway_check_decisions_total"
                && x.labels.get("check") == Some("policy")
                && x.labels.get("decision") == Some("block")
        })
        .unwrap();
    assert!(matches!(policy_blocks.value, prometheus_parse::Value::Counter(v) if v == 3.0));
}

#[test]
fn metrics_are_off_unless_enabled() {
    let metrics_addr = format!("127.0.0.1:{}", closed_port());
    let gw = spawn("serve", &[("INTENTGATE_METRICS_ADDR", &metrics_addr)]);
    assert_eq!(
        raw(gw.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
    assert!(
        TcpStream::connect(metrics_addr).is_err(),
        "nothing listens on the metrics port"
    );
}

/// Every line the gateway writes (stdout and stderr, debug level, audit lines included)
/// during a full run must be free of secrets.
#[test]
fn no_secret_reaches_the_logs_of_a_full_run() {
    use std::process::{Command, Stdio};
    let db = TempDb::new();
    // Trust auth accepts any password: it is there to be looked for in the logs.
    let url = match db
        .url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
    {
        Some((user, _)) if !user.contains(':') => {
            db.url
                .replacen(&format!("{user}@"), &format!("{user}:db-pass-5ecret@"), 1)
        }
        _ => panic!(
            "the test database URL needs a user and no password: {}",
            db.url
        ),
    };
    let (out_path, err_path) = (temp_file("stdout", ""), temp_file("stderr", ""));
    let admin_token = "admin-5ecret-token-value";
    let tenant_token = "tenant-5ecret-token-value";
    let port = closed_port();
    let sink = Receiver::start(|_, n| {
        if n % 2 == 0 {
            (503, String::new())
        } else {
            (200, "{}".into())
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_intentgate"))
        .arg("serve")
        .env_clear()
        .env("INTENTGATE_ADDR", format!("127.0.0.1:{port}"))
        .env("INTENTGATE_ADMIN_ADDR", "127.0.0.1:0")
        .env("INTENTGATE_MASTER_KEY", KEY)
        .env("INTENTGATE_DATAPLANE_THREADS", "2")
        .env("INTENTGATE_ADMIN_TOKEN", admin_token)
        .env("INTENTGATE_TENANT_ADMINS", format!("acme:{tenant_token}"))
        .env("INTENTGATE_POSTGRES_URL", &url)
        .env("INTENTGATE_AUDIT_PERSIST", "true")
        .env("INTENTGATE_AUDIT_TARGET", "stdout")
        // Fan-out targets whose credentials must stay out of the logs too; the receiver
        // refuses some requests so the failure paths log as well.
        .env(
            "INTENTGATE_WEBHOOK_URL",
            format!("http://{}/hook", sink.addr),
        )
        .env("INTENTGATE_WEBHOOK_SECRET", "webhook-5ecret-value")
        .env(
            "INTENTGATE_SIEM_SPLUNK_URL",
            format!("http://{}/hec", sink.addr),
        )
        .env("INTENTGATE_SIEM_SPLUNK_TOKEN", "splunk-5ecret-token")
        .env("INTENTGATE_SIEM_FLUSH_INTERVAL_MS", "50")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", sink.addr),
        )
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=otel-5ecret-key")
        .env("OTEL_TRACES_SAMPLER", "always_on")
        .env("LOG_LEVEL", "debug")
        .stdout(Stdio::from(std::fs::File::create(&out_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&out_path)
        .unwrap()
        .contains("data plane listening")
    {
        assert!(Instant::now() < deadline, "gateway did not start");
        assert!(child.try_wait().unwrap().is_none(), "gateway exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    let token = mint(&["read_invoice"], vec![]);
    assert!(
        call(addr, Some(&token), "read_invoice", json!({}))
            .get("result")
            .is_some()
    );
    let minted = admin(
        addr,
        "POST",
        "/v1/admin/mint",
        admin_token,
        r#"{"subject":"agent-9","tools":["read_invoice"],"ttl_seconds":600}"#,
    )
    .json();
    let minted_token = minted["token"].as_str().unwrap().to_owned();
    let jti = minted["jti"].as_str().unwrap().to_owned();
    assert!(
        call(addr, Some(&minted_token), "read_invoice", json!({}))
            .get("result")
            .is_some()
    );
    assert_eq!(
        admin(
            addr,
            "POST",
            "/v1/admin/revoke",
            admin_token,
            &format!(r#"{{"jti":"{jti}","reason":"test"}}"#)
        )
        .status,
        200
    );
    assert_eq!(
        error_of(&call(addr, Some(&minted_token), "read_invoice", json!({}))).0,
        -32010
    );
    // A token with a broken signature, a wrong admin token, a tenant admin's calls.
    let forged = format!("{}AAAA", &token[..token.len() - 4]);
    assert_eq!(
        error_of(&call(addr, Some(&forged), "read_invoice", json!({}))).0,
        -32010
    );
    assert_eq!(
        admin(
            addr,
            "GET",
            "/v1/admin/revocations",
            "wrong-5ecret-guess",
            ""
        )
        .status,
        401
    );
    assert_eq!(
        admin(addr, "GET", "/v1/admin/audit?tenant=acme", tenant_token, "").status,
        200
    );
    assert_eq!(
        admin(addr, "GET", "/v1/admin/audit/verify", admin_token, "").status,
        200
    );
    sigterm(&child);
    assert!(child.wait().unwrap().success());

    let logs =
        std::fs::read_to_string(&out_path).unwrap() + &std::fs::read_to_string(&err_path).unwrap();
    assert!(
        logs.contains("data plane listening") && logs.contains("admin/revoke"),
        "logs were captured"
    );
    // The runbook's event names, in JSON lines: one policy.decision per call (4 calls).
    let decisions = logs
        .lines()
        .filter(|l| l.contains("\"message\":\"policy.decision\""))
        .count();
    assert_eq!(decisions, 4, "{logs}");
    assert!(logs.contains("\"message\":\"audit.insert\""), "{logs}");
    for (what, secret) in [
        ("master key", KEY),
        ("admin token", admin_token),
        ("tenant admin token", tenant_token),
        ("wrong admin token", "wrong-5ecret-guess"),
        ("capability token", token.as_str()),
        ("minted capability token", minted_token.as_str()),
        ("forged token", forged.as_str()),
        ("token signature", &token[token.len() - 40..]),
        ("database password", "db-pass-5ecret"),
        ("webhook secret", "webhook-5ecret-value"),
        ("splunk token", "splunk-5ecret-token"),
        ("OTLP header", "otel-5ecret-key"),
    ] {
        assert!(!logs.contains(secret), "the {what} appears in the logs");
    }
}

/// Requests a receiver saw: (head, body).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A webhook receiver on loopback: answers 503 to the first request, 200 afterwards, and
/// keeps every request (head, body).
fn receiver() -> (SocketAddr, Seen) {
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let Some((head, body)) = read_message(&mut s, &mut Vec::new()) else {
                continue;
            };
            let first = {
                let mut l = log.lock().unwrap();
                l.push((head, String::from_utf8_lossy(&body).into_owned()));
                l.len() == 1
            };
            let status = if first {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = s.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (addr, seen)
}

fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), msg);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn webhooks_are_signed_retried_and_counted() {
    let policy = temp_file("policy.rego", READ_ONLY_POLICY);
    let (hook, seen) = receiver();
    let secret = "ab".repeat(32);
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
            ("INTENTGATE_WEBHOOK_URL", &format!("http://{hook}/hook")),
            ("INTENTGATE_WEBHOOK_SECRET", &secret),
            ("INTENTGATE_METRICS_ENABLED", "true"),
            ("INTENTGATE_METRICS_ADDR", &metrics_addr.to_string()),
        ],
    );
    let token = mint(&["read_invoice", "delete_customer"], vec![]);
    assert!(
        call(gw.addr, Some(&token), "read_invoice", json!({}))
            .get("result")
            .is_some()
    );
    assert_eq!(
        error_of(&call(gw.addr, Some(&token), "delete_customer", json!({}))).0,
        -32012
    );
    // First attempt answered 503, the retry (after 500 ms) 200.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no retry arrived: {:?}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "the allowed call sends nothing; the deny once, retried once: {seen:?}"
    );
    assert_eq!(seen[0].1, seen[1].1, "the retry sends the same event");
    let key = [0xabu8; 32];
    for (head, body) in &seen {
        assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
        assert_eq!(header(head, "content-type"), "application/json");
        assert_eq!(header(head, "user-agent"), "intentgate-gateway/webhook");
        assert_eq!(
            header(head, "x-intentgate-signature"),
            format!("sha256={}", hmac_hex(&key, body.as_bytes()))
        );
        let ts = header(head, "x-intentgate-timestamp");
        let age = intentgate_shared::timestamp::Timestamp::now().unix_seconds()
            - ts.parse::<i64>().unwrap();
        assert!((0..30).contains(&age), "timestamp {ts}");
        assert_eq!(
            header(head, "x-intentgate-signature-timestamped"),
            format!(
                "sha256={}",
                hmac_hex(&key, format!("{ts}.{body}").as_bytes())
            )
        );
    }
    let event: serde_json::Value = serde_json::from_str(&seen[0].1).unwrap();
    assert_eq!(event["event"], "intentgate.deny");
    assert_eq!(event["schema_version"], "1");
    assert_eq!(event["severity"], "warning");
    assert_eq!(event["decision"], "block");
    assert_eq!(event["check"], "policy");
    assert_eq!(event["tool"], "delete_customer");
    assert_eq!(event["tenant"], "acme");
    assert_eq!(event["agent_id"], "agent-1");
    assert_eq!(event["reason"], "read-only policy");

    let s = samples(&scrape(metrics_addr));
    assert_eq!(s["intentgate_gateway_webhook_delivered_total"], 1.0);
    assert_eq!(s["intentgate_gateway_webhook_retries_total"], 1.0);
    assert_eq!(s["intentgate_gateway_webhook_dropped_total"], 0.0);
}
