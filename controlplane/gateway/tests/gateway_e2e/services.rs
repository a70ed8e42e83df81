//! The services around the checks: the intent extractor, slow, garbage and TLS upstreams, `Expect: 100-continue`, and the admin API relayed through the data port.

use super::*;

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
pub(super) fn fake_upstream(delay: Duration, reply: &'static str) -> String {
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
