//! MCP Streamable HTTP rules the gateway enforces on its own surface (issue #6, in progress):
//! `Origin` validation against DNS rebinding.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking; that is their job"
)]

pub(crate) use std::net::SocketAddr;

#[path = "../support/gateway.rs"]
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
    // A policy that allows everything and never reads input.method: the token alone narrows
    // the list (the policy's list phase is gateway_e2e::methods' subject).
    let policy = temp_file("tools-list-allow.rego", ALLOW_ALL_POLICY);
    let gw = spawn(
        "serve",
        &[
            (
                "INTENTGATE_UPSTREAM_URL",
                &format!("http://{}/mcp", upstream.addr),
            ),
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
        ],
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

mod sessions;
mod streams;
mod surface;
