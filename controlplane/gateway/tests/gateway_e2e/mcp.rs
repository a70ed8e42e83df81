//! The MCP surface of `intentgate dev` and `serve`: the checks, other methods, malformed input, HTTP framing, the legacy endpoint, graceful stop and the Python SDK.

use super::*;

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
    // The refusal says which limit, what was used, and (no retry_after_s) that a lifetime
    // limit never frees up.
    let refused = call(gw.addr, Some(&child), "read_invoice", json!({}));
    assert_eq!(refused["error"]["code"], -32013, "{refused}");
    assert_eq!(
        refused["error"]["data"],
        json!({"reason": "max_calls exceeded (3 > 2)", "scope": "max_calls", "limit": 2, "used": 2})
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
    let Some(python) = python_from("INTENTGATE_SDK_PYTHON") else {
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
