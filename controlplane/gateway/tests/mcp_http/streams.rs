//! Sessions, event-stream answers and the 2026-07-28 header rules.

use super::*;

fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub(super) fn mcp_post(
    addr: SocketAddr,
    token: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "POST /v1/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nAccept: application/json, text/event-stream\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(addr, req.as_bytes())
}

/// An upstream MCP server that speaks sessions and answers tool calls as event streams
/// (a progress notification, then the response), with a few broken streams on request.
fn sse_upstream() -> Receiver {
    Receiver::start_with(|req, _| {
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let id = v["id"].clone();
        let sse = |body: String| Answer {
            status: 200,
            headers: vec![("Content-Type".into(), "text/event-stream".into())],
            body,
        };
        match v["method"].as_str().unwrap() {
            "initialize" => Answer {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "application/json".into()),
                    ("Mcp-Session-Id".into(), "sess-123".into()),
                ],
                body: serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "up", "version": "1"}}}).to_string(),
            },
            "tools/list" => sse(format!(
                "id: 1\ndata: {}\n\n",
                serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [{"name": "read_invoice"}, {"name": "pay"}]}})
            )),
            "tools/call" => match v["params"]["name"].as_str().unwrap() {
                "read_invoice" => sse(format!(
                    ": ping\n\nevent: message\ndata: {}\n\nevent: message\ndata: {}\n\n",
                    serde_json::json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 50}}),
                    serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "invoice 7"}]}})
                )),
                "cut_stream" => sse("data: {\"jsonrpc\":\"2.0\",\"id\":".into()),
                "no_answer" => sse(format!(
                    "data: {}\n\n",
                    serde_json::json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}})
                )),
                _ => Answer {
                    status: 200,
                    headers: vec![("Content-Type".into(), "text/html".into())],
                    body: "<html>oops</html>".into(),
                },
            },
            _ => Answer {
                status: 202,
                headers: vec![],
                body: String::new(),
            },
        }
    })
}

#[test]
fn sessions_are_sealed_and_event_stream_answers_are_relayed_checked_and_audited() {
    use intentgate_shared::token::Caveat;
    let db = TempDb::new();
    let upstream = sse_upstream();
    let policy = temp_file("allow-all.rego", ALLOW_ALL_POLICY);
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
            (
                "INTENTGATE_UPSTREAM_URL",
                &format!("http://{}/mcp", upstream.addr),
            ),
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_AUDIT_PERSIST", "true"),
            ("INTENTGATE_ADMIN_TOKEN", "mcp-admin"),
        ],
    );
    let token = mint(&["read_invoice", "cut_stream", "no_answer", "html"], vec![]);

    // initialize: the protocol version goes up, the session id comes back sealed (the
    // client never sees the upstream's own id).
    let r = mcp_post(
        gw.addr,
        &token,
        &[("MCP-Protocol-Version", "2025-06-18")],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    );
    assert_eq!(r.status, 200);
    let sealed = header(&r.head, "mcp-session-id").to_owned();
    assert!(!sealed.contains("sess-123"), "{sealed}");
    let seen = upstream.requests();
    assert_eq!(seen[0].header("mcp-protocol-version"), "2025-06-18");
    assert_eq!(
        seen[0].header("accept"),
        "application/json, text/event-stream"
    );

    // Later requests carry the session to the upstream, as the upstream's own id.
    let session = [
        ("Mcp-Session-Id", sealed.as_str()),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    let r = mcp_post(
        gw.addr,
        &token,
        &session,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_invoice","arguments":{}}}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.head, "content-type"), "text/event-stream");
    let text = String::from_utf8(r.body.clone()).unwrap();
    let mut parser = intentgate_dataplane::sse::Parser::new(1 << 20);
    let events = parser.push(text.as_bytes()).unwrap();
    assert_eq!(events.len(), 2, "{text}");
    let progress: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(progress["method"], "notifications/progress");
    let last: serde_json::Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!(last["id"], 2);
    assert_eq!(last["result"]["content"][0]["text"], "invoice 7");
    let seen = upstream.requests();
    assert_eq!(seen[1].header("mcp-session-id"), "sess-123");
    assert_eq!(seen[1].header("mcp-protocol-version"), "2025-06-18");

    // A tools/list answered as an event stream is filtered inside the stream.
    // (by a token attenuated from the session's: the session belongs to its root token)
    let narrow = intentgate_shared::token::Token::decode(&token)
        .unwrap()
        .attenuate(Caveat::tool_allow(["read_invoice"]))
        .unwrap()
        .attenuate(Caveat::tool_deny(["pay"]))
        .unwrap()
        .encode();
    let r = mcp_post(
        gw.addr,
        &narrow,
        &session,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
    );
    assert_eq!(header(&r.head, "content-type"), "text/event-stream");
    let events = intentgate_dataplane::sse::Parser::new(1 << 20)
        .push(&r.body)
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(
        list["result"]["tools"],
        serde_json::json!([{"name": "read_invoice"}])
    );
    assert_eq!(events[0].id.as_deref(), Some("1"), "event ids are kept");

    // Broken streams: a clean -32603 for the agent.
    for (tool, why) in [
        ("cut_stream", "cut mid-event"),
        ("no_answer", "ended without a response"),
        ("html", "non-JSON-RPC body"),
    ] {
        let r = mcp_post(
            gw.addr,
            &token,
            &session,
            &format!(
                r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
            ),
        );
        assert_eq!(r.status, 200, "{tool}");
        // Streams fail after their head went out: the error is the stream's last event.
        let v = if header_of(&r.head, "content-type") == Some("text/event-stream") {
            let events = intentgate_dataplane::sse::Parser::new(1 << 20)
                .push(&r.body)
                .unwrap();
            serde_json::from_str(&events.last().unwrap().data).unwrap()
        } else {
            r.json()
        };
        assert_eq!(v["error"]["code"], -32603, "{tool}: {v}");
        assert_eq!(v["id"], 9);
        assert!(
            v["error"]["message"].as_str().unwrap().contains(why),
            "{tool}: {v}"
        );
    }

    // Every call has its audit row; the broken ones are blocks at the upstream stage.
    let rows = wait_until(std::time::Duration::from_secs(10), || {
        let r = admin(
            gw.addr,
            "GET",
            "/v1/admin/audit?check=upstream&decision=block",
            "mcp-admin",
            "",
        );
        r.json()["events"].as_array().unwrap().len() == 3
    });
    assert!(rows, "three upstream blocks audited");
    let r = admin(
        gw.addr,
        "GET",
        "/v1/admin/audit?tool=read_invoice",
        "mcp-admin",
        "",
    );
    let events = r.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["decision"], "allow");
    assert_eq!(events[0]["upstream_status"], 200);
}

