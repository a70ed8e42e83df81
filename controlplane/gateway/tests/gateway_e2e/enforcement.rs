//! Forwarded bytes are the authorized bytes: a body another JSON parser could read
//! differently (names equal but for case, escaped or non-ASCII protocol names), a compressed
//! body or one declared as not JSON is refused before any check, and none of it reaches the
//! upstream; what is allowed arrives there byte for byte.

use super::*;

/// A POST to `/v1/mcp` with the caller's own headers (no default `Content-Type`).
fn post_raw(addr: SocketAddr, token: &str, headers: &str, body: &str) -> Reply {
    let req = format!(
        "POST /v1/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(addr, req.as_bytes())
}

const JSON: &str = "Content-Type: application/json\r\n";

#[test]
fn refused_bodies_never_reach_the_upstream_and_allowed_ones_arrive_byte_for_byte() {
    let upstream = Receiver::start(|_, _| {
        (
            200,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#.into(),
        )
    });
    let url = format!("http://{}/mcp", upstream.addr);
    let policy = temp_file("enforcement-allow.rego", ALLOW_ALL_POLICY);
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_UPSTREAM_URL", &url),
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
        ],
    );
    let token = mint(&["read_invoice"], vec![]);
    let rpc_refusals = [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"read_invoice"}}"#,
            -32600,
            r#"keys "method" and "Method" differ only in case"#,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","Name":"delete_customer"}}"#,
            -32602,
            r#"keys "name" and "Name" differ only in case"#,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///ok","URI":"file:///etc/shadow"}}"#,
            -32602,
            r#"keys "uri" and "URI" differ only in case"#,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"read_invoice"}}"#,
            -32602,
            r#"key "name" is written with escapes: spell the names of the envelope and params literally"#,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"path":"/ok","PATH":"/etc"}}}"#,
            -32602,
            r#"keys "PATH" and "path" in arguments differ only in case"#,
        ),
    ];
    for (body, code, reason) in rpc_refusals {
        let r = post_raw(gw.addr, &token, JSON, body);
        assert_eq!(r.status, 200, "{body}");
        let (got_code, got_reason) = error_of(&r.json());
        assert_eq!((got_code, got_reason.as_str()), (code, reason), "{body}");
    }
    let allowed = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"INV-7"}}}"#;
    let http_refusals = [
        (
            "Content-Type: application/json\r\nContent-Encoding: gzip\r\n",
            r#"{"error":"compressed request bodies are refused: send the JSON without Content-Encoding"}"#,
        ),
        (
            "Content-Type: text/plain\r\n",
            r#"{"error":"Content-Type must be application/json"}"#,
        ),
        (
            "Content-Type: application/x-www-form-urlencoded\r\n",
            r#"{"error":"Content-Type must be application/json"}"#,
        ),
        (
            "Content-Type: application/json\r\nContent-Type: text/plain\r\n",
            r#"{"error":"repeated Content-Type header"}"#,
        ),
    ];
    for (headers, answer) in http_refusals {
        let r = post_raw(gw.addr, &token, headers, allowed);
        let expected = if answer.contains("repeated") {
            400
        } else {
            415
        };
        assert_eq!(r.status, expected, "{headers}");
        assert_eq!(String::from_utf8_lossy(&r.body), answer, "{headers}");
    }
    assert!(
        upstream.requests().is_empty(),
        "refused bodies reached the upstream: {:?}",
        upstream.requests()
    );

    // Allowed: JSON with a charset parameter, and `Content-Encoding: identity`.
    let r = post_raw(
        gw.addr,
        &token,
        "Content-Type: Application/JSON; charset=utf-8\r\nContent-Encoding: identity\r\n",
        allowed,
    );
    assert_eq!(r.status, 200);
    assert!(r.json()["result"].is_object(), "{}", r.json());
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, allowed.as_bytes(), "forwarded bytes differ");
    assert!(
        !seen[0].head.to_ascii_lowercase().contains("authorization"),
        "the agent's token reached the upstream"
    );
}
