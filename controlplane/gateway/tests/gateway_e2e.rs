//! The real binary end to end: `intentgate dev` (demo upstream, runbook policy) and
//! `intentgate serve`, driven over raw TCP so malformed input can be sent byte for byte.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking; that is their job"
)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use intentgate_shared::key_ring::MasterKey;
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::{Caveat, MintRequest, Token};
use serde_json::{Value, json};

#[path = "support/gateway.rs"]
mod support;
use support::*;

#[test]
fn dev_allows_forwards_and_denies_each_check() {
    let gw = spawn("dev", &[]);
    let token = mint(
        &["read_invoice", "send_email_internal", "delete_customer"],
        vec![],
    );
    let ok = call(
        gw.addr,
        Some(&token),
        "read_invoice",
        json!({"id": "INV-7"}),
    );
    assert!(
        ok["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("INV-7"),
        "{ok}"
    );
    assert_eq!(ok["result"]["_intentgate"]["decision"], "allow");
    assert_eq!(ok["id"], 1);

    let (code, reason) = error_of(&call(gw.addr, Some(&token), "delete_customer", json!({})));
    assert_eq!((code, reason.as_str()), (-32012, "denied by default"));

    let (code, reason) = error_of(&call(gw.addr, None, "read_invoice", json!({})));
    assert_eq!(code, -32010);
    assert!(reason.starts_with("capability token required"), "{reason}");

    let narrow = mint(&["read_invoice"], vec![]);
    let (code, reason) = error_of(&call(
        gw.addr,
        Some(&narrow),
        "send_email_internal",
        json!({}),
    ));
    assert_eq!(
        (code, reason.as_str()),
        (
            -32010,
            "caveat 2 (tool_allow): tool \"send_email_internal\" not in allowed set"
        )
    );

    let (code, reason) = error_of(&call(
        gw.addr,
        Some("not-a-token!"),
        "read_invoice",
        json!({}),
    ));
    assert_eq!(
        (code, reason.as_str()),
        (-32010, "token is not valid unpadded base64url")
    );

    let foreign = Token::mint(
        &MasterKey::from_bytes(&[1; 32]),
        MintRequest {
            subject: "agent-1".into(),
            tenant: "acme".into(),
            ..Default::default()
        },
        Timestamp::now().unix_seconds(),
    )
    .unwrap()
    .encode();
    let (code, reason) = error_of(&call(gw.addr, Some(&foreign), "read_invoice", json!({})));
    assert_eq!((code, reason.as_str()), (-32010, "signature mismatch"));

    let expired = mint(&[], vec![Caveat::exp(Timestamp::now().unix_seconds() - 1)]);
    let (code, reason) = error_of(&call(gw.addr, Some(&expired), "read_invoice", json!({})));
    assert_eq!((code, reason.as_str()), (-32010, "caveat 2 (exp): expired"));
}

#[test]
fn budget_exhaustion_is_shared_with_attenuated_children() {
    let gw = spawn("dev", &[]);
    let parent = mint(&["read_invoice"], vec![Caveat::max_calls(2)]);
    let child = Token::decode(&parent)
        .unwrap()
        .attenuate(Caveat::tool_allow(["read_invoice"]))
        .unwrap()
        .encode();
    assert!(call(gw.addr, Some(&parent), "read_invoice", json!({}))["result"].is_object());
    assert!(call(gw.addr, Some(&child), "read_invoice", json!({}))["result"].is_object());
    let (code, reason) = error_of(&call(gw.addr, Some(&child), "read_invoice", json!({})));
    assert_eq!(
        (code, reason.as_str()),
        (-32013, "max_calls exceeded (3 > 2)")
    );
}

#[test]
fn policy_sees_agent_call_counts() {
    // The runbook policy escalates send_email_internal from the 51st call of the day; with
    // nobody to approve, the window (1 s here) expires.
    let gw = spawn("dev", &[("INTENTGATE_APPROVAL_TIMEOUT_S", "1")]);
    let token = mint(&["send_email_internal"], vec![]);
    for _ in 0..50 {
        assert!(
            call(
                gw.addr,
                Some(&token),
                "send_email_internal",
                json!({"to": "a@b"})
            )["result"]
                .is_object()
        );
    }
    let v = call(
        gw.addr,
        Some(&token),
        "send_email_internal",
        json!({"to": "a@b"}),
    );
    assert_eq!(v["error"]["code"], -32012);
    assert_eq!(v["error"]["message"], "policy: approval window expired");
}

#[test]
fn other_methods_pass_through_after_the_capability_check() {
    let gw = spawn("dev", &[]);
    let token = mint(&["read_invoice"], vec![]);
    let r = post(
        gw.addr,
        "/v1/mcp",
        Some(&token),
        r#"{"jsonrpc":"2.0","id":"t","method":"tools/list"}"#,
    );
    // The demo upstream lists three tools; this token may call only one of them.
    let tools = r.json()["result"]["tools"].as_array().unwrap().clone();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["name"], "read_invoice");
    let r = post(
        gw.addr,
        "/v1/mcp",
        None,
        r#"{"jsonrpc":"2.0","id":"t","method":"tools/list"}"#,
    );
    assert_eq!(r.json()["error"]["code"], -32010);
    let r = post(
        gw.addr,
        "/v1/mcp",
        Some(&token),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!((r.status, r.body.len()), (202, 0));
    let r = post(
        gw.addr,
        "/v1/mcp",
        Some(&token),
        r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"read_invoice"}}"#,
    );
    assert_eq!(
        (r.status, r.body.len()),
        (202, 0),
        "a tools/call notification runs the pipeline and answers 202"
    );
}

