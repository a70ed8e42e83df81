//! What the end-to-end tests share: spawning the real binary, raw HTTP/1.1 over TCP,
//! token minting with the test key, and throwaway databases. Included by `#[path]` so each
//! test crate compiles only this file, not the others' tests.

#![expect(dead_code, reason = "each test crate uses a different part of it")]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use intentgate_shared::key_ring::MasterKey;
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::{Caveat, MintRequest, Token};
use serde_json::{Value, json};

/// Allows `read_invoice`, denies every other tool.
pub const READ_ONLY_POLICY: &str = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "read-only policy"}
decision := {"allow": true, "reason": "read"} if input.tool == "read_invoice"
"#;

/// Allows every call (for tests about transport, not policy).
pub const ALLOW_ALL_POLICY: &str = "package intentgate.policy\nimport rego.v1\ndefault decision := {\"allow\": true, \"reason\": \"test\"}\n";

pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn(mode: &str, env: &[(&str, &str)]) -> Gateway {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_intentgate"));
    cmd.arg(mode)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INTENTGATE_ADDR", "127.0.0.1:0")
        .env("INTENTGATE_ADMIN_ADDR", "127.0.0.1:0")
        .env("INTENTGATE_MASTER_KEY", KEY)
        .env("INTENTGATE_DATAPLANE_THREADS", "2")
        .env("INTENTGATE_AUDIT_TARGET", "none")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // "data plane listening addr=…" is logged on stdout by `serve`, on stderr by `dev`; the
    // other stream is drained so the child never blocks on a full pipe.
    let (logs, other): (Box<dyn std::io::Read + Send>, Box<dyn std::io::Read + Send>) =
        if mode == "serve" {
            (
                Box::new(child.stdout.take().unwrap()),
                Box::new(child.stderr.take().unwrap()),
            )
        } else {
            (
                Box::new(child.stderr.take().unwrap()),
                Box::new(child.stdout.take().unwrap()),
            )
        };
    std::thread::spawn(move || for _ in BufReader::new(other).lines() {});
    let mut lines = BufReader::new(logs).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        assert!(Instant::now() < deadline, "gateway did not start");
        let Some(Ok(line)) = lines.next() else {
            panic!("gateway exited before listening: {:?}", child.wait())
        };
        if let Some(i) = line
            .find("127.0.0.1:")
            .filter(|_| line.contains("data plane listening"))
        {
            let rest: String = line[i..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            break rest.parse().unwrap();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Gateway { child, addr }
}

pub fn key() -> MasterKey {
    MasterKey::parse(KEY).unwrap()
}

pub fn mint(tools: &[&str], extra: Vec<Caveat>) -> String {
    let now = Timestamp::now().unix_seconds();
    let mut caveats = vec![Caveat::agent_lock("agent-1"), Caveat::exp(now + 600)];
    if !tools.is_empty() {
        caveats.push(Caveat::tool_allow(tools.iter().copied()));
    }
    caveats.extend(extra);
    let req = MintRequest {
        subject: "agent-1".into(),
        tenant: "acme".into(),
        caveats,
        ..MintRequest::default()
    };
    Token::mint(&key(), req, now).unwrap().encode()
}

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one Content-Length framed message (request or response) from `s`: its head and
/// body. `None` when the peer closed before a whole message arrived.
pub fn read_message(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            let chunked = head
                .lines()
                .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
            if chunked {
                if let Some((body, used)) = dechunk(&pending[end + 4..]) {
                    pending.drain(..end + 4 + used);
                    return Some((head, body));
                }
            } else if pending.len() >= end + 4 + len {
                let body = pending[end + 4..end + 4 + len].to_vec();
                pending.drain(..end + 4 + len);
                return Some((head, body));
            }
        }
        let n = s.read(&mut tmp).unwrap_or(0);
        if n == 0 {
            return None;
        }
        pending.extend_from_slice(&tmp[..n]);
    }
}

/// A complete chunked body at the start of `b`: the data and the bytes it used.
pub fn dechunk(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let eol = b[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let size = usize::from_str_radix(std::str::from_utf8(&b[at..eol]).ok()?.trim(), 16).ok()?;
        at = eol + 2;
        if size == 0 {
            return (b.len() >= at + 2).then(|| (body, at + 2));
        }
        if b.len() < at + size + 2 {
            return None;
        }
        body.extend_from_slice(&b[at..at + size]);
        at += size + 2;
    }
}

/// Reads one response from `s` (Content-Length framed or chunked).
pub fn read_reply(s: &mut TcpStream, pending: &mut Vec<u8>) -> Reply {
    let Some((head, body)) = read_message(s, pending) else {
        panic!(
            "connection closed before a full response; got {:?}",
            String::from_utf8_lossy(pending)
        )
    };
    let status = head[9..12].parse().unwrap();
    Reply { status, head, body }
}

pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(bytes).unwrap();
    read_reply(&mut s, &mut Vec::new())
}

pub fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: &str) -> Reply {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(addr, req.as_bytes())
}

pub fn call(addr: SocketAddr, token: Option<&str>, tool: &str, args: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}});
    let r = post(addr, "/v1/mcp", token, &body.to_string());
    assert_eq!(r.status, 200, "JSON-RPC answers are HTTP 200");
    r.json()
}

