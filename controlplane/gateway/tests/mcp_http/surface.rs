//! OAuth resource mode, progress while a tool runs, the official MCP SDKs, GET and DELETE, oversized events.

use super::streams::mcp_post;
use super::*;

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
    let Some(python) = python_from("INTENTGATE_SDK_PYTHON") else {
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
    let Some(python) = python_from("INTENTGATE_MCP2_PYTHON") else {
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

/// The official MCP Python SDK 1.x: during a tool call the server asks the client for a
/// sampled message, an elicitation (both on the call's stream) and its roots (on the GET
/// stream); the client's POSTed responses go through the gateway on its sealed session,
/// and the tool's result shows each arrived.
#[test]
fn the_official_mcp_sdk_answers_sampling_elicitation_and_roots_through_the_gateway() {
    let Some(python) = python_from("INTENTGATE_SDK_PYTHON") else {
        return;
    };
    sdk_exchange(
        &python,
        "mcp_server.py",
        "mcp_client_requests.py",
        &["ask_client"],
        "mcp requests e2e: all checks passed",
    );
}

/// The same with the SDK 2.x, on a legacy session (POSTed responses) and on 2026-07-28
/// (`input_required` rounds, each retried call checked by the gateway).
#[test]
fn the_official_mcp_sdk_2_answers_server_requests_in_both_eras_through_the_gateway() {
    let Some(python) = python_from("INTENTGATE_MCP2_PYTHON") else {
        return;
    };
    sdk_exchange(
        &python,
        "mcp2_server.py",
        "mcp2_client_requests.py",
        &["ask_client"],
        "mcp2 requests e2e: all checks passed",
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
            ("POST", _) => Answer {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "application/json".into()),
                    ("Mcp-Session-Id".into(), "sess-9".into()),
                ],
                body: r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"up","version":"1"}}}"#.into(),
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
    let r = send("GET", None, &[]);
    assert_eq!(r.status, 403);
    assert_eq!(error_of(&r.json()).0, -32010);
    assert!(upstream.requests().is_empty());
    // The session the client sees is the gateway's sealed id for the upstream's.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = mcp_post(
        gw.addr,
        &token,
        &[("MCP-Protocol-Version", "2025-06-18")],
        init,
    );
    let sealed = header(&r.head, "mcp-session-id").to_owned();
    // Not the caller's (no token) or the upstream's raw id: a plain 404, nothing upstream.
    for (token, id) in [(None, sealed.as_str()), (Some(token.as_str()), "sess-9")] {
        let r = send("GET", token, &[("Mcp-Session-Id", id)]);
        assert_eq!(r.status, 404, "{id}");
    }
    assert_eq!(upstream.requests().len(), 1);

    // Resuming the server-to-client stream: relayed as the upstream sends it.
    let session = [
        ("Mcp-Session-Id", sealed.as_str()),
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
    assert_eq!(seen[1].method, "GET");
    assert_eq!(seen[1].header("mcp-session-id"), "sess-9");
    assert_eq!(seen[1].header("last-event-id"), "4");
    assert_eq!(seen[1].header("accept"), "text/event-stream");

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