#[test]
fn every_malformed_request_gets_a_precise_answer() {
    let gw = spawn("dev", &[("INTENTGATE_MAX_BODY_BYTES", "4096")]);
    let token = mint(&["read_invoice"], vec![]);
    let a = gw.addr;
    let rpc = |body: &str| post(a, "/v1/mcp", Some(&token), body).json();
    assert_eq!(rpc("{nope")["error"]["code"], -32700);
    assert_eq!(
        rpc(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#)["error"]["code"],
        -32600
    );
    assert_eq!(
        rpc(r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#)["error"]["code"],
        -32600
    );
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{}1{}}}"#,
        "[".repeat(80),
        "]".repeat(80)
    );
    assert_eq!(
        rpc(&deep)["error"]["message"],
        "request nests deeper than 64 levels"
    );
    assert_eq!(
        rpc(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{}}"#)["error"]["code"],
        -32602
    );
    assert_eq!(
        rpc(r#"{"jsonrpc":"2.0","id":9,"method":"resources/list"}"#)["error"]["code"],
        -32601
    );

    let big = "x".repeat(5000);
    assert_eq!(post(a, "/v1/mcp", Some(&token), &big).status, 413);
    assert_eq!(
        raw(
            a,
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(17 * 1024)).as_bytes()
        )
        .status,
        431
    );
    assert_eq!(raw(a, b"BLAH\r\n\r\n").status, 400);
    // GET opens the server-to-client stream: the capability check comes first.
    assert_eq!(
        raw(a, b"GET /v1/mcp HTTP/1.1\r\nHost: x\r\n\r\n").status,
        403
    );
    assert_eq!(
        raw(
            a,
            b"PUT /v1/mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        .status,
        405
    );
    assert_eq!(
        raw(a, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n").status,
        404
    );
    let r = raw(
        a,
        b"POST /v1/mcp HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        r#"{"error":"both Content-Length and Transfer-Encoding"}"#
    );
}

#[test]
fn keep_alive_pipelining_and_chunked_bodies() {
    let gw = spawn("dev", &[]);
    let token = mint(&["read_invoice"], vec![]);
    let body = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"A"}}}"#;
    let one = format!(
        "POST /v1/mcp HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (first, second) = body.split_at(20);
    let chunked = format!(
        "POST /v1/mcp HTTP/1.1\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Three requests in one write: three answers, in order, on one connection.
    s.write_all(format!("{one}{chunked}GET /healthz HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut pending = Vec::new();
    let r1 = read_reply(&mut s, &mut pending);
    let r2 = read_reply(&mut s, &mut pending);
    let r3 = read_reply(&mut s, &mut pending);
    assert_eq!(r1.json()["id"], 5);
    assert!(
        r2.json()["result"]["content"].is_array(),
        "{:?}",
        String::from_utf8_lossy(&r2.body)
    );
    assert_eq!((r3.status, r3.json()["status"].clone()), (200, json!("ok")));
    assert!(!r1.head.contains("Connection: close"));
}

#[test]
fn slow_heads_time_out_with_408() {
    let gw = spawn("dev", &[]);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"POST /v1/mcp HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let r = read_reply(&mut s, &mut Vec::new());
    assert_eq!(r.status, 408);
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn tool_call_endpoint_runs_the_same_checks() {
    let gw = spawn("dev", &[]);
    let token = mint(&["read_invoice"], vec![]);
    let r = post(
        gw.addr,
        "/v1/tool-call",
        Some(&token),
        r#"{"tool":"read_invoice","args":{"id":"1"}}"#,
    );
    assert_eq!(
        (r.status, r.json()["decision"].clone()),
        (200, json!("allow"))
    );
    let r = post(gw.addr, "/v1/tool-call", None, r#"{"tool":"read_invoice"}"#);
    assert_eq!(
        (r.status, r.json()["check"].clone()),
        (403, json!("capability"))
    );
    let r = post(gw.addr, "/v1/tool-call", Some(&token), r#"{"args":{}}"#);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("missing_tool"))
    );
    let r = post(gw.addr, "/v1/tool-call", Some(&token), "nope");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid_json"))
    );
}

#[test]
fn serve_reports_upstream_failures_and_refuses_unsupported_settings() {
    let url = format!("http://127.0.0.1:{}/mcp", closed_port());
    let gw = spawn("serve", &[("INTENTGATE_UPSTREAM_URL", &url)]);
    let token = mint(&[], vec![]);
    let v = call(gw.addr, Some(&token), "read_invoice", json!({}));
    assert_eq!(v["error"]["code"], -32603);
    assert_eq!(v["error"]["message"], "upstream transport");
    assert_eq!(v["error"]["data"]["upstream_status"], 0);
    // The default policy denies before any forward.
    let (code, _) = error_of(&call(gw.addr, Some(&token), "launch_rocket", json!({})));
    assert_eq!(code, -32012);
    drop(gw);

    let out = Command::new(env!("CARGO_BIN_EXE_intentgate"))
        .arg("serve")
        .env("INTENTGATE_ADDR", "127.0.0.1:0")
        .env("INTENTGATE_REDIS_URL", "redis://127.0.0.1:6379")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not supported by this build yet: INTENTGATE_REDIS_URL"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_intentgate"))
        .arg("serve")
        .env("INTENTGATE_ADDR", "nowhere")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("INTENTGATE_ADDR: invalid value"));
}

#[test]
fn sigterm_stops_gracefully() {
    let gw = spawn("serve", &[]);
    let status = terminate(gw, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

/// The published Python SDK against the real gateway (needs `INTENTGATE_SDK_PYTHON`, which
/// `cargo xtask test` provides).
#[test]
fn python_sdk_drives_the_gateway() {
    let Some(python) = std::env::var_os("INTENTGATE_SDK_PYTHON") else {
        eprintln!("note: INTENTGATE_SDK_PYTHON unset; skipping the SDK end-to-end test");
        return;
    };
    let gw = spawn("dev", &[]);
    let token = mint(
        &["read_invoice", "send_email_internal", "delete_customer"],
        vec![Caveat::max_calls(4)],
    );
    run_python_check(
        &python,
        "sdk_e2e.py",
        gw.addr,
        &token,
        "sdk e2e: all checks passed",
    );
}

/// A fake intent extractor: answers by prompt, counts requests.
fn fake_extractor() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut pending = Vec::new();
            let mut tmp = [0u8; 4096];
            let req = loop {
                if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if pending.len() >= end + 4 + len {
                        break serde_json::from_slice::<Value>(&pending[end + 4..end + 4 + len])
                            .unwrap();
                    }
                }
                let n = s.read(&mut tmp).unwrap_or(0);
                if n == 0 {
                    break Value::Null;
                }
                pending.extend_from_slice(&tmp[..n]);
            };
            let body = match req["prompt"].as_str().unwrap_or("") {
                "read invoices" => {
                    json!({"intent": {"summary": "read invoices", "allowed_tools": ["read_invoice"], "confidence": 0.9}})
                        .to_string()
                }
                "no email" => json!({"intent": {"summary": "no email", "forbidden_tools": ["send_email_internal"]}}).to_string(),
                _ => "not json".to_string(),
            };
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (url, hits)
}

fn call_with_intent(addr: SocketAddr, token: &str, tool: &str, prompt: Option<&str>) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}).to_string();
    let intent = prompt
        .map(|p| format!("X-Intent-Prompt: {p}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /v1/mcp HTTP/1.1\r\nAuthorization: Bearer {token}\r\n{intent}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(addr, req.as_bytes()).json()
}

#[test]
fn intent_extractor_allows_denies_caches_and_fails_closed() {
    let (url, hits) = fake_extractor();
    let gw = spawn(
        "dev",
        &[
            ("INTENTGATE_EXTRACTOR_URL", &url),
            ("INTENTGATE_REQUIRE_INTENT", "true"),
        ],
    );
    let token = mint(&["read_invoice", "send_email_internal"], vec![]);
    let a = gw.addr;
    assert!(
        call_with_intent(a, &token, "read_invoice", Some("read invoices"))["result"].is_object()
    );
    let v = call_with_intent(a, &token, "send_email_internal", Some("read invoices"));
    assert_eq!(
        error_of(&v),
        (
            -32011,
            "tool \"send_email_internal\" is not among the tools the stated intent allows".into()
        )
    );
    let v = call_with_intent(a, &token, "send_email_internal", Some("no email"));
    assert_eq!(
        error_of(&v),
        (
            -32011,
            "tool \"send_email_internal\" is forbidden by the stated intent".into()
        )
    );
    let (code, reason) = error_of(&call_with_intent(
        a,
        &token,
        "read_invoice",
        Some("gibberish"),
    ));
    assert_eq!(
        (code, reason.as_str()),
        (
            -32011,
            "intent extractor returned invalid JSON (fail closed)"
        )
    );
    let (code, reason) = error_of(&call_with_intent(a, &token, "read_invoice", None));
    assert_eq!(
        (code, reason.as_str()),
        (-32011, "intent prompt required (send X-Intent-Prompt)")
    );
    // Each core extracts a prompt at most once; later calls hit its cache.
    let before = hits.load(Ordering::SeqCst);
    for _ in 0..6 {
        assert!(
            call_with_intent(a, &token, "read_invoice", Some("read invoices"))["result"]
                .is_object()
        );
    }
    assert!(
        hits.load(Ordering::SeqCst) <= before + 2,
        "cached intents must not be re-extracted"
    );
    drop(gw);

    // An unreachable extractor denies.
    let down = format!("http://127.0.0.1:{}", closed_port());
    let gw = spawn("dev", &[("INTENTGATE_EXTRACTOR_URL", &down)]);
    let (code, reason) = error_of(&call_with_intent(
        gw.addr,
        &token,
        "read_invoice",
        Some("read invoices"),
    ));
    assert_eq!(code, -32011);
    assert!(reason.starts_with("intent extractor transport"), "{reason}");
}

/// A fake upstream that answers every request with `reply` after `delay`.
fn fake_upstream(delay: Duration, reply: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut tmp = [0u8; 8192];
                let _ = s.read(&mut tmp);
                std::thread::sleep(delay);
                let _ = s.write_all(reply.as_bytes());
            });
        }
    });
    url
}

