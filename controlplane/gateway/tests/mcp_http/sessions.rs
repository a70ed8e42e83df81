//! Sessions belong to their caller (sealed `Mcp-Session-Id`s, valid on every replica with
//! the master key) and client responses answer only requests the upstream really sent.

use std::time::Duration;

use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::{Caveat, MintRequest, Token};
use serde_json::{Value, json};

use super::streams::mcp_post;
use super::*;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
const V: (&str, &str) = ("MCP-Protocol-Version", "2025-06-18");

/// A root token of `tenant`.
fn mint_for(tenant: &str) -> String {
    let now = Timestamp::now().unix_seconds();
    let req = MintRequest {
        subject: "agent-1".into(),
        tenant: tenant.into(),
        caveats: vec![Caveat::agent_lock("agent-1"), Caveat::exp(now + 600)],
        ..MintRequest::default()
    };
    Token::mint(&key(), req, now).unwrap().encode()
}

/// A POST to `/v1/mcp` with an optional token and extra headers.
fn send(addr: SocketAddr, token: Option<&str>, headers: &[(&str, &str)], body: &str) -> Reply {
    match token {
        Some(t) => mcp_post(addr, t, headers, body),
        None => {
            let extra: String = headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}\r\n"))
                .collect();
            let req = format!(
                "POST /v1/mcp HTTP/1.1\r\nHost: x\r\nAccept: application/json, text/event-stream\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            raw(addr, req.as_bytes())
        }
    }
}

/// A GET or DELETE of `/v1/mcp` on `session`.
fn stream_request(addr: SocketAddr, method: &str, token: Option<&str>, session: &str) -> Reply {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} /v1/mcp HTTP/1.1\r\nHost: x\r\n{auth}Accept: text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\nMcp-Session-Id: {session}\r\n\r\n"
    );
    raw(addr, req.as_bytes())
}

/// A stateful upstream: each `initialize` opens `sess-<n>`; the tool `ask` asks the client
/// for a sampled message and an elicitation on its event stream before answering; the GET
/// stream asks for the roots; responses and other notifications get 202.
fn asking_upstream() -> Receiver {
    Receiver::start_with(|req, nth| {
        let sse = |body: String| Answer {
            status: 200,
            headers: vec![("Content-Type".into(), "text/event-stream".into())],
            body,
        };
        if req.method == "GET" {
            let ask = json!({"jsonrpc": "2.0", "id": 7, "method": "roots/list"});
            let mut a = sse(format!("data: {ask}\n\n"));
            let session = req.header("mcp-session-id").to_owned();
            a.headers.push(("Mcp-Session-Id".into(), session));
            return a;
        }
        if req.method == "DELETE" {
            return Answer {
                status: 200,
                headers: vec![],
                body: String::new(),
            };
        }
        let v: Value = serde_json::from_slice(&req.body).unwrap();
        let id = v["id"].clone();
        match v["method"].as_str() {
            Some("initialize") => Answer {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "application/json".into()),
                    ("Mcp-Session-Id".into(), format!("sess-{nth}")),
                ],
                body: json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "up", "version": "1"}}}).to_string(),
            },
            Some("tools/list") => {
                // As SDK servers do: the session id on every answer.
                let mut headers = vec![("Content-Type".into(), "application/json".into())];
                let session = req.head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("mcp-session-id").then(|| v.trim().to_owned())
                });
                headers.extend(session.map(|s| ("Mcp-Session-Id".to_owned(), s)));
                let body = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": []}});
                Answer { status: 200, headers, body: body.to_string() }
            }
            Some("tools/call") => {
                let sample = json!({"jsonrpc": "2.0", "id": 0, "method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}});
                let elicit = json!({"jsonrpc": "2.0", "id": "e-1", "method": "elicitation/create", "params": {"message": "ok?", "requestedSchema": {"type": "object", "properties": {}}}});
                let done = json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "asked"}]}});
                sse(format!("data: {sample}\n\ndata: {elicit}\n\ndata: {done}\n\n"))
            }
            _ => Answer { status: 202, headers: vec![], body: String::new() },
        }
    })
}

