//! The built-in demo MCP server of `intentgate dev`: a few tools with canned answers, served
//! over HTTP/1.1 on a loopback port so the gateway's real forwarding path is exercised.

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use serde_json::{Value, json};

use crate::http::{self, BodyFraming};

/// The runbook's example policy: `read_invoice` allowed, `send_email_internal` allowed under a
/// daily quota of 50 per agent and escalated above it, everything else denied.
pub const DEMO_POLICY: &str = include_str!("demo_policy.rego");

/// Tools the demo server offers.
pub const TOOLS: &[&str] = &["read_invoice", "send_email_internal", "delete_customer"];

fn tools_list() -> Value {
    json!({"tools": [
        {"name": "read_invoice", "description": "Read an invoice by id",
         "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}},
        {"name": "send_email_internal", "description": "Send an email to a colleague",
         "inputSchema": {"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}}}},
        {"name": "delete_customer", "description": "Delete a customer record (denied by the demo policy)",
         "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}}}
    ]})
}

/// Answers one JSON-RPC request (pure, for tests).
pub fn answer(request: &Value) -> Option<Value> {
    let id = request.get("id")?.clone();
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let text = |t: String| json!({"content": [{"type": "text", "text": t}], "isError": false});
    let result = match method {
        "initialize" => {
            json!({"protocolVersion": "2025-03-26", "serverInfo": {"name": "intentgate-demo", "version": "1"}, "capabilities": {"tools": {}}})
        }
        "ping" => json!({}),
        "tools/list" => tools_list(),
        "tools/call" => {
            let args = params.get("arguments").cloned().unwrap_or(Value::Null);
            match params.get("name").and_then(Value::as_str) {
                Some("read_invoice") => {
                    let inv = args.get("id").and_then(Value::as_str).unwrap_or("INV-1");
                    text(format!(
                        "Invoice {inv}: ACME Corp, 1,250.00 EUR, due 2026-12-31, status open"
                    ))
                }
                Some("send_email_internal") => {
                    let to = args
                        .get("to")
                        .and_then(Value::as_str)
                        .unwrap_or("team@example.com");
                    text(format!("Email queued for {to}"))
                }
                Some("delete_customer") => text("Customer deleted (demo)".into()),
                other => {
                    return Some(json!({"jsonrpc": "2.0", "id": id,
                        "error": {"code": -32602, "message": format!("unknown tool: {}", other.unwrap_or(""))}}));
                }
            }
        }
        other => {
            return Some(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("method not found: {other}")}}),
            );
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// Starts the demo server on `127.0.0.1:0` on its own thread; returns its address.
pub fn start() -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("demo-upstream".into())
        .spawn(move || {
            let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build();
            let Ok(mut rt) = rt else {
                let _ = tx.send(Err(io::Error::other(
                    "cannot start the demo upstream runtime",
                )));
                return;
            };
            rt.block_on(async move {
                let listener = match TcpListener::bind("127.0.0.1:0") {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(listener.local_addr());
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(serve(stream));
                }
            });
        })?;
    let addr = rx
        .recv()
        .map_err(|_| io::Error::other("demo upstream died during startup"))??;
    Ok((addr, handle))
}

async fn serve(mut stream: TcpStream) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let Ok(Some((head, head_len))) = http::parse_head(&buf, 1 << 20) else {
            if buf.len() > 64 * 1024 {
                return;
            }
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
            continue;
        };
        let n = match head.body {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        if buf.len() < head_len + n {
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
            continue;
        }
        let reply = serde_json::from_slice::<Value>(&buf[head_len..head_len + n])
            .ok()
            .and_then(|r| answer(&r));
        buf.drain(..head_len + n);
        let mut out = Vec::new();
        match reply {
            Some(v) => {
                http::write_response(&mut out, 200, v.to_string().as_bytes(), head.close, &[])
            }
            None => http::write_response(&mut out, 202, b"", head.close, &[]),
        }
        let (res, _) = stream.write_all(out).await;
        if res.is_err() || head.close {
            return;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(8192);
    }
    let len = buf.len();
    let (res, slice) = stream.read(std::mem::take(buf).slice_mut(len..)).await;
    *buf = slice.into_inner();
    matches!(res, Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_mcp_methods() {
        let r = answer(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"INV-9"}}})).unwrap();
        assert!(
            r["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("INV-9")
        );
        let r = answer(&json!({"jsonrpc":"2.0","id":2,"method":"tools/list"})).unwrap();
        assert_eq!(r["result"]["tools"].as_array().unwrap().len(), TOOLS.len());
        let r = answer(&json!({"jsonrpc":"2.0","id":3,"method":"nope"})).unwrap();
        assert_eq!(r["error"]["code"], -32601);
        assert!(answer(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})).is_none());
    }

    #[test]
    fn demo_policy_compiles() {
        intentgate_shared::policy::Policy::compile(
            DEMO_POLICY,
            intentgate_shared::policy::Syntax::V1,
        )
        .unwrap();
    }
}