#[test]
fn upstream_slow_or_garbage_is_a_clean_upstream_error() {
    let token = mint(&[], vec![]);
    let slow = fake_upstream(
        Duration::from_secs(3),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    );
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_UPSTREAM_URL", &slow),
            ("INTENTGATE_UPSTREAM_TIMEOUT_MS", "300"),
        ],
    );
    let started = Instant::now();
    let v = call(gw.addr, Some(&token), "read_invoice", json!({}));
    assert_eq!(v["error"]["message"], "upstream timeout", "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout must bound the wait"
    );
    drop(gw);

    let garbage = fake_upstream(
        Duration::ZERO,
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!",
    );
    let gw = spawn("serve", &[("INTENTGATE_UPSTREAM_URL", &garbage)]);
    let v = call(gw.addr, Some(&token), "read_invoice", json!({}));
    assert_eq!(
        (v["error"]["code"].clone(), v["error"]["message"].clone()),
        (json!(-32603), json!("upstream returned non-JSON-RPC body"))
    );
    drop(gw);

    let failing = fake_upstream(
        Duration::ZERO,
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom",
    );
    let gw = spawn("serve", &[("INTENTGATE_UPSTREAM_URL", &failing)]);
    let v = call(gw.addr, Some(&token), "read_invoice", json!({}));
    assert_eq!(v["error"]["message"], "upstream upstream_http");
    assert_eq!(
        v["error"]["data"],
        json!({"upstream_status": 500, "detail": "boom"})
    );
    drop(gw);

    let not_http = fake_upstream(Duration::ZERO, "SSH-2.0-OpenSSH\r\n\r\n");
    let gw = spawn("serve", &[("INTENTGATE_UPSTREAM_URL", &not_http)]);
    let v = call(gw.addr, Some(&token), "read_invoice", json!({}));
    assert_eq!(v["error"]["code"], -32603, "{v}");
}

