//! OTLP trace export against a loopback collector: one span per sampled call with child spans
//! per check, the upstream round trip and the audit insert; the caller's W3C `traceparent`
//! is honoured (parent-based sampling) and passed on to the tool server.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking; that is their job"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

#[path = "support/gateway.rs"]
mod support;
use support::*;

const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const SAMPLED_DENIED: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const NOT_SAMPLED: &str = "00-11111111111111111111111111111111-2222222222222222-00";

fn call_with(
    addr: std::net::SocketAddr,
    token: &str,
    tool: &str,
    traceparent: Option<&str>,
) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}).to_string();
    let tp = traceparent
        .map(|t| format!("traceparent: {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /v1/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{tp}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(addr, req.as_bytes()).json()
}

fn spans_of(collector: &Receiver) -> Vec<Value> {
    let mut out = Vec::new();
    for q in collector.requests() {
        let v: Value = serde_json::from_slice(&q.body).unwrap();
        for rs in v["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                out.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    out
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"]["stringValue"].as_str())
}

fn nanos(span: &Value, field: &str) -> u64 {
    span[field].as_str().unwrap().parse().unwrap()
}

#[test]
fn sampled_calls_export_a_span_per_check_upstream_and_audit_insert() {
    let db = TempDb::new();
    let policy = temp_file("policy.rego", READ_ONLY_POLICY);
    let collector = Receiver::start(|_, _| (200, "{}".into()));
    let metrics_addr: std::net::SocketAddr =
        format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let upstream = Receiver::start(|_, _| {
        (
            200,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}"#.into(),
        )
    });
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_AUDIT_PERSIST", "true"),
            (
                "INTENTGATE_UPSTREAM_URL",
                &format!("http://{}/mcp", upstream.addr),
            ),
            ("INTENTGATE_REPLICA_ID", "gw-trace"),
            ("INTENTGATE_METRICS_ENABLED", "true"),
            ("INTENTGATE_METRICS_ADDR", &metrics_addr.to_string()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &format!("http://{}", collector.addr),
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=otel-5ecret"),
            ("OTEL_SERVICE_NAME", "igw-test"),
            // Only calls whose caller sampled them are traced.
            ("OTEL_TRACES_SAMPLER", "parentbased_always_off"),
        ],
    );
    let token = mint(&[], vec![]);
    assert!(call_with(gw.addr, &token, "read_invoice", Some(SAMPLED))["result"].is_object());
    assert_eq!(
        error_of(&call_with(
            gw.addr,
            &token,
            "delete_invoice",
            Some(SAMPLED_DENIED)
        ))
        .0,
        -32012
    );
    call_with(gw.addr, &token, "read_invoice", Some(NOT_SAMPLED));
    call_with(gw.addr, &token, "read_invoice", None);

    // Request + capability + policy + budget + upstream + audit.insert, and request +
    // capability + policy (+ audit.insert) for the denial.
    let done = wait_until(Duration::from_secs(15), || {
        let spans = spans_of(&collector);
        spans.iter().filter(|s| s["name"] == "audit.insert").count() == 2 && spans.len() >= 12
    });
    let spans = spans_of(&collector);
    assert!(done, "{spans:#?}");
    let traces: BTreeMap<&str, Vec<&Value>> = spans.iter().fold(BTreeMap::new(), |mut m, s| {
        m.entry(s["traceId"].as_str().unwrap()).or_default().push(s);
        m
    });
    let ids: Vec<&str> = traces.keys().copied().collect();
    assert_eq!(
        ids,
        [
            "0af7651916cd43dd8448eb211c80319c",
            "4bf92f3577b34da6a3ce929d0e0e4736"
        ],
        "only the calls the caller sampled are traced"
    );

    for q in collector.requests() {
        assert_eq!(q.method, "POST");
        assert_eq!(q.target, "/v1/traces");
        assert_eq!(q.header("content-type"), "application/json");
        assert_eq!(q.header("x-api-key"), "otel-5ecret");
        let v: Value = serde_json::from_slice(&q.body).unwrap();
        let resource = &v["resourceSpans"][0]["resource"];
        assert_eq!(attr(resource, "service.name"), Some("igw-test"));
        assert_eq!(attr(resource, "service.instance.id"), Some("gw-trace"));
    }

    // The allowed call.
    let allowed = &traces["4bf92f3577b34da6a3ce929d0e0e4736"];
    let root = allowed.iter().find(|s| s["name"] == "tools/call").unwrap();
    assert_eq!(
        root["parentSpanId"], "00f067aa0ba902b7",
        "the caller's span is the parent"
    );
    assert_eq!(root["kind"], 2);
    assert_eq!(attr(root, "intentgate.decision"), Some("allow"));
    assert_eq!(attr(root, "intentgate.tool"), Some("read_invoice"));
    assert_eq!(attr(root, "intentgate.tenant"), Some("acme"));
    let mut names: Vec<&str> = allowed
        .iter()
        .filter(|s| s["name"] != "tools/call")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "audit.insert",
            "budget",
            "capability",
            "policy",
            "revocation_lookup",
            "upstream"
        ]
    );
    let (start, end) = (
        nanos(root, "startTimeUnixNano"),
        nanos(root, "endTimeUnixNano"),
    );
    assert!(start < end);
    for child in allowed.iter().filter(|s| s["name"] != "tools/call") {
        assert_eq!(child["parentSpanId"], root["spanId"], "{child}");
        let (cs, ce) = (
            nanos(child, "startTimeUnixNano"),
            nanos(child, "endTimeUnixNano"),
        );
        assert!(start <= cs && cs <= ce, "{child}");
        if child["name"] != "audit.insert" {
            assert!(ce <= end, "{child}");
        }
    }
    // The checks run in order.
    let at = |n: &str| {
        nanos(
            allowed.iter().find(|s| s["name"] == n).unwrap(),
            "startTimeUnixNano",
        )
    };
    assert!(
        at("capability") <= at("policy")
            && at("policy") <= at("budget")
            && at("budget") <= at("upstream")
    );

    // The tool server got the upstream span as its parent.
    let up = allowed.iter().find(|s| s["name"] == "upstream").unwrap();
    assert_eq!(up["kind"], 3);
    let forwarded: Vec<String> = upstream
        .requests()
        .iter()
        .filter_map(|q| {
            q.head
                .lines()
                .find_map(|l| l.strip_prefix("traceparent: ").map(str::to_owned))
        })
        .collect();
    assert_eq!(
        forwarded,
        [format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            up["spanId"].as_str().unwrap()
        )],
        "only the traced call carries a traceparent upstream"
    );

    // The denied call stops at the policy span.
    let denied = &traces["0af7651916cd43dd8448eb211c80319c"];
    let mut names: Vec<&str> = denied.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "audit.insert",
            "capability",
            "policy",
            "revocation_lookup",
            "tools/call"
        ]
    );
    let policy_span = denied.iter().find(|s| s["name"] == "policy").unwrap();
    assert_eq!(attr(policy_span, "intentgate.decision"), Some("block"));
    let root = denied.iter().find(|s| s["name"] == "tools/call").unwrap();
    assert_eq!(attr(root, "intentgate.check"), Some("policy"));

    // The chain writer's own families: four rows inserted, each append timed.
    let text = String::from_utf8(
        raw(
            metrics_addr,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        )
        .body,
    )
    .unwrap();
    assert!(
        text.contains("intentgate_gateway_audit_chain_inserts_total 4\n"),
        "{text}"
    );
    let appends: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("intentgate_gateway_audit_append_duration_seconds_count "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=4).contains(&appends), "{appends}");
    assert!(text.contains("intentgate_gateway_trace_spans_dropped_total 0\n"));
    assert!(terminate(gw, Duration::from_secs(20)).success());
}

#[test]
fn always_on_traces_every_call_and_always_off_none() {
    for (sampler, expect_traces) in [("always_on", 3), ("always_off", 0)] {
        let collector = Receiver::start(|_, _| (200, "{}".into()));
        let gw = spawn(
            "serve",
            &[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    &format!("http://{}/custom/traces", collector.addr),
                ),
                ("OTEL_TRACES_SAMPLER", sampler),
            ],
        );
        let token = mint(&[], vec![]);
        for tp in [None, Some(SAMPLED), Some(NOT_SAMPLED)] {
            call_with(gw.addr, &token, "read_invoice", tp);
        }
        // Shutdown exports what is queued.
        assert!(terminate(gw, Duration::from_secs(20)).success());
        let spans = spans_of(&collector);
        let roots = spans.iter().filter(|s| s["name"] == "tools/call").count();
        assert_eq!(roots, expect_traces, "{sampler}");
        assert!(
            collector
                .requests()
                .iter()
                .all(|q| q.target == "/custom/traces")
        );
    }
}
