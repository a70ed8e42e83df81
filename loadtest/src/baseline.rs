//! The two servers gateway figures are compared with, both on monoio with the gateway's
//! runtime and socket options, one thread per chosen core:
//!
//! - `hello`: the least work an HTTP/1.1 server can do per request (a fixed `{"ok":true}`),
//!   the ceiling a gateway on the same cores can approach;
//! - `upstream`: a fast MCP tool server (JSON-RPC over HTTP/1.1, JSON answers echoing the id),
//!   the upstream of proxy-mode runs and the target of the `direct` baseline.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};
use serde_json::{Value, json};

use crate::cpu::CpuSet;
use crate::options::loopback;

const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";

/// Which baseline server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hello,
    Upstream,
}

/// Command-line options of `hello` and `upstream`.
#[derive(Debug, Clone)]
pub struct Options {
    kind: Kind,
    addr: SocketAddr,
    threads: usize,
    cpus: Option<CpuSet>,
    duration: Duration,
}

impl Options {
    /// Parses `--addr`, `--threads`, `--cpus`, `--duration-s` (the server stops by itself).
    pub fn parse(kind: Kind, args: &[String]) -> Result<Self, String> {
        let mut o = Self {
            kind,
            addr: ([127, 0, 0, 1], 9999).into(),
            threads: 1,
            cpus: None,
            duration: Duration::from_secs(600),
        };
        let mut threads = None;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--addr" => o.addr = loopback(flag, value)?,
                "--threads" => threads = Some(crate::options::positive(flag, value)?),
                "--cpus" => {
                    o.cpus = Some(CpuSet::parse(value).map_err(|e| format!("{flag}: {e}"))?)
                }
                "--duration-s" => {
                    o.duration = Duration::from_secs(
                        value.parse().map_err(|_| "--duration-s: whole seconds")?,
                    );
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        // One thread per chosen core unless told otherwise.
        o.threads = threads.unwrap_or_else(|| o.cpus.as_ref().map_or(1, CpuSet::len));
        Ok(o)
    }
}

/// Serves until the duration ends.
pub fn run(opts: &Options) -> io::Result<()> {
    let deadline = Instant::now() + opts.duration;
    let threads: Vec<_> = (0..opts.threads)
        .map(|i| {
            let (addr, kind) = (opts.addr, opts.kind);
            let cpu = opts.cpus.as_ref().map(|c| c.nth(i));
            std::thread::spawn(move || -> io::Result<()> {
                if let Some(cpu) = cpu {
                    let _ = monoio::utils::bind_to_cpu_set([cpu]);
                }
                let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .enable_timer()
                    .build()?;
                rt.block_on(accept_loop(addr, kind, deadline))
            })
        })
        .collect();
    let name = match opts.kind {
        Kind::Hello => "hello baseline",
        Kind::Upstream => "MCP upstream stub",
    };
    eprintln!("{name} on {} ({} thread(s))", opts.addr, opts.threads);
    for t in threads {
        t.join()
            .map_err(|_| io::Error::other("server thread panicked"))??;
    }
    Ok(())
}

async fn accept_loop(addr: SocketAddr, kind: Kind, deadline: Instant) -> io::Result<()> {
    let opts = ListenerOpts::new()
        .reuse_port(true)
        .reuse_addr(true)
        .backlog(4096);
    let listener = TcpListener::bind_with_config(addr, &opts)?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match monoio::time::timeout(left, listener.accept()).await {
            Ok(Ok((stream, _))) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(serve(stream, kind));
            }
            Ok(Err(_)) => monoio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => return Ok(()),
        }
    }
}

async fn serve(mut stream: TcpStream, kind: Kind) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Answer every complete request buffered (pipelining), then write once.
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let Ok(httparse::Status::Complete(head)) = req.parse(&buf) else {
                break;
            };
            let body = crate::framing::content_length(req.headers);
            if buf.len() < head + body {
                break;
            }
            match kind {
                Kind::Hello => out.extend_from_slice(HELLO),
                Kind::Upstream => answer_mcp(&buf[head..head + body], &mut out),
            }
            buf.drain(..head + body);
        }
        if !out.is_empty() {
            let (res, back) = stream.write_all(std::mem::take(&mut out)).await;
            out = back;
            out.clear();
            if res.is_err() {
                return;
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(buf.capacity().max(8192));
        }
        let len = buf.len();
        let (res, slice) = stream.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
    }
}

/// Appends the HTTP answer of the MCP stub to one JSON-RPC request body: `tools/list` lists
/// the load-test tools, `tools/call` returns a short text result, `initialize` and `ping`
/// answer as a server would, a notification gets 202, anything else -32601.
fn answer_mcp(body: &[u8], out: &mut Vec<u8>) {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(id) = request.get("id") else {
        out.extend_from_slice(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let answer = match request.get("method").and_then(Value::as_str).unwrap_or("") {
        "tools/call" => {
            let tool = request["params"]["name"].as_str().unwrap_or("");
            json!({"jsonrpc": "2.0", "id": id, "result": {
                "content": [{"type": "text", "text": format!("stub {tool}: done")}], "isError": false}})
        }
        "tools/list" => json!({"jsonrpc": "2.0", "id": id, "result": {"tools":
            crate::scenario::TOOLS.iter().map(|t| json!({"name": t, "inputSchema": {"type": "object"}})).collect::<Vec<_>>()}}),
        "initialize" => json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
            "serverInfo": {"name": "intentgate-loadtest-upstream", "version": "1"}}}),
        "ping" => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        other => json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32601, "message": format!("method not found: {other}")}}),
    };
    let body = answer.to_string();
    out.extend_from_slice(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::args;

    #[test]
    fn options_parse_and_refuse_non_loopback() {
        let o = Options::parse(
            Kind::Hello,
            &args(&["--addr", "127.0.0.1:1234", "--threads", "2"]),
        )
        .unwrap();
        assert_eq!((o.addr.port(), o.threads), (1234, 2));
        let o = Options::parse(Kind::Upstream, &args(&["--cpus", "0-2"])).unwrap();
        assert_eq!(o.threads, 3);
        assert!(
            Options::parse(Kind::Hello, &args(&["--addr", "10.0.0.1:80"]))
                .unwrap_err()
                .contains("loopback")
        );
        assert!(Options::parse(Kind::Hello, &args(&["--threads", "0"])).is_err());
        assert!(
            Options::parse(Kind::Hello, &args(&["--bogus", "1"]))
                .unwrap_err()
                .contains("unknown option")
        );
    }

    fn answer(body: &str) -> (String, Value) {
        let mut out = Vec::new();
        answer_mcp(body.as_bytes(), &mut out);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (
            head.to_owned(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    #[test]
    fn the_stub_answers_like_an_mcp_server() {
        let (head, v) = answer(
            r#"{"jsonrpc":"2.0","id":"a7","method":"tools/call","params":{"name":"read_invoice"}}"#,
        );
        assert!(head.starts_with("HTTP/1.1 200"));
        assert_eq!(v["id"], "a7");
        assert_eq!(v["result"]["content"][0]["text"], "stub read_invoice: done");
        let (_, v) = answer(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
        assert_eq!(
            v["result"]["tools"].as_array().unwrap().len(),
            crate::scenario::TOOLS.len()
        );
        let (_, v) = answer(r#"{"jsonrpc":"2.0","id":3,"method":"nope"}"#);
        assert_eq!(v["error"]["code"], -32601);
        let (head, _) = answer(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert!(head.starts_with("HTTP/1.1 202"));
    }
}
