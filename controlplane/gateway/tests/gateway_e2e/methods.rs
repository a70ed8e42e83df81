//! Every method through the decision: prompts, resources and methods unknown to us meet the
//! token's caveats and a method-governing policy; a refused prompt or resource is answered
//! like a missing one while the audit row keeps why; nothing refused reaches the upstream;
//! the four list answers lose what calls would refuse, on every page and in event streams.

use super::*;
use intentgate_shared::token::kind;

/// Governs methods: plumbing and lists allowed; tools but two; resources but the HR share;
/// prompts but `debug_dump`; everything else denied.
const METHODS_POLICY: &str = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "default deny"}
plumbing := {"initialize", "notifications/initialized", "ping", "tools/list", "prompts/list", "resources/list", "resources/templates/list"}
decision := {"allow": true, "reason": "plumbing"} if input.method in plumbing
decision := {"allow": true, "reason": "tool"} if {
	input.method == "tools/call"
	not input.tool in {"purge_audit", "factory_reset"}
}
decision := {"allow": true, "reason": "resource"} if {
	input.method == "resources/read"
	uri := object.get(input.params, "uri", object.get(input.params, "uriTemplate", ""))
	not startswith(uri, "file:///shares/hr/")
}
decision := {"allow": true, "reason": "prompt"} if {
	input.method == "prompts/get"
	input.params.name != "debug_dump"
}
"#;

/// An MCP server with a catalogue: two pages of tools, prompts, resources and templates.
fn catalogue(req: &Recorded) -> Value {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let names =
        |key: &str, v: &[&str]| -> Vec<Value> { v.iter().map(|n| json!({key: n})).collect() };
    let result = match body["method"].as_str().unwrap_or("") {
        "tools/list" if body["params"]["cursor"] == "p2" => {
            json!({"tools": names("name", &["read_ledger", "factory_reset"])})
        }
        "tools/list" => json!({
            "tools": names("name", &["read_invoice", "purge_audit", "hidden_x", "send_email"]),
            "nextCursor": "p2"
        }),
        "prompts/list" => json!({"prompts": names("name", &["summarize", "leak", "debug_dump"])}),
        "resources/list" => {
            json!({"resources": names("uri", &["file:///public/a", "file:///shares/hr/pay", "file:///private/k"])})
        }
        "resources/templates/list" => {
            json!({"resourceTemplates": names("uriTemplate", &["file:///public/{x}", "file:///shares/hr/{x}", "file:///private/{x}"])})
        }
        "resources/read" => json!({"contents": [{"uri": body["params"]["uri"], "text": "hello"}]}),
        _ => json!({}),
    };
    json!({"jsonrpc": "2.0", "id": body["id"], "result": result})
}

fn token() -> String {
    mint(
        &[
            "read_invoice",
            "send_email",
            "read_ledger",
            "purge_audit",
            "factory_reset",
        ],
        vec![
            Caveat::list(kind::PROMPT_DENY, ["leak"]),
            Caveat::list(kind::RESOURCE_DENY, ["file:///private/"]),
        ],
    )
}

fn rpc(addr: SocketAddr, token: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params});
    let r = post(addr, "/v1/mcp", Some(token), &body.to_string());
    assert_eq!(r.status, 200, "{method}");
    r.json()
}

