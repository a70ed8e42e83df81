//! MCP Streamable HTTP rules the gateway enforces on its own surface (issue #6, in progress):
//! `Origin` validation against DNS rebinding.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking; that is their job"
)]

use std::net::SocketAddr;

#[path = "support/gateway.rs"]
mod support;
use support::*;

fn with_origin(addr: SocketAddr, path: &str, origin: Option<&str>) -> Reply {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{}}}"#;
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{origin}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(addr, req.as_bytes())
}

#[test]
fn foreign_origins_are_refused_by_default_and_a_list_replaces_the_default() {
    let gw = spawn("serve", &[]);
    // No Origin (every non-browser agent) and loopback origins reach the checks (no token:
    // the capability check answers).
    for origin in [
        None,
        Some("http://localhost:3000"),
        Some("http://127.0.0.1"),
    ] {
        let r = with_origin(gw.addr, "/v1/mcp", origin);
        assert_eq!(r.status, 200, "{origin:?}");
        assert_eq!(error_of(&r.json()).0, -32010, "{origin:?}");
    }
    // A page elsewhere whose name resolves here (DNS rebinding) is refused before any check.
    for origin in [
        "http://evil.example",
        "http://localhost.evil.example",
        "null",
    ] {
        let r = with_origin(gw.addr, "/v1/mcp", Some(origin));
        assert_eq!(r.status, 403, "{origin}");
        let v = r.json();
        assert_eq!(v["error"]["code"], -32600);
        assert!(v["id"].is_null());
        let r = with_origin(gw.addr, "/v1/tool-call", Some(origin));
        assert_eq!(r.status, 403, "{origin}");
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("origin not allowed")
        );
    }
    drop(gw);

    let gw = spawn(
        "serve",
        &[("INTENTGATE_ALLOWED_ORIGINS", "https://app.example")],
    );
    assert_eq!(
        with_origin(gw.addr, "/v1/mcp", Some("https://app.example")).status,
        200
    );
    assert_eq!(
        with_origin(gw.addr, "/v1/mcp", Some("http://localhost:3000")).status,
        403
    );
    assert_eq!(with_origin(gw.addr, "/v1/mcp", None).status, 200);
    drop(gw);

    let gw = spawn("serve", &[("INTENTGATE_ALLOWED_ORIGINS", "*")]);
    assert_eq!(
        with_origin(gw.addr, "/v1/mcp", Some("http://evil.example")).status,
        200
    );
}

fn list_tools(addr: SocketAddr, token: &str) -> serde_json::Value {
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"page-1"}}"#;
    post(addr, "/v1/mcp", Some(token), body).json()
}