/// A TLS upstream with a freshly generated self-signed certificate for `localhost`; returns
/// its URL and the path of the CA (the certificate itself) in PEM.
fn tls_upstream() -> (String, std::path::PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "intentgate-tls-{}-{}",
        std::process::id(),
        closed_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://localhost:{}/mcp",
        listener.local_addr().unwrap().port()
    );
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = std::sync::Arc::clone(&config);
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut pending = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if pending.len() >= end + 4 + len {
                            let req: Value =
                                serde_json::from_slice(&pending[end + 4..end + 4 + len])
                                    .unwrap_or(Value::Null);
                            let body = json!({"jsonrpc": "2.0", "id": req["id"], "result": {"content": [{"type": "text", "text": "over tls"}]}}).to_string();
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = tls.write_all(resp.as_bytes());
                            let _ = tls.flush();
                            tls.conn.send_close_notify();
                            let _ = tls.flush();
                            return;
                        }
                    }
                    match tls.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&tmp[..n]),
                    }
                }
            });
        }
    });
    (url, ca)
}

#[test]
fn https_upstreams_are_verified() {
    let (url, ca) = tls_upstream();
    let token = mint(&[], vec![]);
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_UPSTREAM_URL", &url),
            ("INTENTGATE_UPSTREAM_CA_FILE", ca.to_str().unwrap()),
        ],
    );
    let v = call(gw.addr, Some(&token), "read_invoice", json!({}));
    assert_eq!(v["result"]["content"][0]["text"], "over tls", "{v}");
    drop(gw);

    // Without the CA the self-signed certificate is refused: no call reaches an unverified peer.
    let gw = spawn("serve", &[("INTENTGATE_UPSTREAM_URL", &url)]);
    let v = call(gw.addr, Some(&token), "read_invoice", json!({}));
    assert_eq!(v["error"]["message"], "upstream transport", "{v}");
    assert!(
        v["error"]["data"]["detail"]
            .as_str()
            .unwrap()
            .contains("TLS handshake"),
        "{v}"
    );
    drop(gw);

    let out = Command::new(env!("CARGO_BIN_EXE_intentgate"))
        .arg("serve")
        .env("INTENTGATE_ADDR", "127.0.0.1:0")
        .env("INTENTGATE_UPSTREAM_URL", &url)
        .env("INTENTGATE_UPSTREAM_CA_FILE", "/nonexistent/ca.pem")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("INTENTGATE_UPSTREAM_CA_FILE: /nonexistent/ca.pem")
    );
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    let gw = spawn("dev", &[]);
    let token = mint(&["read_invoice"], vec![]);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice"}}"#;
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /v1/mcp HTTP/1.1\r\nAuthorization: Bearer {token}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(body.as_bytes()).unwrap();
    let r = read_reply(&mut s, &mut Vec::new());
    assert!(r.json()["result"].is_object());
}

#[test]
fn admin_api_through_the_data_port_mints_and_revokes() {
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
            ("INTENTGATE_TENANT_ADMINS", "acme:acme-secret"),
        ],
    );
    let r = admin(
        gw.addr,
        "POST",
        "/v1/admin/mint",
        "acme-secret",
        r#"{"subject":"agent-9","tools":["read_invoice"],"ttl_seconds":600}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let minted = r.json();
    let token = minted["token"].as_str().unwrap().to_owned();
    assert!(call(gw.addr, Some(&token), "read_invoice", json!({}))["result"].is_object());

    let jti = minted["jti"].as_str().unwrap();
    let r = admin(
        gw.addr,
        "POST",
        "/v1/admin/revoke",
        "acme-secret",
        &json!({"jti": jti, "reason": "test"}).to_string(),
    );
    assert_eq!((r.status, r.json()), (200, json!({"ok": true, "jti": jti})));
    // The next call, on any core, is denied: revocation is in the published snapshot.
    for _ in 0..4 {
        let (code, reason) = error_of(&call(gw.addr, Some(&token), "read_invoice", json!({})));
        assert_eq!((code, reason.as_str()), (-32010, "token revoked"));
    }
    let r = admin(
        gw.addr,
        "GET",
        "/v1/admin/revocations?limit=10",
        "root-secret",
        "",
    );
    assert_eq!(r.json()["revocations"][0]["jti"], jti);
    let r = admin(
        gw.addr,
        "POST",
        "/v1/admin/mint",
        "acme-secret",
        r#"{"subject":"x","tenant":"globex"}"#,
    );
    assert_eq!(r.status, 403);
    let r = admin(gw.addr, "GET", "/v1/admin/tenants", "nope", "");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("invalid admin token"))
    );
}

#[test]
fn without_admin_tokens_admin_routes_are_404() {
    let gw = spawn("serve", &[]);
    let r = admin(
        gw.addr,
        "POST",
        "/v1/admin/mint",
        "anything",
        r#"{"subject":"s"}"#,
    );
    assert_eq!(r.status, 404);
}

const ESCALATING_POLICY: &str = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "no rule"}
decision := {"allow": true, "reason": "read"} if input.tool == "read_invoice"
decision := {"allow": false, "escalate": true, "reason": "wire needs review"} if input.tool == "wire_money"
"#;