fn listed(v: &Value, member: &str, key: &str) -> Vec<String> {
    v["result"][member]
        .as_array()
        .unwrap_or_else(|| panic!("no {member} in {v}"))
        .iter()
        .map(|e| e[key].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn refused_prompts_and_resources_look_missing_and_never_reach_the_upstream() {
    let db = TempDb::new();
    let upstream = Receiver::start(|req, _| (200, catalogue(req).to_string()));
    let url = format!("http://{}/mcp", upstream.addr);
    let policy = temp_file("methods.rego", METHODS_POLICY);
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_UPSTREAM_URL", &url),
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_AUDIT_PERSIST", "true"),
        ],
    );
    let t = token();
    let not_found =
        |uri: &str| json!({"code": -32002, "message": "Resource not found", "data": {"uri": uri}});
    let refusals = [
        // By the policy, by the token, and a URI no prefix check can place.
        (
            "resources/read",
            json!({"uri": "file:///shares/hr/pay"}),
            not_found("file:///shares/hr/pay"),
        ),
        (
            "resources/read",
            json!({"uri": "file:///private/k"}),
            not_found("file:///private/k"),
        ),
        (
            "resources/read",
            json!({"uri": "file:///public/../private/k"}),
            not_found("file:///public/../private/k"),
        ),
        (
            "resources/subscribe",
            json!({"uri": "file:///private/k"}),
            not_found("file:///private/k"),
        ),
        (
            "prompts/get",
            json!({"name": "debug_dump"}),
            json!({"code": -32602, "message": "Unknown prompt: debug_dump"}),
        ),
        (
            "prompts/get",
            json!({"name": "leak"}),
            json!({"code": -32602, "message": "Unknown prompt: leak"}),
        ),
        (
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "leak"}, "argument": {"name": "a", "value": "b"}}),
            json!({"code": -32602, "message": "Unknown prompt: leak"}),
        ),
        // Not about a prompt or resource: the policy's own refusal.
        (
            "made/up",
            json!({}),
            json!({"code": -32012, "message": "policy check failed", "data": "default deny"}),
        ),
        (
            "sampling/createMessage",
            json!({}),
            json!({"code": -32012, "message": "policy check failed", "data": "default deny"}),
        ),
        // Malformed before any decision.
        (
            "resources/read",
            json!({}),
            json!({"code": -32602, "message": "params.uri is required"}),
        ),
        (
            "prompts/get",
            json!({"name": 7}),
            json!({"code": -32602, "message": "params.name is required"}),
        ),
        (
            "completion/complete",
            json!({"ref": {"type": "ref/tool"}}),
            json!({"code": -32602, "message": "params.ref must be a ref/prompt with a name or a ref/resource with a uri"}),
        ),
        (
            "ping",
            json!({"a": {"k": 1, "K": 2}}),
            json!({"code": -32602, "message": "invalid params", "data": "keys \"K\" and \"k\" in arguments differ only in case"}),
        ),
    ];
    for (method, params, error) in &refusals {
        let v = rpc(gw.addr, &t, method, params.clone());
        assert_eq!(v["error"], *error, "{method} {params}");
        assert_eq!(v["id"], 9);
    }
    assert!(
        upstream.requests().is_empty(),
        "refused requests reached the upstream: {:?}",
        upstream.requests()
    );

    // Allowed ones arrive byte for byte.
    let body =
        r#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///public/a"}}"#;
    let r = post(gw.addr, "/v1/mcp", Some(&t), body);
    assert_eq!(r.json()["result"]["contents"][0]["text"], "hello");
    let v = rpc(gw.addr, &t, "prompts/get", json!({"name": "summarize"}));
    assert!(v["result"].is_object(), "{v}");
    let seen = upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, body.as_bytes());

    // The audit rows say what really refused each one.
    let mut probe = Probe::open(&db.url);
    let rows = || {
        let mut probe = Probe::open(&db.url);
        probe.strings("SELECT tool || '|' || decision || '|' || check_stage || '|' || reason FROM audit_events ORDER BY id")
    };
    assert!(
        wait_until(Duration::from_secs(10), || rows().len() >= 11),
        "{:?}",
        rows()
    );
    let rows = rows();
    for expected in [
        "resources/read|block|policy|default deny",
        r#"resources/read|block|capability|caveat 4 (resource_deny): resource "file:///private/k" is forbidden"#,
        r#"resources/read|block|capability|caveat 4 (resource_deny): resource "file:///public/../private/k" has dot segments or encoded separators; prefix caveats refuse it"#,
        "prompts/get|block|policy|default deny",
        r#"prompts/get|block|capability|caveat 3 (prompt_deny): prompt "leak" is forbidden"#,
        "made/up|block|policy|default deny",
        "resources/read|allow||resource",
        "prompts/get|allow||prompt",
    ] {
        assert!(
            rows.iter().any(|r| r == expected),
            "no row {expected:?} in {rows:#?}"
        );
    }
    assert!(probe.scalar("SELECT count(*) FROM audit_events WHERE decision = 'block'") >= 9);
}