#[test]
fn tools_list_answers_show_only_the_tools_the_token_may_call() {
    use intentgate_shared::token::Caveat;
    let upstream = Receiver::start(|req, _| {
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(v["method"], "tools/list");
        assert_eq!(
            v["params"]["cursor"], "page-1",
            "the request is forwarded as sent"
        );
        let tools: Vec<serde_json::Value> = ["read_invoice", "search", "delete_all", "pay"]
            .iter()
            .map(|n| serde_json::json!({"name": n, "description": format!("{n} tool"), "inputSchema": {"type": "object"}}))
            .collect();
        (
            200,
            serde_json::json!({"jsonrpc": "2.0", "id": v["id"], "result": {"tools": tools, "nextCursor": "page-2"}})
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
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let narrow = mint(
        &["read_invoice", "search", "delete_all"],
        vec![Caveat::tool_deny(["delete_all"])],
    );
    let v = list_tools(gw.addr, &narrow);
    assert_eq!(names(&v), ["read_invoice", "search"]);
    assert_eq!(v["id"], 7);
    assert_eq!(v["result"]["nextCursor"], "page-2", "pagination is kept");
    assert_eq!(v["result"]["tools"][0]["description"], "read_invoice tool");
    let open = mint(&[], vec![]);
    assert_eq!(
        names(&list_tools(gw.addr, &open)),
        ["read_invoice", "search", "delete_all", "pay"]
    );
}

fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn mcp_post(addr: SocketAddr, token: &str, headers: &[(&str, &str)], body: &str) -> Reply {
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
fn sessions_pass_through_and_event_stream_answers_are_relayed_checked_and_audited() {
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

    // initialize: the protocol version goes up, the session id comes back.
    let r = mcp_post(
        gw.addr,
        &token,
        &[("MCP-Protocol-Version", "2025-06-18")],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.head, "mcp-session-id"), "sess-123");
    let seen = upstream.requests();
    assert_eq!(seen[0].header("mcp-protocol-version"), "2025-06-18");
    assert_eq!(
        seen[0].header("accept"),
        "application/json, text/event-stream"
    );

    // Later requests carry the session to the upstream.
    let session = [
        ("Mcp-Session-Id", "sess-123"),
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
    let narrow = mint(&["read_invoice"], vec![Caveat::tool_deny(["pay"])]);
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

#[test]
fn oauth_resource_mode_publishes_metadata_and_challenges_token_less_calls() {
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_OAUTH_RESOURCE", "https://gw.example/v1/mcp"),
            (
                "INTENTGATE_OAUTH_AUTHORIZATION_SERVERS",
                "https://login.example/tenant",
            ),
            ("INTENTGATE_OAUTH_SCOPES", "mcp.tools"),
        ],
    );
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/v1/mcp",
    ] {
        let r = raw(
            gw.addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 200, "{path}");
        let v = r.json();
        assert_eq!(v["resource"], "https://gw.example/v1/mcp");
        assert_eq!(
            v["authorization_servers"][0],
            "https://login.example/tenant"
        );
        assert_eq!(v["scopes_supported"][0], "mcp.tools");
        assert_eq!(v["bearer_methods_supported"][0], "header");
    }
    // No token: 401 with the challenge, and the JSON-RPC error the SDKs map (-32010).
    let r = with_origin(gw.addr, "/v1/mcp", None);
    assert_eq!(r.status, 401);
    assert_eq!(
        header(&r.head, "www-authenticate"),
        "Bearer resource_metadata=\"https://gw.example/.well-known/oauth-protected-resource/v1/mcp\", scope=\"mcp.tools\""
    );
    assert_eq!(error_of(&r.json()).0, -32010);
    // A token that fails is a JSON-RPC refusal as before (the client has credentials).
    let r = post(
        gw.addr,
        "/v1/mcp",
        Some("not-a-token"),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(error_of(&r.json()).0, -32010);
    drop(gw);

    // Without the mode: no metadata, no 401.
    let gw = spawn("serve", &[]);
    let r = raw(
        gw.addr,
        b"GET /.well-known/oauth-protected-resource HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(r.status, 404);
    assert_eq!(with_origin(gw.addr, "/v1/mcp", None).status, 200);

    // Misconfigured discovery is refused at startup, one line naming the variable.
    for (env, expect) in [
        (
            vec![("INTENTGATE_OAUTH_RESOURCE", "https://gw.example/v1/mcp")],
            "INTENTGATE_OAUTH_AUTHORIZATION_SERVERS: at least one is required",
        ),
        (
            vec![(
                "INTENTGATE_OAUTH_AUTHORIZATION_SERVERS",
                "https://login.example",
            )],
            "INTENTGATE_OAUTH_RESOURCE: required when INTENTGATE_OAUTH_AUTHORIZATION_SERVERS is set",
        ),
        (
            vec![
                (
                    "INTENTGATE_OAUTH_RESOURCE",
                    "https://gw.example/v1/mcp#frag",
                ),
                (
                    "INTENTGATE_OAUTH_AUTHORIZATION_SERVERS",
                    "https://login.example",
                ),
            ],
            "INTENTGATE_OAUTH_RESOURCE: the canonical resource URI has no fragment",
        ),
        (
            vec![
                ("INTENTGATE_OAUTH_RESOURCE", "https://gw.example/v1/mcp"),
                ("INTENTGATE_OAUTH_AUTHORIZATION_SERVERS", "login.example"),
            ],
            "INTENTGATE_OAUTH_AUTHORIZATION_SERVERS: invalid entry \"login.example\"",
        ),
        (
            vec![
                ("INTENTGATE_OAUTH_RESOURCE", "https://gw.example/v1/mcp"),
                (
                    "INTENTGATE_OAUTH_AUTHORIZATION_SERVERS",
                    "https://login.example",
                ),
                ("INTENTGATE_OAUTH_SCOPES", "mcp.tools,offline_access"),
            ],
            "INTENTGATE_OAUTH_SCOPES: scopes are plain tokens, and offline_access must not be advertised",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_intentgate"))
            .arg("serve")
            .env_clear()
            .env("INTENTGATE_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{env:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{env:?}: {err}");
    }
}

/// An upstream whose tool sends a progress event, works for `pause`, then answers; chunked,
/// as MCP servers stream.
fn slow_tool_upstream(pause: std::time::Duration) -> SocketAddr {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let Some((_, body)) = read_message(&mut s, &mut Vec::new()) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let chunk = |data: String| format!("{:x}\r\n{data}\r\n", data.len());
            let progress = format!(
                "event: message\ndata: {}\n\n",
                serde_json::json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1, "total": 2}})
            );
            let done = format!(
                "event: message\ndata: {}\n\n",
                serde_json::json!({"jsonrpc": "2.0", "id": v["id"], "result": {"content": [{"type": "text", "text": "done"}]}})
            );
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                    chunk(progress)
                )
                .as_bytes(),
            );
            let _ = s.flush();
            std::thread::sleep(pause);
            let _ = s.write_all(format!("{}0\r\n\r\n", chunk(done)).as_bytes());
        }
    });
    addr
}

