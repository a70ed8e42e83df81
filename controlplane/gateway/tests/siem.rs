//! The SIEM forwarders against loopback receivers that check each request's exact format:
//! Splunk HEC, Datadog Logs, Microsoft Sentinel (OAuth client credentials, then the Logs
//! Ingestion API) and S3 (Signature Version 4, gzip NDJSON, Hive-partitioned keys). Outages,
//! retries, recovery, a full spool, a permanent refusal and the flush at shutdown.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking; that is their job"
)]

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/gateway.rs"]
mod support;
use support::*;

const ADMIN: &str = "siem-admin-token";

/// Four allowed and two denied calls: six audit records.
fn make_calls(addr: SocketAddr) -> usize {
    let token = mint(&[], vec![]);
    for tool in [
        "read_invoice",
        "read_invoice",
        "delete_invoice",
        "read_invoice",
        "delete_invoice",
        "read_invoice",
    ] {
        call(addr, Some(&token), tool, json!({"id": 7}));
    }
    6
}

fn integrations(gw: &Gateway) -> BTreeMap<String, Value> {
    let r = admin(gw.addr, "GET", "/v1/admin/integrations", ADMIN, "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap().to_owned(), i.clone()))
        .collect()
}

fn accepted(r: &Receiver, path_start: &str) -> Vec<Recorded> {
    r.requests()
        .into_iter()
        .filter(|q| q.target.starts_with(path_start) && (200..300).contains(&q.status))
        .collect()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[test]
fn each_forwarder_sends_its_exact_format_and_an_outage_loses_nothing() {
    let policy = temp_file("policy.rego", READ_ONLY_POLICY);
    let splunk_calls = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(AtomicUsize::new(0));
    let (sc, tk) = (Arc::clone(&splunk_calls), Arc::clone(&tokens));
    let rx = Receiver::start(move |req, _| {
        let t = req.target.as_str();
        if t == "/services/collector/event" {
            // Splunk is down for its first two requests.
            let n = sc.fetch_add(1, Ordering::SeqCst);
            return if n < 2 {
                (503, String::new())
            } else {
                (200, r#"{"text":"Success","code":0}"#.into())
            };
        }
        if t == "/api/v2/logs" {
            return (202, "{}".into());
        }
        if t == "/tenant-1/oauth2/v2.0/token" {
            let n = tk.fetch_add(1, Ordering::SeqCst) + 1;
            return (
                200,
                format!(r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"tok-{n}"}}"#),
            );
        }
        if t.starts_with("/dataCollectionRules/") {
            // The first token is refused (as after a rotation); only the newest is good.
            let good = format!("Bearer tok-{}", tk.load(Ordering::SeqCst));
            return if req.header("authorization") == good && good != "Bearer tok-1" {
                (204, String::new())
            } else {
                (401, String::new())
            };
        }
        if t.starts_with("/audit-bucket/") {
            return (200, String::new());
        }
        (404, String::new())
    });
    let base = format!("http://{}", rx.addr);
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
            ("INTENTGATE_ADMIN_TOKEN", ADMIN),
            ("INTENTGATE_REPLICA_ID", "gw-test"),
            ("INTENTGATE_METRICS_ENABLED", "true"),
            ("INTENTGATE_METRICS_ADDR", &metrics_addr.to_string()),
            ("INTENTGATE_SIEM_FLUSH_INTERVAL_MS", "100"),
            (
                "INTENTGATE_SIEM_SPLUNK_URL",
                &format!("{base}/services/collector/event"),
            ),
            ("INTENTGATE_SIEM_SPLUNK_TOKEN", "splunk-hec-5ecret"),
            ("INTENTGATE_SIEM_SPLUNK_INDEX", "security"),
            ("INTENTGATE_SIEM_DATADOG_API_KEY", "dd-api-5ecret"),
            (
                "INTENTGATE_SIEM_DATADOG_URL",
                &format!("{base}/api/v2/logs"),
            ),
            ("INTENTGATE_SIEM_DATADOG_SERVICE", "gw-svc"),
            ("INTENTGATE_SIEM_SENTINEL_DCE_URL", &base),
            ("INTENTGATE_SIEM_SENTINEL_DCR_ID", "dcr-1"),
            ("INTENTGATE_SIEM_SENTINEL_STREAM", "Custom-IntentGate"),
            ("INTENTGATE_SIEM_SENTINEL_TENANT_ID", "tenant-1"),
            ("INTENTGATE_SIEM_SENTINEL_CLIENT_ID", "client-1"),
            (
                "INTENTGATE_SIEM_SENTINEL_CLIENT_SECRET",
                "sentinel-5ecret&x=y",
            ),
            ("INTENTGATE_SIEM_SENTINEL_AUTHORITY_URL", &base),
            ("INTENTGATE_SIEM_S3_BUCKET", "audit-bucket"),
            ("INTENTGATE_SIEM_S3_ENDPOINT", &base),
            ("INTENTGATE_SIEM_S3_FORCE_PATH_STYLE", "true"),
            ("INTENTGATE_SIEM_S3_REGION", "eu-west-1"),
            ("INTENTGATE_SIEM_S3_GATEWAY_ID", "gw-test"),
            ("INTENTGATE_SIEM_S3_KMS_KEY_ID", "kms-key-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
            ("AWS_SECRET_ACCESS_KEY", "aws-5ecret-key"),
        ],
    );
    let n = make_calls(gw.addr);
    let all_in = wait_until(Duration::from_secs(20), || {
        integrations(&gw)
            .values()
            .all(|i| i["total_events"].as_u64() == Some(n as u64))
    });
    assert!(
        all_in,
        "not every forwarder delivered {n}: {:?}",
        integrations(&gw)
    );

    // Splunk: two refused attempts of the same batch, then accepted; every record exactly once.
    let splunk = accepted(&rx, "/services/collector/event");
    let mut tools = Vec::new();
    for q in &splunk {
        assert_eq!(q.method, "POST");
        assert_eq!(q.header("authorization"), "Splunk splunk-hec-5ecret");
        assert_eq!(q.header("content-type"), "application/json");
        for line in String::from_utf8(q.body.clone()).unwrap().lines() {
            let env: Value = serde_json::from_str(line).unwrap();
            assert_eq!(env["source"], "intentgate");
            assert_eq!(env["sourcetype"], "_json");
            assert_eq!(env["index"], "security");
            let ts = intentgate_shared::timestamp::Timestamp::parse_rfc3339(
                env["event"]["ts"].as_str().unwrap(),
            )
            .unwrap();
            let t = env["time"].as_f64().unwrap();
            assert!(
                (t - ts.unix_micros() as f64 / 1e6).abs() < 1e-5,
                "{t} vs {ts}"
            );
            tools.push(env["event"]["tool"].as_str().unwrap().to_owned());
        }
    }
    tools.sort();
    assert_eq!(
        tools,
        [vec!["delete_invoice"; 2], vec!["read_invoice"; 4]].concat()
    );
    assert!(splunk_calls.load(Ordering::SeqCst) >= 3);

    // Datadog: the v2 intake array.
    let mut entries = Vec::new();
    for q in accepted(&rx, "/api/v2/logs") {
        assert_eq!(q.header("dd-api-key"), "dd-api-5ecret");
        entries.extend(serde_json::from_slice::<Vec<Value>>(&q.body).unwrap());
    }
    assert_eq!(entries.len(), n);
    for e in &entries {
        assert_eq!(e["service"], "gw-svc");
        assert_eq!(e["ddsource"], "intentgate");
        assert_eq!(e["hostname"], "gw-test");
        let blocked = e["audit"]["decision"] == "block";
        assert_eq!(e["status"], if blocked { "warn" } else { "info" });
        let expect = format!(
            "{} {} tool={} agent=agent-1 reason={}",
            e["audit"]["decision"].as_str().unwrap(),
            e["audit"]["check"].as_str().unwrap_or(""),
            e["audit"]["tool"].as_str().unwrap(),
            e["audit"]["reason"].as_str().unwrap_or("")
        );
        assert_eq!(e["message"], expect);
    }

    // Sentinel: a client-credentials token, refused once, renewed, then the stream accepts.
    let token_reqs: Vec<Recorded> = rx
        .requests()
        .into_iter()
        .filter(|q| q.target == "/tenant-1/oauth2/v2.0/token")
        .collect();
    assert!(token_reqs.len() >= 2, "the refused token was not renewed");
    let form = String::from_utf8(token_reqs[0].body.clone()).unwrap();
    assert_eq!(
        token_reqs[0].header("content-type"),
        "application/x-www-form-urlencoded"
    );
    for field in [
        "grant_type=client_credentials",
        "client_id=client-1",
        "client_secret=sentinel-5ecret%26x%3Dy",
        "scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default",
    ] {
        assert!(form.split('&').any(|f| f == field), "{field} not in {form}");
    }
    let mut sentinel_events = 0;
    for q in accepted(&rx, "/dataCollectionRules/") {
        assert_eq!(
            q.target,
            "/dataCollectionRules/dcr-1/streams/Custom-IntentGate?api-version=2023-01-01"
        );
        let rows: Vec<Value> = serde_json::from_slice(&q.body).unwrap();
        assert!(
            rows.iter()
                .all(|r| r["event"] == "intentgate.tool_call" && r["tool"].is_string())
        );
        sentinel_events += rows.len();
    }
    assert_eq!(sentinel_events, n);

    // S3: SigV4-signed PUTs of gzip NDJSON under Hive partitions, with SSE-KMS.
    let mut lines = 0;
    for q in accepted(&rx, "/audit-bucket/") {
        assert_eq!(q.method, "PUT");
        let key = q.target.strip_prefix("/audit-bucket/").unwrap();
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 6, "{key}");
        assert_eq!(parts[0], "audit");
        for (p, name) in parts[1..5].iter().zip(["year", "month", "day", "hour"]) {
            assert!(p.starts_with(&format!("{name}%3D")), "{key}");
        }
        assert!(parts[5].starts_with("gw-test-") && parts[5].ends_with(".ndjson.gz"));
        assert_eq!(q.header("content-encoding"), "gzip");
        assert_eq!(q.header("content-type"), "application/x-ndjson");
        assert_eq!(q.header("x-amz-server-side-encryption"), "aws:kms");
        assert_eq!(
            q.header("x-amz-server-side-encryption-aws-kms-key-id"),
            "kms-key-1"
        );
        let sha = intentgate_controlplane::siem::sigv4::sha256_hex(&q.body);
        assert_eq!(q.header("x-amz-content-sha256"), sha);
        let date = q.header("x-amz-date").to_owned();
        let signed: Vec<(&str, String)> = [
            "host",
            "x-amz-content-sha256",
            "x-amz-date",
            "x-amz-server-side-encryption",
            "x-amz-server-side-encryption-aws-kms-key-id",
        ]
        .into_iter()
        .map(|h| (h, q.header(h).to_owned()))
        .collect();
        let expect = intentgate_controlplane::siem::sigv4::authorization(
            &intentgate_controlplane::siem::sigv4::Request {
                method: "PUT",
                canonical_uri: &q.target,
                canonical_query: "",
                headers: &signed,
                payload_sha256: &sha,
                amz_date: &date,
                region: "eu-west-1",
                service: "s3",
            },
            &intentgate_controlplane::siem::sigv4::Credentials {
                access_key_id: "AKIDTEST",
                secret_access_key: "aws-5ecret-key",
            },
        );
        assert_eq!(q.header("authorization"), expect);
        assert!(expect.contains(&format!(
            "Credential=AKIDTEST/{}/eu-west-1/s3/aws4_request",
            &date[..8]
        )));
        for line in gunzip(&q.body).lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert!(v["tool"].is_string());
            lines += 1;
        }
    }
    assert_eq!(lines, n);

    // Status and metrics after recovery.
    let st = integrations(&gw);
    let names: Vec<&str> = st.keys().map(String::as_str).collect();
    assert_eq!(names, ["datadog", "s3", "sentinel", "splunk"]);
    for (name, i) in &st {
        assert_eq!(i["configured"], true, "{name}");
        assert_eq!(i["dropped_count"], 0, "{name}");
        assert_eq!(i["buffer_used"], 0, "{name}");
        assert_eq!(i["buffer_size"], 100_000, "{name}");
        assert!(i.get("last_error").is_none(), "{name}: {i}");
        assert_ne!(i["last_flush_ts"], "0001-01-01T00:00:00Z", "{name}");
        let shown = i["endpoint"].as_str().unwrap();
        assert!(!shown.contains("5ecret"), "{shown}");
    }
    assert!(st["splunk"]["retried_count"].as_u64().unwrap() >= 2);
    let text = scrape_metrics(metrics_addr);
    assert!(
        text.contains(&format!(
            "intentgate_gateway_siem_delivered_total{{sink=\"splunk\"}} {n}"
        )),
        "{text}"
    );
    assert!(text.contains("intentgate_gateway_siem_dropped_total{sink=\"s3\"} 0"));
    let retries: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("intentgate_gateway_siem_retries_total{sink=\"splunk\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(retries >= 2);
    let status = terminate(gw, Duration::from_secs(20));
    assert!(status.success());
}