fn wait_for_pending(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = admin(
            addr,
            "GET",
            "/v1/admin/approvals?status=pending",
            "root-secret",
            "",
        )
        .json();
        if let Some(id) = v["approvals"][0]["pending_id"].as_str() {
            return id.to_owned();
        }
        assert!(Instant::now() < deadline, "no pending approval appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn escalations_wait_for_a_reviewer_then_approve_reject_or_expire() {
    let policy = escalating_policy_file();
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
            ("INTENTGATE_APPROVAL_TIMEOUT_S", "2"),
        ],
    );
    let token = mint(&[], vec![]);
    let addr = gw.addr;
    let pending_call = |t: String| {
        std::thread::spawn(move || call(addr, Some(&t), "wire_money", json!({"amount": 5})))
    };

    // Approve: the waiting call goes through (to the stub upstream).
    let waiting = pending_call(token.clone());
    let id = wait_for_pending(addr);
    let r = admin(
        addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"approve","decided_by":"alice"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = waiting.join().unwrap();
    assert!(v["result"]["content"].is_array(), "{v}");

    // Reject.
    let waiting = pending_call(token.clone());
    let id = wait_for_pending(addr);
    admin(
        addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"reject","decided_by":"bob","note":"no"}"#,
    );
    let v = waiting.join().unwrap();
    assert_eq!(
        (v["error"]["code"].clone(), v["error"]["message"].clone()),
        (json!(-32012), json!("policy: rejected by reviewer"))
    );
    assert_eq!(v["error"]["data"], "rejected by bob: no");

    // Revoked while waiting: the approval does not resurrect the token.
    let doomed = mint(&[], vec![]);
    let waiting = pending_call(doomed.clone());
    let id = wait_for_pending(addr);
    let jti = Token::decode(&doomed).unwrap().claims.jti;
    assert_eq!(
        admin(
            addr,
            "POST",
            "/v1/admin/revoke",
            "root-secret",
            &json!({"jti": jti}).to_string()
        )
        .status,
        200
    );
    admin(
        addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"approve","decided_by":"alice"}"#,
    );
    let v = waiting.join().unwrap();
    assert_eq!(
        (v["error"]["code"].clone(), v["error"]["data"].clone()),
        (json!(-32010), json!("token revoked"))
    );

    // Nobody decides: the window expires and the row says so.
    let started = Instant::now();
    let v = call(addr, Some(&token), "wire_money", json!({}));
    assert_eq!(v["error"]["message"], "policy: approval window expired");
    assert_eq!(v["error"]["data"], "approval window expired (2s)");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let rows = admin(
        addr,
        "GET",
        "/v1/admin/approvals?status=timeout",
        "root-secret",
        "",
    )
    .json();
    assert_eq!(rows["approvals"].as_array().unwrap().len(), 1);
}

#[test]
fn a_revocation_on_one_replica_reaches_another_through_postgres() {
    let db = TempDb::new();
    let env = [
        ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
        ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
        ("INTENTGATE_SNAPSHOT_MAX_STALENESS_S", "3"),
    ];
    let a = spawn("serve", &env);
    let b = spawn("serve", &env);
    let token = mint(&[], vec![]);
    assert!(call(b.addr, Some(&token), "read_invoice", json!({}))["result"].is_object());
    let jti = Token::decode(&token).unwrap().claims.jti;
    let r = admin(
        a.addr,
        "POST",
        "/v1/admin/revoke",
        "root-secret",
        &json!({"jti": jti}).to_string(),
    );
    assert_eq!(r.status, 200);
    let revoked_at = Instant::now();
    loop {
        let v = call(b.addr, Some(&token), "read_invoice", json!({}));
        if v["error"]["data"] == "token revoked" {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "replica B never saw the revocation: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "revocation reached the other replica after {:?}",
        revoked_at.elapsed()
    );
    // A restarted replica loads it at startup.
    drop(b);
    let c = spawn("serve", &env);
    assert_eq!(
        call(c.addr, Some(&token), "read_invoice", json!({}))["error"]["data"],
        "token revoked"
    );
    drop((a, c));
}

#[test]
fn a_replica_that_cannot_refresh_fails_closed_and_reports_unready() {
    let db = TempDb::new();
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_SNAPSHOT_MAX_STALENESS_S", "2"),
        ],
    );
    let token = mint(&[], vec![]);
    assert_eq!(raw(gw.addr, b"GET /healthz HTTP/1.1\r\n\r\n").status, 200);
    assert!(call(gw.addr, Some(&token), "read_invoice", json!({}))["result"].is_object());
    // The database disappears: revocations can no longer be confirmed.
    drop(db);
    let deadline = Instant::now() + Duration::from_secs(8);
    while raw(gw.addr, b"GET /healthz HTTP/1.1\r\n\r\n").status != 503 {
        assert!(
            Instant::now() < deadline,
            "healthz never reported the stale snapshot"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, reason) = error_of(&call(gw.addr, Some(&token), "read_invoice", json!({})));
    assert_eq!(
        (code, reason.as_str()),
        (
            -32010,
            "revocation snapshot is stale; token rejected (fail-closed)"
        )
    );
    // Unready is not dead: liveness stays 200, so an orchestrator does not restart a process
    // whose database is the problem.
    let live = raw(gw.addr, b"GET /livez HTTP/1.1\r\n\r\n");
    assert_eq!(
        (live.status, live.json()["status"].as_str()),
        (200, Some("alive"))
    );
}

fn approvals_env<'a>(db: &'a TempDb, policy: &'a str, replica: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
        ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
        ("INTENTGATE_POLICY_FILE", policy),
        ("INTENTGATE_APPROVALS_BACKEND", "postgres"),
        ("INTENTGATE_APPROVAL_TIMEOUT_S", "20"),
        ("INTENTGATE_REPLICA_ID", replica),
    ]
}

fn escalating_policy_file() -> std::path::PathBuf {
    temp_file("policy.rego", ESCALATING_POLICY)
}

#[test]
fn approvals_are_shared_across_replicas_through_postgres() {
    let db = TempDb::new();
    let policy = escalating_policy_file();
    let policy = policy.to_str().unwrap();
    let a = spawn("serve", &approvals_env(&db, policy, "replica-a"));
    let b = spawn("serve", &approvals_env(&db, policy, "replica-b"));
    let token = mint(&[], vec![]);

    // The call waits on A; a reviewer decides on B; A's call goes through.
    let addr = a.addr;
    let t = token.clone();
    let waiting =
        std::thread::spawn(move || call(addr, Some(&t), "wire_money", json!({"amount": 5})));
    let id = wait_for_pending(b.addr);
    let rows = admin(b.addr, "GET", "/v1/admin/approvals", "root-secret", "").json();
    assert_eq!(rows["approvals"][0]["args"], json!({"amount": 5}));
    assert_eq!(rows["approvals"][0]["tool"], "wire_money");
    let decided_at = Instant::now();
    let r = admin(
        b.addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"approve","decided_by":"alice","note":"ok"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "approved");
    let v = waiting.join().unwrap();
    let woke = decided_at.elapsed();
    assert!(v["result"]["content"].is_array(), "{v}");
    assert!(woke < Duration::from_secs(3), "the decision took {woke:?}");
    eprintln!("a decision on replica B woke the call on replica A after {woke:?}");

    // Decided once: a second decision on either replica is a 409 with the current row.
    let again = admin(
        a.addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"reject"}"#,
    );
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["current"]["status"], "approved");
    let unknown = admin(
        a.addr,
        "POST",
        "/v1/admin/approvals/nope/decide",
        "root-secret",
        r#"{"decision":"reject"}"#,
    );
    assert_eq!(unknown.status, 404);

    // Rejected on A while the call waits on B.
    let addr = b.addr;
    let t = token.clone();
    let waiting = std::thread::spawn(move || call(addr, Some(&t), "wire_money", json!({})));
    let id = wait_for_pending(a.addr);
    let r = admin(
        a.addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"reject","decided_by":"bob","note":"no"}"#,
    );
    assert_eq!(r.status, 200);
    let v = waiting.join().unwrap();
    assert_eq!(v["error"]["message"], "policy: rejected by reviewer");
    assert_eq!(v["error"]["data"], "rejected by bob: no");
    drop((a, b));
}