#[test]
fn the_2026_revision_headers_must_repeat_the_body_and_unknown_versions_are_refused() {
    let upstream = Receiver::start(|req, _| {
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        (
            200,
            serde_json::json!({"jsonrpc": "2.0", "id": v["id"], "result": {"tools": []}})
                .to_string(),
        )
    });
    let gw = spawn(
        "serve",
        &[(
            "INTENTGATE_UPSTREAM_URL",
            &format!("http://{}/mcp", upstream.addr),
        )],
    );
    let token = mint(&[], vec![]);
    let list = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"_meta":{"protocolVersion":"2026-07-28"}}}"#;
    let modern = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/list"),
        ("Mcp-Param-Region", "=?base64?ZXUtd2VzdA==?="),
    ];
    let r = mcp_post(gw.addr, &token, &modern, list);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = upstream.requests();
    assert_eq!(
        seen[0].header("mcp-method"),
        "tools/list",
        "checked headers go upstream"
    );
    assert_eq!(
        seen[0].header("mcp-param-region"),
        "=?base64?ZXUtd2VzdA==?=",
        "Mcp-Param-* headers are forwarded untouched"
    );

    // Header and body disagree: 400 with -32020 and the request's id.
    for headers in [
        vec![
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
        ],
        vec![("MCP-Protocol-Version", "2026-07-28")],
    ] {
        let r = mcp_post(gw.addr, &token, &headers, list);
        assert_eq!(r.status, 400, "{headers:?}");
        let v = r.json();
        assert_eq!(v["error"]["code"], -32020, "{v}");
        assert_eq!(v["id"], 5);
    }
    let call = r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"read_invoice","arguments":{}}}"#;
    let r = mcp_post(
        gw.addr,
        &token,
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "delete_everything"),
        ],
        call,
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_i64()),
        (400, Some(-32020))
    );
    assert_eq!(
        upstream.requests().len(),
        1,
        "refused requests never reach the upstream"
    );

    // Versions this gateway does not serve: a later one gets the modern error, an unknown
    // older one a plain 400 (a legacy client must not see a modern body).
    let r = mcp_post(
        gw.addr,
        &token,
        &[("MCP-Protocol-Version", "2027-03-01")],
        list,
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_i64()),
        (400, Some(-32022))
    );
    let r = mcp_post(
        gw.addr,
        &token,
        &[("MCP-Protocol-Version", "2024-11-05")],
        list,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("unsupported MCP-Protocol-Version")
    );
    // Legacy versions are served as before.
    let r = mcp_post(
        gw.addr,
        &token,
        &[("MCP-Protocol-Version", "2025-11-25")],
        list,
    );
    assert_eq!(r.status, 200);
}