fn gateway_for(upstream: &Receiver, db: &TempDb, extra: &[(&str, &str)]) -> Gateway {
    let policy = temp_file("allow-all.rego", ALLOW_ALL_POLICY);
    let url = format!("http://{}/mcp", upstream.addr);
    let mut env = vec![
        (
            "INTENTGATE_POLICY_FILE",
            policy.to_str().unwrap().to_owned(),
        ),
        ("INTENTGATE_UPSTREAM_URL", url),
        ("INTENTGATE_POSTGRES_URL", db.url.clone()),
        ("INTENTGATE_AUDIT_PERSIST", "true".into()),
        ("INTENTGATE_ADMIN_TOKEN", "mcp-admin".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn("serve", &env)
}

/// Opens a session with `token` (or none): the sealed id the client got.
fn open_session(addr: SocketAddr, token: Option<&str>) -> String {
    let r = send(addr, token, &[V], INIT);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    header(&r.head, "mcp-session-id").to_owned()
}

/// The audit rows of `query` once there are at least `n`.
fn audit_rows(addr: SocketAddr, query: &str, n: usize) -> Vec<Value> {
    let mut rows = Vec::new();
    let found = wait_until(Duration::from_secs(10), || {
        let r = admin(
            addr,
            "GET",
            &format!("/v1/admin/audit?{query}&limit=200"),
            "mcp-admin",
            "",
        );
        rows = r.json()["events"].as_array().cloned().unwrap_or_default();
        rows.len() >= n
    });
    assert!(found, "{query}: {} rows, wanted {n}: {rows:?}", rows.len());
    rows
}

fn assert_unknown_session(r: &Reply, id: Value, what: &str) {
    assert_eq!(
        r.status,
        404,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["error"]["code"], -32600, "{what}: {v}");
    assert_eq!(v["error"]["message"], "session not found", "{what}: {v}");
    assert_eq!(v["id"], id, "{what}");
}

#[test]
fn a_session_is_used_only_by_the_root_token_that_opened_it() {
    let db = TempDb::new();
    let upstream = asking_upstream();
    // Tokens optional, so the token-less cases reach the session check too.
    let gw = gateway_for(
        &upstream,
        &db,
        &[("INTENTGATE_REQUIRE_CAPABILITY", "false")],
    );
    let owner = mint_for("acme");
    let sealed = open_session(gw.addr, Some(&owner));
    assert!(
        !sealed.contains("sess-"),
        "the upstream's id is never shown: {sealed}"
    );
    assert!(sealed.len() > 40 && sealed.bytes().all(|b| (0x21..=0x7e).contains(&b)));

    // The owner, and a token attenuated from it (same root), use it; the upstream gets its
    // own id.
    fn on(s: &str) -> [(&str, &str); 2] {
        [V, ("Mcp-Session-Id", s)]
    }
    let r = send(gw.addr, Some(&owner), &on(&sealed), LIST);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        header(&r.head, "mcp-session-id"),
        sealed,
        "the same id comes back"
    );
    let child = Token::decode(&owner)
        .unwrap()
        .attenuate(Caveat::tool_allow(["read_invoice"]))
        .unwrap()
        .encode();
    assert_eq!(send(gw.addr, Some(&child), &on(&sealed), LIST).status, 200);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 3);
    assert!(
        seen[1..]
            .iter()
            .all(|r| r.header("mcp-session-id") == "sess-0")
    );

    // Everyone else: 404, whatever the reason, and nothing reaches the upstream.
    let anonymous = open_session(gw.addr, None);
    let mut tampered = sealed.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases: Vec<(Option<String>, String, &str)> = vec![
        (
            Some(mint_for("globex")),
            sealed.clone(),
            "session belongs to another tenant",
        ),
        (
            Some(mint_for("acme")),
            sealed.clone(),
            "session belongs to another root capability token",
        ),
        (
            None,
            sealed.clone(),
            "session was opened with a capability token; this request carries none",
        ),
        (
            Some(owner.clone()),
            "sess-0".into(),
            "Mcp-Session-Id is not a session id this gateway issued",
        ),
        (
            Some(owner.clone()),
            tampered,
            "Mcp-Session-Id does not verify (tampered, or sealed under another master key)",
        ),
        (
            Some(owner.clone()),
            anonymous.clone(),
            "session was opened without a capability token; this request carries one",
        ),
    ];
    let before = upstream.requests().len();
    for (token, session, _) in &cases {
        let r = send(gw.addr, token.as_deref(), &on(session), LIST);
        assert_unknown_session(&r, json!(2), session);
    }
    // GET and DELETE: a plain 404.
    let other = mint_for("globex");
    for method in ["GET", "DELETE"] {
        let r = stream_request(gw.addr, method, Some(&other), &sealed);
        assert_eq!(r.status, 404, "{method}");
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("session not found")
        );
    }
    // The token-less session serves its token-less owner.
    assert_eq!(send(gw.addr, None, &on(&anonymous), LIST).status, 200);
    let after = upstream.requests().len();
    assert_eq!(
        after,
        before + 1,
        "only the last request reached the upstream"
    );

    // Revoked: its sessions end with it.
    let jti = Token::decode(&owner).unwrap().claims.jti;
    let r = admin(
        gw.addr,
        "POST",
        "/v1/admin/revoke",
        "mcp-admin",
        &json!({"jti": jti}).to_string(),
    );
    assert_eq!(r.status, 200);
    assert!(wait_until(Duration::from_secs(5), || {
        send(gw.addr, Some(&owner), &on(&sealed), LIST).status == 404
    }));
    let settled = upstream.requests().len();
    let r = send(gw.addr, Some(&owner), &on(&sealed), LIST);
    assert_unknown_session(&r, json!(2), "revoked");
    assert_eq!(upstream.requests().len(), settled);

    // Every refusal is audited, saying why and never showing an id.
    let rows = audit_rows(gw.addr, "check=capability&decision=block", cases.len() + 3);
    let reasons: Vec<&str> = rows.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    for (_, _, why) in &cases {
        assert!(reasons.contains(why), "{why}: {reasons:?}");
    }
    assert!(
        reasons.contains(&"session's capability token is revoked"),
        "{reasons:?}"
    );
    for row in &rows {
        let text = row.to_string();
        assert!(
            !text.contains(&sealed) && !text.contains("sess-0"),
            "{text}"
        );
    }
}