#[test]
fn a_restarted_replica_times_out_the_approvals_of_its_crashed_calls() {
    let db = TempDb::new();
    let policy = escalating_policy_file();
    let policy = policy.to_str().unwrap();
    let other = spawn("serve", &approvals_env(&db, policy, "replica-other"));
    let crashing = spawn("serve", &approvals_env(&db, policy, "replica-c"));
    let token = mint(&[], vec![]);
    let addr = crashing.addr;
    // The call never gets an answer: its gateway is killed while it waits.
    let _orphan = std::thread::spawn(move || {
        let _ = std::panic::catch_unwind(|| call(addr, Some(&token), "wire_money", json!({})));
    });
    let id = wait_for_pending(other.addr);
    drop(crashing); // SIGKILL: no shutdown path runs
    let rows = admin(other.addr, "GET", "/v1/admin/approvals", "root-secret", "").json();
    assert_eq!(rows["approvals"][0]["status"], "pending");

    let _restarted = spawn("serve", &approvals_env(&db, policy, "replica-c"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = admin(
            other.addr,
            "GET",
            "/v1/admin/approvals?status=timeout",
            "root-secret",
            "",
        )
        .json();
        if rows["approvals"][0]["pending_id"] == id.as_str() {
            assert_eq!(
                rows["approvals"][0]["decide_note"],
                "the gateway holding this call stopped before a decision"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the orphaned row stayed pending");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nobody can approve a call that no longer exists.
    let r = admin(
        other.addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"approve"}"#,
    );
    assert_eq!(r.status, 409);
}

/// One open connection to a test database, kept across an outage of everyone else's.
const TOOL_ROWS: &str =
    "SELECT count(*) FROM audit_events WHERE tool IN ('read_invoice', 'send_money')";

#[test]
fn every_answered_decision_is_persisted_across_a_database_outage() {
    let db = TempDb::new();
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
            ("INTENTGATE_AUDIT_PERSIST", "true"),
        ],
    );
    let token = mint(&["read_invoice"], vec![]);
    let mut answered = 0;
    let calls = |n: usize, answered: &mut i64| {
        for i in 0..n {
            let tool = if i % 4 == 0 {
                "send_money"
            } else {
                "read_invoice"
            };
            let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tool, "arguments": {"i": i}}});
            match post(gw.addr, "/v1/mcp", Some(&token), &body.to_string()).status {
                200 => *answered += 1,
                503 => {}
                other => panic!("unexpected status {other}"),
            }
        }
    };
    calls(40, &mut answered);
    // The database refuses this gateway for a while (every connection but the probe's is
    // cut, no new one is accepted): the writer must hold the records.
    let mut probe = Probe::open(&db.url);
    let probe_pid = probe.scalar("SELECT pg_backend_pid()::bigint");
    let name = &db.name;
    TempDb::exec(
        &db.admin_url,
        &format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> {probe_pid}"
        ),
    );
    calls(120, &mut answered);
    std::thread::sleep(Duration::from_millis(500));
    calls(40, &mut answered);
    let during = probe.scalar(TOOL_ROWS);
    assert!(
        during < answered,
        "the outage did not hold anything back ({during} rows, {answered} answered)"
    );
    TempDb::exec(
        &db.admin_url,
        &format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = probe.scalar(TOOL_ROWS);
        if rows == answered {
            break;
        }
        assert!(
            rows < answered,
            "more rows ({rows}) than answered calls ({answered})"
        );
        assert!(
            Instant::now() < deadline,
            "only {rows} of {answered} answered decisions were persisted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        answered >= 150,
        "too many calls refused: {answered} answered"
    );
    let v = admin(
        gw.addr,
        "GET",
        "/v1/admin/audit/verify?tenant=acme",
        "root-secret",
        "",
    )
    .json();
    assert_eq!(
        (v["ok"].clone(), v["tenant"].clone()),
        (json!(true), json!("acme")),
        "{v}"
    );
    assert_eq!(v["verified"], answered);
    assert!(v["head_id"].is_i64() && v["head_at"].is_string(), "{v}");
    // The query route reads the same rows back, newest first, with a keyset cursor.
    let page = admin(
        gw.addr,
        "GET",
        "/v1/admin/audit?limit=5&decision=block&count=true",
        "root-secret",
        "",
    )
    .json();
    assert_eq!(page["events"].as_array().unwrap().len(), 5);
    assert_eq!(page["events"][0]["tool"], "send_money");
    assert!(page["total"].as_i64().unwrap() >= 40);
    let next = page["next_before_id"].as_i64().unwrap();
    let older = admin(
        gw.addr,
        "GET",
        &format!("/v1/admin/audit?limit=5&decision=block&before_id={next}"),
        "root-secret",
        "",
    )
    .json();
    assert_ne!(older["events"][0], page["events"][0]);
    let bad = admin(
        gw.addr,
        "GET",
        "/v1/admin/audit?from=yesterday",
        "root-secret",
        "",
    );
    assert_eq!(bad.status, 400);
    let bad = admin(
        gw.addr,
        "GET",
        "/v1/admin/audit?before_id=x",
        "root-secret",
        "",
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "before_id must be an integer");
    let bad = admin(gw.addr, "GET", "/v1/admin/audit?id=x", "root-secret", "");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "id must be an integer");
}