pub fn error_of(v: &Value) -> (i64, String) {
    (
        v["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no error in {v}")),
        v["error"]["data"].as_str().unwrap_or("").to_owned(),
    )
}

pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn admin(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> Reply {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(addr, req.as_bytes())
}

/// A throwaway database on the test server; dropped when the guard goes.
pub struct TempDb {
    pub admin_url: String,
    pub name: String,
    pub url: String,
}

impl TempDb {
    pub fn new() -> Self {
        let admin_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("ig_e2e_{}_{}", std::process::id(), closed_port());
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        Self::exec(&admin_url, &format!("CREATE DATABASE \"{name}\""));
        Self {
            admin_url,
            name,
            url,
        }
    }

    pub fn exec(url: &str, sql: &str) {
        let sql: sqlx::AssertSqlSafe<String> = sqlx::AssertSqlSafe(sql.to_owned());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection as _;
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        });
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        Self::exec(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// One connection to a test database, for counting rows.
pub struct Probe {
    rt: tokio::runtime::Runtime,
    conn: sqlx::PgConnection,
}

impl Probe {
    pub fn open(url: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conn = rt.block_on(async {
            use sqlx::Connection as _;
            sqlx::PgConnection::connect(url).await.unwrap()
        });
        Self { rt, conn }
    }

    pub fn scalar(&mut self, sql: &'static str) -> i64 {
        let conn = &mut self.conn;
        self.rt
            .block_on(sqlx::query_scalar::<_, i64>(sql).fetch_one(conn))
            .unwrap()
    }

    /// Every row of a one-text-column query.
    pub fn strings(&mut self, sql: &'static str) -> Vec<String> {
        let conn = &mut self.conn;
        self.rt
            .block_on(sqlx::query_scalar::<_, String>(sql).fetch_all(conn))
            .unwrap()
    }
}

/// Writes `text` to a fresh file `name` in a directory of its own under the system temp dir.
pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "intentgate-test-{}-{}",
        std::process::id(),
        closed_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Sends SIGTERM to `child` (the gateway's graceful stop).
pub fn sigterm(child: &Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// SIGTERM, then the exit status once the process stopped, which it must within `within`.
pub fn terminate(mut gw: Gateway, within: Duration) -> std::process::ExitStatus {
    sigterm(&gw.child);
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = gw.child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One request a [`Receiver`] took, and the status it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub head: String,
    pub body: Vec<u8>,
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        header(&self.head, name)
    }
}

/// An HTTP receiver on loopback that answers each request as `answer(request, nth)`
/// decides (`nth` counts the requests before it) and records it.
pub struct Receiver {
    pub addr: SocketAddr,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
}

/// A [`Receiver`]'s answer with headers of its own (`Content-Type` among them).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Receiver {
    /// Answers JSON bodies: `answer` gives the status and body.
    pub fn start(
        answer: impl Fn(&Recorded, usize) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(move |req, n| {
            let (status, body) = answer(req, n);
            Answer {
                status,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body,
            }
        })
    }

    /// Answers with whatever headers `answer` gives.
    pub fn start_with(answer: impl Fn(&Recorded, usize) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>> = Default::default();
        let log = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let Some((head, body)) = read_message(&mut s, &mut Vec::new()) else {
                    continue;
                };
                let mut words = head.split_whitespace();
                let method = words.next().unwrap_or("").to_owned();
                let target = words.next().unwrap_or("").to_owned();
                let mut req = Recorded {
                    method,
                    target,
                    head,
                    body,
                    status: 0,
                };
                let mut l = log.lock().unwrap();
                let a = answer(&req, l.len());
                req.status = a.status;
                l.push(req);
                drop(l);
                let mut head = format!("HTTP/1.1 {} X\r\n", a.status);
                for (k, v) in &a.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                let _ = s.write_all(
                    format!(
                        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                        a.body.len(),
                        a.body
                    )
                    .as_bytes(),
                );
            }
        });
        Self { addr, seen }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

/// A header's value in a message head (case-insensitive name); panics when absent.
pub fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

/// Polls `cond` every 50 ms for up to `within`.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// The Python interpreter named by `var` (a virtualenv `cargo xtask test` sets up), or None
/// with a note: the calling SDK test is then skipped, except under `CI=true`, where a
/// missing environment fails it (CI must never pass without running it).
pub fn python_from(var: &str) -> Option<std::ffi::OsString> {
    match std::env::var_os(var) {
        Some(python) => Some(python),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is unset under CI=true: the SDK end-to-end test must run, not skip")
        }
        None => {
            eprintln!("note: {var} unset; skipping this SDK end-to-end test");
            None
        }
    }
}

/// Runs `tests/python/<script> http://<gateway> <token>` with `python` and asserts it
/// succeeded and printed `marker` (its output is the failure message otherwise).
pub fn run_python_check(
    python: &std::ffi::OsStr,
    script: &str,
    gateway: SocketAddr,
    token: &str,
    marker: &str,
) {
    let path = format!("{}/../../tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .arg(path)
        .arg(format!("http://{gateway}"))
        .arg(token)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(marker), "{text}");
}