fn scrape_metrics(addr: SocketAddr) -> String {
    let r = raw(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    String::from_utf8(r.body).unwrap()
}

#[test]
fn a_full_spool_and_a_permanent_refusal_drop_records_and_count_them() {
    let policy = temp_file("policy.rego", READ_ONLY_POLICY);
    let rx = Receiver::start(|req, _| match req.target.as_str() {
        "/hec" => (503, String::new()),
        "/dd" => (400, r#"{"errors":["bad"]}"#.into()),
        _ => (404, String::new()),
    });
    let base = format!("http://{}", rx.addr);
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
            ("INTENTGATE_ADMIN_TOKEN", ADMIN),
            ("INTENTGATE_SIEM_FLUSH_INTERVAL_MS", "100"),
            ("INTENTGATE_SIEM_SPOOL_EVENTS", "4"),
            ("INTENTGATE_SIEM_SPLUNK_URL", &format!("{base}/hec")),
            ("INTENTGATE_SIEM_SPLUNK_TOKEN", "t"),
            ("INTENTGATE_SIEM_DATADOG_API_KEY", "k"),
            ("INTENTGATE_SIEM_DATADOG_URL", &format!("{base}/dd")),
        ],
    );
    let n = make_calls(gw.addr);
    let settled = wait_until(Duration::from_secs(15), || {
        let st = integrations(&gw);
        st["splunk"]["dropped_count"] == 2 && st["datadog"]["dropped_count"] == n as u64
    });
    let st = integrations(&gw);
    assert!(settled, "{st:?}");
    // Splunk is down: it holds what fits and keeps retrying it.
    assert_eq!(st["splunk"]["buffer_used"], 4);
    assert_eq!(st["splunk"]["total_events"], 0);
    assert_eq!(st["splunk"]["last_error"], "splunk answered 503");
    // Datadog refused for good: nothing is kept.
    assert_eq!(st["datadog"]["buffer_used"], 0);
    assert_eq!(st["datadog"]["last_error"], "datadog answered 400");
    assert!(!st.contains_key("s3"));
    assert_eq!(st["sentinel"]["configured"], false);
    let retried = wait_until(Duration::from_secs(5), || {
        rx.requests().iter().filter(|q| q.target == "/hec").count() >= 2
    });
    assert!(retried, "splunk was not retried");
    assert!(
        integrations(&gw)["splunk"]["retried_count"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[test]
fn shutdown_sends_what_the_spool_still_holds() {
    let policy = temp_file("policy.rego", READ_ONLY_POLICY);
    let rx = Receiver::start(|_, _| (200, String::new()));
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
            // Nothing would be sent for a minute but for the shutdown.
            ("INTENTGATE_SIEM_FLUSH_INTERVAL_MS", "60000"),
            (
                "INTENTGATE_SIEM_SPLUNK_URL",
                &format!("http://{}/hec", rx.addr),
            ),
            ("INTENTGATE_SIEM_SPLUNK_TOKEN", "t"),
        ],
    );
    let n = make_calls(gw.addr);
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.requests().is_empty());
    let started = Instant::now();
    let status = terminate(gw, Duration::from_secs(20));
    assert!(status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    let sent: usize = rx
        .requests()
        .iter()
        .map(|q| String::from_utf8_lossy(&q.body).lines().count())
        .sum();
    assert_eq!(sent, n);
}

#[test]
fn bad_siem_settings_stop_startup_with_one_line_each() {
    for (env, expect) in [
        (
            vec![("INTENTGATE_SIEM_S3_BUCKET", "Bad_Bucket")],
            "INTENTGATE_SIEM_S3_BUCKET: invalid value \"Bad_Bucket\"",
        ),
        (
            vec![("INTENTGATE_SIEM_S3_BUCKET", "good-bucket")],
            "AWS_ACCESS_KEY_ID: required when INTENTGATE_SIEM_S3_BUCKET is set",
        ),
        (
            vec![
                ("INTENTGATE_SIEM_DATADOG_API_KEY", "k"),
                ("INTENTGATE_SIEM_DATADOG_URL", "ftp://x"),
            ],
            "INTENTGATE_SIEM_DATADOG_URL: invalid value",
        ),
        (
            vec![("INTENTGATE_SIEM_BATCH_SIZE", "0")],
            "INTENTGATE_SIEM_BATCH_SIZE",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
            "OTEL_EXPORTER_OTLP_PROTOCOL: \"grpc\" is not spoken by this build",
        ),
        (
            vec![("OTEL_TRACES_SAMPLER", "sometimes")],
            "OTEL_TRACES_SAMPLER: invalid value \"sometimes\"",
        ),
        (
            vec![
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ],
            "OTEL_TRACES_SAMPLER_ARG: invalid value \"2\" (accepted: 0.0-1.0)",
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key"),
            ],
            "OTEL_EXPORTER_OTLP_HEADERS: entry #1 is not name=value",
        ),
        (
            vec![
                ("INTENTGATE_SIEM_S3_BUCKET", "good-bucket"),
                ("INTENTGATE_SIEM_S3_PREFIX", "../escape"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "b"),
            ],
            "INTENTGATE_SIEM_S3_PREFIX: invalid value \"../escape\"",
        ),
        (
            vec![
                ("INTENTGATE_SIEM_S3_BUCKET", "good-bucket"),
                ("INTENTGATE_SIEM_S3_GATEWAY_ID", "a/b"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "b"),
            ],
            "INTENTGATE_SIEM_S3_GATEWAY_ID: invalid value \"a/b\"",
        ),
        (
            vec![
                ("INTENTGATE_SIEM_S3_BUCKET", "good-bucket"),
                ("INTENTGATE_SIEM_S3_REGION", "eu west"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "b"),
            ],
            "INTENTGATE_SIEM_S3_REGION: invalid value \"eu west\"",
        ),
        (
            vec![
                ("INTENTGATE_SIEM_SENTINEL_DCE_URL", "https://dce.example"),
                ("INTENTGATE_SIEM_SENTINEL_DCR_ID", "dcr/../x"),
                ("INTENTGATE_SIEM_SENTINEL_STREAM", "s"),
                ("INTENTGATE_SIEM_SENTINEL_TENANT_ID", "t"),
                ("INTENTGATE_SIEM_SENTINEL_CLIENT_ID", "c"),
                ("INTENTGATE_SIEM_SENTINEL_CLIENT_SECRET", "x"),
            ],
            "INTENTGATE_SIEM_SENTINEL_DCR_ID: invalid value \"dcr/../x\"",
        ),
        (
            vec![
                ("INTENTGATE_SIEM_DATADOG_API_KEY", "k"),
                ("INTENTGATE_SIEM_DATADOG_SITE", "evil.example/x"),
            ],
            "INTENTGATE_SIEM_DATADOG_SITE: invalid value",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_intentgate"))
            .arg("serve")
            .env_clear()
            .env("INTENTGATE_ADDR", "127.0.0.1:0")
            .env("INTENTGATE_MASTER_KEY", KEY)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{env:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{env:?}: {err}");
    }
}