#[test]
fn a_graceful_stop_persists_every_record_first() {
    let db = TempDb::new();
    let mut gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_AUDIT_PERSIST", "true"),
        ],
    );
    let token = mint(&["read_invoice"], vec![]);
    // Pipelined on one connection, then SIGTERM at once: the last records are still in the
    // rings or the writer's queue when the signal arrives.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "read_invoice", "arguments": {}}}).to_string();
    let one = format!(
        "POST /v1/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(one.repeat(300).as_bytes()).unwrap();
    let mut pending = Vec::new();
    for _ in 0..300 {
        assert_eq!(read_reply(&mut s, &mut pending).status, 200);
    }
    sigterm(&gw.child);
    let status = gw.child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut probe = Probe::open(&db.url);
    assert_eq!(probe.scalar(TOOL_ROWS), 300);
}

const UPSTREAM_OK: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\nConnection: close\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";

fn sync_gateway(db: &TempDb, upstream: &str) -> Gateway {
    spawn(
        "serve",
        &[
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
            ("INTENTGATE_AUDIT_PERSIST", "true"),
            ("INTENTGATE_AUDIT_DURABILITY", "sync"),
            ("INTENTGATE_UPSTREAM_URL", upstream),
        ],
    )
}

#[test]
fn sync_durability_answers_nothing_before_its_record_is_committed() {
    let db = TempDb::new();
    let upstream = fake_upstream(Duration::ZERO, UPSTREAM_OK);
    let gw = sync_gateway(&db, &upstream);
    let token = mint(&["read_invoice"], vec![]);
    let v = call(gw.addr, Some(&token), "read_invoice", json!({}));
    assert!(v["result"].is_object(), "{v}");
    let mut probe = Probe::open(&db.url);
    assert_eq!(
        probe.scalar(TOOL_ROWS),
        1,
        "answered before its row existed"
    );

    // While the database refuses the gateway, a call gets no answer (and is not forwarded).
    let probe_pid = probe.scalar("SELECT pg_backend_pid()::bigint");
    let name = &db.name;
    TempDb::exec(
        &db.admin_url,
        &format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> {probe_pid}"
        ),
    );
    let addr = gw.addr;
    let t = token.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(call(addr, Some(&t), "send_money", json!({})));
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "a decision was answered while its record could not be committed"
    );
    TempDb::exec(
        &db.admin_url,
        &format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"),
    );
    let denied = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(denied["error"]["code"], -32010);
    assert_eq!(probe.scalar(TOOL_ROWS), 2);
}

/// Runs 4 client threads against `gw` until it is killed 1.5 s in; returns (answered, rows).
fn kill_9_under_load(db: &TempDb, gw: Gateway) -> (i64, i64) {
    let token = mint(&["read_invoice"], vec![]);
    let answered = std::sync::Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, token, answered) = (gw.addr, token.clone(), answered.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let tool = if (w + i) % 3 == 0 { "send_money" } else { "read_invoice" };
                    let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tool, "arguments": {}}}).to_string();
                    let ok = std::panic::catch_unwind(|| post(addr, "/v1/mcp", Some(&token), &body).status);
                    match ok {
                        Ok(200) => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    drop(gw); // SIGKILL under load
    for w in workers {
        let _ = w.join();
    }
    let answered = answered.load(Ordering::SeqCst) as i64;
    assert!(answered > 20, "the load did not run: {answered} answered");
    (answered, Probe::open(&db.url).scalar(TOOL_ROWS))
}

#[test]
fn sync_durability_loses_no_answered_decision_to_kill_9() {
    let db = TempDb::new();
    let upstream = fake_upstream(Duration::ZERO, UPSTREAM_OK);
    let (answered, rows) = kill_9_under_load(&db, sync_gateway(&db, &upstream));
    // Every answered decision has its row. Rows may exceed answers: a record can commit
    // and the gateway die before the answer leaves.
    assert!(
        rows >= answered,
        "{rows} rows for {answered} answered decisions"
    );
    eprintln!("sync mode, kill -9 under load: {answered} answered, {rows} rows");
}

#[test]
fn async_durability_loses_at_most_the_documented_bound_to_kill_9() {
    let db = TempDb::new();
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_AUDIT_PERSIST", "true"),
        ],
    );
    let (answered, rows) = kill_9_under_load(&db, gw);
    // docs/OPERATIONS.md: the rings (16,384 per core, 2 cores + the control plane's), the
    // writer's queue and one transaction. Anything beyond means records were dropped.
    let bound = 3 * 16_384 + 256 * 512 + 4_096;
    assert!(answered - rows <= bound, "{answered} answered, {rows} rows");
    eprintln!("async mode, kill -9 under load: {answered} answered, {rows} rows");
}