#[test]
fn a_replica_sharing_the_master_key_accepts_the_session_and_so_does_one_after_rotation() {
    let db = TempDb::new();
    let upstream = asking_upstream();
    let first = gateway_for(&upstream, &db, &[]);
    let second = gateway_for(&upstream, &db, &[]);
    let rotated_key = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";
    let rotated = gateway_for(
        &upstream,
        &db,
        &[
            ("INTENTGATE_MASTER_KEY", rotated_key),
            ("INTENTGATE_MASTER_KEY_PREVIOUS", KEY),
        ],
    );
    let token = mint_for("acme");
    let sealed = open_session(first.addr, Some(&token));
    let on = [V, ("Mcp-Session-Id", sealed.as_str())];
    for gw in [&second, &rotated] {
        let r = send(gw.addr, Some(&token), &on, LIST);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            upstream.requests().last().unwrap().header("mcp-session-id"),
            "sess-0"
        );
    }
    // An id sealed under the new key does not open where only the old key is held.
    let newer = open_session(rotated.addr, Some(&token));
    let before = upstream.requests().len();
    let r = send(
        first.addr,
        Some(&token),
        &[V, ("Mcp-Session-Id", newer.as_str())],
        LIST,
    );
    assert_unknown_session(&r, json!(2), "sealed under a key the first replica lacks");
    assert_eq!(upstream.requests().len(), before);
    let r = send(
        rotated.addr,
        Some(&token),
        &[V, ("Mcp-Session-Id", newer.as_str())],
        LIST,
    );
    assert_eq!(r.status, 200);
}

/// A client's JSON-RPC response body.
fn response(id: Value, ok: bool) -> String {
    if ok {
        json!({"jsonrpc": "2.0", "id": id, "result": {"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m"}}).to_string()
    } else {
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -1, "message": "user declined"}})
            .to_string()
    }
}