#[test]
fn lists_lose_what_calls_would_refuse_on_every_page_and_in_streams() {
    let upstream = Receiver::start_with(|req, _| {
        let v = catalogue(req);
        let stream = String::from_utf8_lossy(&req.body).contains("\"prompts/list\"");
        if stream {
            // One list as an event stream, after a notification.
            Answer {
                status: 200,
                headers: vec![("Content-Type".into(), "text/event-stream".into())],
                body: format!(
                    "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{}}}}\n\nevent: message\ndata: {v}\n\n"
                ),
            }
        } else {
            Answer {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: v.to_string(),
            }
        }
    });
    let url = format!("http://{}/mcp", upstream.addr);
    let policy = temp_file("methods-lists.rego", METHODS_POLICY);
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_UPSTREAM_URL", &url),
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
        ],
    );
    let t = token();
    // Page one: purge_audit by the policy, hidden_x by the token; the cursor passes.
    let p1 = rpc(gw.addr, &t, "tools/list", json!({}));
    assert_eq!(listed(&p1, "tools", "name"), ["read_invoice", "send_email"]);
    assert_eq!(p1["result"]["nextCursor"], "p2");
    let p2 = rpc(gw.addr, &t, "tools/list", json!({"cursor": "p2"}));
    assert_eq!(listed(&p2, "tools", "name"), ["read_ledger"]);
    let r = rpc(gw.addr, &t, "resources/list", json!({}));
    assert_eq!(listed(&r, "resources", "uri"), ["file:///public/a"]);
    let r = rpc(gw.addr, &t, "resources/templates/list", json!({}));
    assert_eq!(
        listed(&r, "resourceTemplates", "uriTemplate"),
        ["file:///public/{x}"]
    );
    // The event stream: the notification passes, the list is narrowed.
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "prompts/list"}).to_string();
    let req = format!(
        "POST /v1/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let reply = raw(gw.addr, req.as_bytes());
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(text.contains("notifications/message"), "{text}");
    let list = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v.get("result").is_some())
        .unwrap_or_else(|| panic!("no list in {text}"));
    assert_eq!(listed(&list, "prompts", "name"), ["summarize"]);
}

#[test]
fn a_tools_only_policy_keeps_the_go_behaviour_for_other_methods() {
    let upstream = Receiver::start(|req, _| (200, catalogue(req).to_string()));
    let url = format!("http://{}/mcp", upstream.addr);
    let policy = temp_file("methods-legacy.rego", READ_ONLY_POLICY);
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_UPSTREAM_URL", &url),
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
        ],
    );
    let t = token();
    // The policy never reads input.method: resources pass on the capability check...
    let v = rpc(
        gw.addr,
        &t,
        "resources/read",
        json!({"uri": "file:///shares/hr/pay"}),
    );
    assert_eq!(v["result"]["contents"][0]["text"], "hello", "{v}");
    // ...but the token's caveats still apply.
    let v = rpc(
        gw.addr,
        &t,
        "resources/read",
        json!({"uri": "file:///private/k"}),
    );
    assert_eq!(v["error"]["code"], -32002, "{v}");
    // Lists are narrowed by the token only (the policy would hide send_email for lack of
    // a rule, though it denies calls of it too: it was not written for lists).
    let p1 = rpc(gw.addr, &t, "tools/list", json!({}));
    assert_eq!(
        listed(&p1, "tools", "name"),
        ["read_invoice", "purge_audit", "send_email"]
    );
    assert_eq!(upstream.requests().len(), 2);
}