#[test]
fn progress_reaches_the_agent_while_the_tool_is_still_running() {
    use std::io::{Read as _, Write as _};
    use std::time::{Duration, Instant};
    let pause = Duration::from_millis(1500);
    let upstream = slow_tool_upstream(pause);
    let gw = spawn(
        "serve",
        &[("INTENTGATE_UPSTREAM_URL", &format!("http://{upstream}/mcp"))],
    );
    let token = mint(&["read_invoice"], vec![]);
    let body = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"read_invoice","arguments":{},"_meta":{"progressToken":1}}}"#;
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let sent = Instant::now();
    s.write_all(
        format!(
            "POST /v1/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut got = Vec::new();
    let mut tmp = [0u8; 4096];
    let first_progress = loop {
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&tmp[..n]);
        if String::from_utf8_lossy(&got).contains("notifications/progress") {
            break sent.elapsed();
        }
    };
    assert!(
        first_progress < pause,
        "the progress event arrived after {first_progress:?}, not while the tool ran"
    );
    // Then the answer, and the end of the chunked stream.
    while !got.ends_with(b"0\r\n\r\n") {
        let n = s.read(&mut tmp).unwrap();
        assert!(
            n > 0,
            "closed before the end: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&tmp[..n]);
    }
    assert!(sent.elapsed() >= pause);
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    assert_eq!(header(head, "content-type"), "text/event-stream");
    assert_eq!(header(head, "transfer-encoding"), "chunked");
    let (events_bytes, _) = dechunk(rest.as_bytes()).unwrap();
    let events = intentgate_dataplane::sse::Parser::new(1 << 20)
        .push(&events_bytes)
        .unwrap();
    assert_eq!(events.len(), 2);
    let last: serde_json::Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!(
        (
            last["id"].as_i64(),
            last["result"]["content"][0]["text"].as_str()
        ),
        (Some(42), Some("done"))
    );
    // The connection stays usable for the next request.
    let next = r#"{"jsonrpc":"2.0","id":43,"method":"ping"}"#;
    s.write_all(
        format!(
            "POST /v1/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{next}",
            next.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let r = read_reply(&mut s, &mut Vec::new());
    assert_eq!(r.status, 200);
}

/// Runs an official MCP SDK server script upstream of a gateway and its client script
/// through it; the client prints `marker` when every check passed.
fn sdk_exchange(
    python: &std::ffi::OsStr,
    server: &str,
    client: &str,
    tools: &[&str],
    marker: &str,
) {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python");
    let port = closed_port();
    let mut child = Command::new(python)
        .arg(format!("{dir}/{server}"))
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _server = Kill(child);
    assert_eq!(first.trim(), "ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the MCP server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let policy = temp_file("allow-all.rego", ALLOW_ALL_POLICY);
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
            (
                "INTENTGATE_UPSTREAM_URL",
                &format!("http://127.0.0.1:{port}/mcp"),
            ),
        ],
    );
    let token = mint(tools, vec![]);
    run_python_check(python, client, gw.addr, &token, marker);
}

/// The official MCP Python SDK 1.x on both sides (FastMCP server, Streamable HTTP client,
/// sessions; needs `INTENTGATE_SDK_PYTHON`, which `cargo xtask test` provides).
#[test]
fn the_official_mcp_sdk_works_through_the_gateway() {
    let Some(python) = std::env::var_os("INTENTGATE_SDK_PYTHON") else {
        eprintln!("note: INTENTGATE_SDK_PYTHON unset; skipping the MCP SDK end-to-end test");
        return;
    };
    sdk_exchange(
        &python,
        "mcp_server.py",
        "mcp_client.py",
        &["read_invoice", "slow_report"],
        "mcp e2e: all checks passed",
    );
}

/// The official MCP Python SDK 2.x on both sides: discovery and the stateless 2026-07-28
/// revision, whose headers the gateway checks (needs `INTENTGATE_MCP2_PYTHON`).
#[test]
fn the_official_mcp_sdk_2_speaks_2026_07_28_through_the_gateway() {
    let Some(python) = std::env::var_os("INTENTGATE_MCP2_PYTHON") else {
        eprintln!("note: INTENTGATE_MCP2_PYTHON unset; skipping the 2026-07-28 SDK test");
        return;
    };
    sdk_exchange(
        &python,
        "mcp2_server.py",
        "mcp2_client.py",
        &["read_invoice"],
        "mcp2 e2e: all checks passed",
    );
}

#[test]
fn get_and_delete_pass_through_with_the_session_after_the_capability_check() {
    let upstream = Receiver::start_with(|req, _| {
        let resumed = req
            .head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("last-event-id:"));
        match (req.method.as_str(), resumed) {
            ("GET", true) => Answer {
                status: 200,
                headers: vec![("Content-Type".into(), "text/event-stream".into())],
                body: "id: 5\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"n\":5}}\n\nid: 6\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"n\":6}}\n\n".into(),
            },
            ("GET", false) => Answer {
                status: 405,
                headers: vec![("Allow".into(), "POST".into())],
                body: String::new(),
            },
            ("DELETE", _) => Answer {
                status: 200,
                headers: vec![],
                body: String::new(),
            },
            _ => Answer {
                status: 500,
                headers: vec![],
                body: String::new(),
            },
        }
    });
    let gw = spawn(
        "serve",
        &[(
            "INTENTGATE_UPSTREAM_URL",
            &format!("http://{}/mcp", upstream.addr),
        )],
    );
    let token = mint(&[], vec![]);
    let send = |method: &str, token: Option<&str>, headers: &[(&str, &str)]| {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        raw(
            gw.addr,
            format!("{method} /v1/mcp HTTP/1.1\r\nHost: x\r\n{auth}{extra}\r\n").as_bytes(),
        )
    };
    // No token: refused before the upstream is asked.
    let r = send("GET", None, &[("Mcp-Session-Id", "sess-9")]);
    assert_eq!(r.status, 403);
    assert_eq!(error_of(&r.json()).0, -32010);
    assert!(upstream.requests().is_empty());

    // Resuming the server-to-client stream: relayed as the upstream sends it.
    let session = [
        ("Mcp-Session-Id", "sess-9"),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    let r = send(
        "GET",
        Some(&token),
        &[session[0], session[1], ("Last-Event-ID", "4")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.head, "content-type"), "text/event-stream");
    let events = intentgate_dataplane::sse::Parser::new(1 << 16)
        .push(&r.body)
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.id.as_deref()).collect::<Vec<_>>(),
        [Some("5"), Some("6")]
    );
    let seen = upstream.requests();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].header("mcp-session-id"), "sess-9");
    assert_eq!(seen[0].header("last-event-id"), "4");
    assert_eq!(seen[0].header("accept"), "text/event-stream");

    // The upstream's own refusal goes back as it is.
    assert_eq!(send("GET", Some(&token), &session).status, 405);
    // Ending the session.
    let r = send("DELETE", Some(&token), &session);
    assert_eq!(r.status, 200);
    let seen = upstream.requests();
    assert_eq!(seen.last().unwrap().method, "DELETE");
    assert_eq!(seen.last().unwrap().header("mcp-session-id"), "sess-9");

    // 2026-07-28 has neither GET nor DELETE.
    let before = upstream.requests().len();
    let r = send(
        "DELETE",
        Some(&token),
        &[("MCP-Protocol-Version", "2026-07-28")],
    );
    assert_eq!(r.status, 405);
    assert_eq!(upstream.requests().len(), before);
    drop(gw);

    // Without an upstream there is nothing to stream from.
    let gw = spawn("serve", &[]);
    let r = raw(
        gw.addr,
        format!("GET /v1/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(r.status, 405);
}

#[test]
fn an_oversized_upstream_event_ends_the_stream_with_a_clean_error() {
    let upstream = Receiver::start_with(|req, _| {
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let huge = "x".repeat(8192);
        Answer {
            status: 200,
            headers: vec![("Content-Type".into(), "text/event-stream".into())],
            body: format!(
                "data: {}\n\n",
                serde_json::json!({"jsonrpc": "2.0", "id": v["id"], "result": {"content": [{"type": "text", "text": huge}]}})
            ),
        }
    });
    let gw = spawn(
        "serve",
        &[
            (
                "INTENTGATE_UPSTREAM_URL",
                &format!("http://{}/mcp", upstream.addr),
            ),
            ("INTENTGATE_MAX_BODY_BYTES", "4096"),
        ],
    );
    let token = mint(&["read_invoice"], vec![]);
    let r = mcp_post(
        gw.addr,
        &token,
        &[],
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_invoice","arguments":{}}}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.head, "content-type"), "text/event-stream");
    let events = intentgate_dataplane::sse::Parser::new(1 << 20)
        .push(&r.body)
        .unwrap();
    assert_eq!(
        events.len(),
        1,
        "only the error event: the oversized one is not relayed"
    );
    let v: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(v["error"]["code"], -32603);
    assert_eq!(v["id"], 3);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exceeds 4096 bytes"),
        "{v}"
    );
}