fn assert_refused_response(r: &Reply, status: u16, contains: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(v["id"].is_null(), "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(contains),
        "{v}"
    );
}

#[test]
fn client_responses_answer_only_requests_the_upstream_sent_on_that_session_once() {
    let db = TempDb::new();
    let upstream = asking_upstream();
    let gw = gateway_for(&upstream, &db, &[]);
    let token = mint_for("acme");
    let first = open_session(gw.addr, Some(&token));
    let second = open_session(gw.addr, Some(&token));
    let call =
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ask","arguments":{}}}"#;
    let r = send(
        gw.addr,
        Some(&token),
        &[V, ("Mcp-Session-Id", first.as_str())],
        call,
    );
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("sampling/createMessage"));
    let before = upstream.requests().len();

    let post = |session: Option<&str>, tok: &str, body: &str| {
        let mut headers = vec![V];
        if let Some(s) = session {
            headers.push(("Mcp-Session-Id", s));
        }
        send(gw.addr, Some(tok), &headers, body)
    };
    // Refused, and nothing reaches the upstream: another session of the same token, an id
    // never asked, no session, another tenant's token, a 2026-07-28 client.
    let r = post(Some(&second), &token, &response(json!(0), true));
    assert_refused_response(&r, 400, "answers no pending request");
    let r = post(Some(&first), &token, &response(json!(99), true));
    assert_refused_response(&r, 400, "response id 99 answers no pending request");
    let r = post(Some(&first), &token, &response(json!("0"), true));
    assert_refused_response(&r, 400, "answers no pending request");
    let r = post(None, &token, &response(json!(0), true));
    assert_refused_response(&r, 400, "must carry the Mcp-Session-Id");
    let r = post(Some(&first), &mint_for("globex"), &response(json!(0), true));
    assert_unknown_session(&r, Value::Null, "another tenant's response");
    let r = post(Some(&first), "not-a-token", &response(json!(0), true));
    assert_eq!(
        r.status, 403,
        "a token that does not verify: the capability check refuses"
    );
    assert_eq!(r.json()["error"]["code"], -32010);
    let modern = send(
        gw.addr,
        Some(&token),
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Session-Id", first.as_str()),
        ],
        &response(json!(0), true),
    );
    assert_refused_response(&modern, 400, "never POSTs a response");
    assert_eq!(
        upstream.requests().len(),
        before,
        "no refused response reached the upstream"
    );

    // The real answers: relayed as sent with the upstream's own session, 202, once.
    let answer = response(json!(0), true);
    let r = post(Some(&first), &token, &answer);
    assert_eq!(
        (r.status, r.body.len()),
        (202, 0),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let relayed = upstream.requests().last().unwrap().clone();
    assert_eq!(relayed.body, answer.as_bytes());
    assert_eq!(relayed.header("mcp-session-id"), "sess-0");
    let r = post(Some(&first), &token, &answer);
    assert_refused_response(&r, 400, "already answered");
    assert_eq!(
        post(Some(&first), &token, &response(json!("e-1"), false)).status,
        202
    );
    // The GET stream's request is answered the same way.
    let r = stream_request(gw.addr, "GET", Some(&token), &first);
    assert_eq!(r.status, 200);
    assert_eq!(header(&r.head, "mcp-session-id"), first);
    assert_eq!(
        post(Some(&first), &token, &response(json!(7), true)).status,
        202
    );
    assert_eq!(
        upstream.requests().len(),
        before + 4,
        "three answers and the GET"
    );

    // Audited: the relayed answers under the method they answer, the refusals as such.
    for method in ["sampling/createMessage", "elicitation/create", "roots/list"] {
        let rows = audit_rows(gw.addr, &format!("tool={method}"), 1);
        assert_eq!(rows[0]["decision"], "allow", "{method}");
        assert!(
            rows[0]["reason"].as_str().unwrap().contains("relayed"),
            "{method}"
        );
    }
    let refused = audit_rows(gw.addr, "tool=response&decision=block", 5);
    assert!(refused.iter().all(|r| r["check"] == "capability"));
}