#[test]
fn an_export_verifies_offline_against_a_signed_checkpoint() {
    let db = TempDb::new();
    let seed = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
            ("INTENTGATE_AUDIT_PERSIST", "true"),
            ("INTENTGATE_AUDIT_SIGNING_KEY", seed),
        ],
    );
    let token = mint(&["read_invoice"], vec![]);
    for i in 0..25 {
        let tool = if i % 5 == 0 {
            "send_money"
        } else {
            "read_invoice"
        };
        call(gw.addr, Some(&token), tool, json!({"i": i}));
    }
    // Wait until the writer committed (and signed) all of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let checkpoints = loop {
        let v = admin(
            gw.addr,
            "GET",
            "/v1/admin/audit/checkpoints?tenant=acme",
            "root-secret",
            "",
        )
        .json();
        if v["checkpoints"][0]["seq"] == 25 {
            break v;
        }
        assert!(Instant::now() < deadline, "no checkpoint for seq 25: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let public_key = checkpoints["public_key"].as_str().unwrap().to_owned();
    let export = admin(
        gw.addr,
        "GET",
        "/v1/admin/audit/export?format=json&tenant=acme",
        "root-secret",
        "",
    );
    assert_eq!(export.status, 200);
    let dir = std::env::temp_dir().join(format!(
        "ig-export-{}-{}",
        std::process::id(),
        closed_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (export_file, checkpoint_file) = (dir.join("audit.ndjson"), dir.join("checkpoints.json"));
    std::fs::write(&export_file, &export.body).unwrap();
    std::fs::write(&checkpoint_file, checkpoints.to_string()).unwrap();
    let verify = |key: &str| {
        Command::new(env!("CARGO_BIN_EXE_intentgate"))
            .args(["audit", "verify-file", "--export"])
            .arg(&export_file)
            .arg("--checkpoint")
            .arg(&checkpoint_file)
            .args(["--public-key", key])
            .output()
            .unwrap()
    };
    let ok = verify(&public_key);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("25 rows verified, seq 25 matches"),
        "{stdout}"
    );

    // Another key, or one edited byte in the export, fails.
    let stranger = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let bad = verify(stranger);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("checkpoint: the signature does not verify")
    );
    let edited = String::from_utf8(export.body.clone()).unwrap().replacen(
        "\"latency_ms\":",
        "\"latency_ms\":1",
        1,
    );
    std::fs::write(&export_file, edited).unwrap();
    let bad = verify(&public_key);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("hash mismatch (row body tampered)"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // A checkpoints file without checkpoints, and a re-baseline without a reason, are refused
    // with what is wrong (before any database is touched).
    std::fs::write(&checkpoint_file, r#"{"checkpoints":[]}"#).unwrap();
    let empty = verify(&public_key);
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("the checkpoints list is empty"));
    let no_note = Command::new(env!("CARGO_BIN_EXE_intentgate"))
        .args(["audit", "rebaseline", "--tenant", "acme", "--note", " "])
        .args(["--database-url", "postgres://127.0.0.1:1/none"])
        .output()
        .unwrap();
    assert!(!no_note.status.success());
    assert!(
        String::from_utf8_lossy(&no_note.stderr)
            .contains("--note must say what the investigation found")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_gateways_writing_one_tenant_keep_one_unbroken_chain() {
    let db = TempDb::new();
    let env = [
        ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
        ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
        ("INTENTGATE_AUDIT_PERSIST", "true"),
    ];
    let (a, b) = (spawn("serve", &env), spawn("serve", &env));
    let token = mint(&["read_invoice"], vec![]);
    let answered = std::sync::Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = [a.addr, b.addr, a.addr, b.addr]
        .into_iter()
        .map(|addr| {
            let (token, answered) = (token.clone(), answered.clone());
            std::thread::spawn(move || {
                for i in 0..150 {
                    let tool = if i % 4 == 0 { "send_money" } else { "read_invoice" };
                    let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tool, "arguments": {}}}).to_string();
                    assert_eq!(post(addr, "/v1/mcp", Some(&token), &body).status, 200);
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let answered = answered.load(Ordering::SeqCst) as i64;
    let mut probe = Probe::open(&db.url);
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe.scalar(TOOL_ROWS) < answered {
        assert!(Instant::now() < deadline, "rows missing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let v = admin(
        a.addr,
        "GET",
        "/v1/admin/audit/verify?tenant=acme",
        "root-secret",
        "",
    )
    .json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["verified"], answered);
    assert_eq!(
        probe.scalar(
            "SELECT max(seq) - min(seq) + 1 - count(*) FROM audit_events WHERE tenant = 'acme'"
        ),
        0,
        "gaps in seq"
    );
    drop((a, b));
}

#[test]
fn a_promoted_policy_reaches_every_replica() {
    let db = TempDb::new();
    let env = [
        ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
        ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
        ("INTENTGATE_POLICY_STORE", "postgres"),
    ];
    let (a, b) = (spawn("serve", &env), spawn("serve", &env));
    let token = mint(&[], vec![]);
    assert!(call(b.addr, Some(&token), "read_invoice", json!({}))["result"].is_object());
    let frozen = "package intentgate.policy\nimport rego.v1\ndefault decision := {\"allow\": false, \"reason\": \"frozen for the incident\"}\n";
    let draft = admin(
        a.addr,
        "POST",
        "/v1/admin/policies/drafts",
        "root-secret",
        &json!({"name": "freeze", "rego_source": frozen}).to_string(),
    );
    assert_eq!(
        draft.status,
        201,
        "{}",
        String::from_utf8_lossy(&draft.body)
    );
    let id = draft.json()["id"].as_str().unwrap().to_owned();
    let promoted = admin(
        a.addr,
        "POST",
        "/v1/admin/policies/active",
        "root-secret",
        &json!({"draft_id": id, "promoted_by": "oncall"}).to_string(),
    );
    assert_eq!(promoted.status, 200);
    let at = Instant::now();
    // On the promoting replica the swap happened before the answer.
    assert_eq!(
        error_of(&call(a.addr, Some(&token), "read_invoice", json!({}))),
        (-32012, "frozen for the incident".into())
    );
    loop {
        let v = call(b.addr, Some(&token), "read_invoice", json!({}));
        if v["error"]["data"] == "frozen for the incident" {
            break;
        }
        assert!(
            at.elapsed() < Duration::from_secs(5),
            "replica B kept the old policy: {v}"
        );
    }
    eprintln!("a promote on A reached B after {:?}", at.elapsed());
    // A replica started later loads it before serving.
    let c = spawn("serve", &env);
    assert_eq!(
        error_of(&call(c.addr, Some(&token), "read_invoice", json!({}))).1,
        "frozen for the incident"
    );
    // Rollback is one step: nothing before the first promote.
    let r = admin(
        a.addr,
        "POST",
        "/v1/admin/policies/rollback",
        "root-secret",
        "",
    );
    assert_eq!(r.status, 404);
    let cleared = admin(
        a.addr,
        "DELETE",
        "/v1/admin/policies/active",
        "root-secret",
        "",
    );
    assert_eq!(cleared.status, 200);
    let at = Instant::now();
    while !call(b.addr, Some(&token), "read_invoice", json!({}))["result"].is_object() {
        assert!(
            at.elapsed() < Duration::from_secs(5),
            "B kept the cleared policy"
        );
    }
    drop((a, b, c));
}
