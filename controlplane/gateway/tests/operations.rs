//! Operating the gateway: the operator CLI against a real gateway and Postgres, startup that
//! fails fast with one clear line per misconfiguration, and a rolling restart of two replicas
//! under load that loses no call and no audit row.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking; that is their job"
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/gateway.rs"]
mod support;
use support::*;

const ADMIN: &str = "root-secret-for-cli-tests";

/// `intentgate <args>` as an operator runs it, against `gw`.
fn cli(gw: Option<SocketAddr>, token: &str, args: &[&str]) -> Output {
    let url = gw.map_or_else(
        || format!("http://127.0.0.1:{}", closed_port()),
        |a| format!("http://{a}"),
    );
    Command::new(env!("CARGO_BIN_EXE_intentgate"))
        .args(args)
        .env_clear()
        .env("INTENTGATE_GATEWAY_URL", url)
        .env("INTENTGATE_ADMIN_TOKEN", token)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command that must succeed; returns its standard output.
fn ok(gw: SocketAddr, args: &[&str]) -> String {
    let o = cli(Some(gw), ADMIN, args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs a command that must fail; returns its standard error, which must say `expected`.
fn refused(gw: Option<SocketAddr>, token: &str, args: &[&str], expected: &str) -> String {
    let o = cli(gw, token, args);
    assert!(!o.status.success(), "{args:?} should fail: {}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains(expected),
        "{args:?}: {err:?} lacks {expected:?}"
    );
    err
}

const READ_ONLY: &str = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "read-only policy"}
decision := {"allow": true, "reason": "read"} if input.tool == "read_invoice"
"#;

const WITH_REVIEW: &str = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "no rule"}
decision := {"allow": true, "reason": "read"} if input.tool == "read_invoice"
decision := {"allow": false, "escalate": true, "reason": "wire needs review"} if input.tool == "wire_money"
"#;

fn full_gateway(db: &TempDb) -> Gateway {
    spawn(
        "serve",
        &[
            ("INTENTGATE_ADMIN_TOKEN", ADMIN),
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_AUDIT_PERSIST", "true"),
            ("INTENTGATE_APPROVALS_BACKEND", "postgres"),
            ("INTENTGATE_POLICY_STORE", "postgres"),
        ],
    )
}

#[test]
fn operator_cli_revokes_verifies_exports_and_manages_policies() {
    let db = TempDb::new();
    let gw = full_gateway(&db);
    let token = mint(&["read_invoice", "delete_customer", "wire_money"], vec![]);
    let jti = intentgate_shared::token::Token::decode(&token)
        .unwrap()
        .claims
        .jti
        .clone();
    assert!(
        call(gw.addr, Some(&token), "read_invoice", json!({}))
            .get("result")
            .is_some()
    );

    // Revoke: human line, then the call is refused.
    assert_eq!(
        ok(gw.addr, &["revoke", "--jti", &jti, "--reason", "cli test"]),
        format!("revoked {jti}\n")
    );
    let (code, reason) = error_of(&call(gw.addr, Some(&token), "read_invoice", json!({})));
    assert_eq!(code, -32010);
    assert!(reason.contains("revoked"), "{reason}");
    let again: Value =
        serde_json::from_str(&ok(gw.addr, &["revoke", "--jti", &jti, "--json"])).unwrap();
    assert_eq!(again["ok"], true);

    // Policy: push + promote, a second one, rollback to the first.
    let token = mint(&["read_invoice", "delete_customer", "wire_money"], vec![]);
    let first = temp_file("read_only.rego", READ_ONLY);
    let out = ok(
        gw.addr,
        &[
            "policy",
            "push",
            "--file",
            first.to_str().unwrap(),
            "--promote",
            "--by",
            "ops",
        ],
    );
    assert!(
        out.starts_with("draft ") && out.contains("promoted: default slot now runs draft"),
        "{out}"
    );
    let first_id = out.split_whitespace().nth(1).unwrap().to_owned();
    let deny = call(gw.addr, Some(&token), "delete_customer", json!({}));
    assert_eq!(error_of(&deny), (-32012, "read-only policy".into()));

    let second = temp_file("review.rego", WITH_REVIEW);
    let pushed: Value = serde_json::from_str(&ok(
        gw.addr,
        &[
            "policy",
            "push",
            "--file",
            second.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    let second_id = pushed["draft"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        pushed["promoted"],
        Value::Null,
        "push alone does not promote"
    );
    let out = ok(gw.addr, &["policy", "promote", "--draft", &second_id]);
    assert!(
        out.contains(&format!("runs draft {second_id} (previous: {first_id})")),
        "{out}"
    );
    let listed = ok(gw.addr, &["policy", "list"]);
    assert!(listed.contains(&format!("* {second_id}")), "{listed}");
    let out = ok(gw.addr, &["policy", "rollback", "--by", "ops"]);
    assert!(out.contains(&format!("runs draft {first_id}")), "{out}");
    refused(
        Some(gw.addr),
        ADMIN,
        &["policy", "rollback"],
        "admin API answered 404: no previous policy",
    );

    // Dry-run replays what was recorded; nothing changes.
    let dry = ok(
        gw.addr,
        &["policy", "dry-run", "--file", second.to_str().unwrap()],
    );
    assert!(dry.contains("events replayed"), "{dry}");
    let dry: Value = serde_json::from_str(&ok(
        gw.addr,
        &[
            "policy",
            "dry-run",
            "--file",
            second.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    assert!(
        dry["summary"]["events_evaluated"].as_u64().unwrap() > 0,
        "{dry}"
    );

    // Audit: verify (human and JSON) and export to a file, which lists the revocation.
    std::thread::sleep(Duration::from_millis(300));
    let out = ok(gw.addr, &["audit", "verify"]);
    assert!(out.starts_with("ok: chain \"default\""), "{out}");
    let v: Value = serde_json::from_str(&ok(
        gw.addr,
        &["audit", "verify", "--json", "--tenant", "acme"],
    ))
    .unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["verified"].as_u64().unwrap() >= 3, "{v}");
    let file = temp_file("export.ndjson", "");
    ok(
        gw.addr,
        &[
            "audit",
            "export",
            "--format",
            "json",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    let export = std::fs::read_to_string(&file).unwrap();
    assert!(
        export.lines().any(|l| l.contains("admin/revoke")),
        "{export}"
    );
    assert!(!file.with_extension("partial").exists());
    let csv = ok(gw.addr, &["audit", "export", "--tool", "read_invoice"]);
    assert!(csv.starts_with("ts,event,schema_version,decision"), "{csv}");
    assert!(
        csv.lines().skip(1).all(|l| l.contains("read_invoice")),
        "{csv}"
    );
}

#[test]
fn operator_cli_lists_and_decides_approvals() {
    let db = TempDb::new();
    let gw = full_gateway(&db);
    let policy = temp_file("review.rego", WITH_REVIEW);
    ok(
        gw.addr,
        &[
            "policy",
            "push",
            "--file",
            policy.to_str().unwrap(),
            "--promote",
        ],
    );
    assert_eq!(
        ok(gw.addr, &["approvals", "list"]),
        "no approval requests\n"
    );
    let bad = temp_file("bad.rego", "package intentgate.policy\ndecision := {");
    refused(
        Some(gw.addr),
        ADMIN,
        &["policy", "push", "--file", bad.to_str().unwrap()],
        "admin API answered 400: rego compile error",
    );

    let token = mint(&["wire_money"], vec![]);
    let addr = gw.addr;
    let waiting =
        std::thread::spawn(move || call(addr, Some(&token), "wire_money", json!({"amount": 5})));
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        let v: Value = serde_json::from_str(&ok(
            gw.addr,
            &["approvals", "list", "--status", "pending", "--json"],
        ))
        .unwrap();
        if let Some(id) = v["approvals"][0]["pending_id"].as_str() {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "no pending approval appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    let listed = ok(gw.addr, &["approvals", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("pending") && listed.contains("tool=wire_money"),
        "{listed}"
    );
    assert_eq!(
        ok(
            gw.addr,
            &["approvals", "decide", &id, "--approve", "--by", "alice"]
        ),
        format!("{id}: approved\n")
    );
    let answer = waiting.join().unwrap();
    assert!(
        answer.get("result").is_some(),
        "approved call goes through: {answer}"
    );
    refused(
        Some(gw.addr),
        ADMIN,
        &["approvals", "decide", &id, "--reject", "--by", "bob"],
        "was already decided: approved by \"alice\"",
    );
    refused(
        Some(gw.addr),
        ADMIN,
        &[
            "approvals",
            "decide",
            "AAAAAAAAAAAAAAAAAAAAAA",
            "--reject",
            "--by",
            "bob",
        ],
        "admin API answered 404",
    );
}

#[test]
fn operator_cli_bad_inputs_get_precise_errors_and_change_nothing() {
    let gw = spawn("serve", &[("INTENTGATE_ADMIN_TOKEN", ADMIN)]);
    // A wrong token: 401 with a hint, and the token is not echoed.
    let err = refused(
        Some(gw.addr),
        "wrong-token-value",
        &["revoke", "--jti", "x"],
        "admin API answered 401",
    );
    assert!(
        err.contains("check INTENTGATE_ADMIN_TOKEN") && !err.contains("wrong-token-value"),
        "{err}"
    );
    // Nothing listening.
    refused(
        None,
        ADMIN,
        &["audit", "verify"],
        "cannot reach the admin API at http://127.0.0.1:",
    );
    // Feature off on this gateway (no audit store): the route is absent.
    refused(
        Some(gw.addr),
        ADMIN,
        &["audit", "verify"],
        "admin API answered 404",
    );
    // Bad arguments never reach the gateway.
    refused(
        Some(gw.addr),
        ADMIN,
        &["revoke", "--jti", "  "],
        "--jti must not be empty",
    );
    refused(
        Some(gw.addr),
        "",
        &["revoke", "--jti", "x"],
        "INTENTGATE_ADMIN_TOKEN is empty",
    );
    refused(
        Some(gw.addr),
        ADMIN,
        &["approvals", "decide", "../revoke", "--approve", "--by", "a"],
        "is not a request id",
    );
    refused(
        Some(gw.addr),
        ADMIN,
        &["approvals", "decide", "abc", "--by", "a"],
        "--approve",
    );
    refused(
        Some(gw.addr),
        ADMIN,
        &["policy", "push", "--file", "/nonexistent/p.rego"],
        "cannot read /nonexistent/p.rego",
    );
    let empty = temp_file("empty.rego", "\n");
    refused(
        Some(gw.addr),
        ADMIN,
        &["policy", "push", "--file", empty.to_str().unwrap()],
        "is empty",
    );
    refused(
        Some(gw.addr),
        ADMIN,
        &["audit", "export", "--format", "xml"],
        "invalid value 'xml'",
    );
    let o = Command::new(env!("CARGO_BIN_EXE_intentgate"))
        .args(["revoke", "--jti", "x", "--gateway", "ftp://example"])
        .env_clear()
        .env("INTENTGATE_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("must be http:// or https://"),
        "{}",
        stderr(&o)
    );
    // This gateway has no policy store: the gateway's refusal is passed on as it is.
    let bad = temp_file("bad.rego", "package intentgate.policy\ndecision := {");
    refused(
        Some(gw.addr),
        ADMIN,
        &["policy", "push", "--file", bad.to_str().unwrap()],
        "admin API answered 503: policy store is off",
    );
    // Nothing was revoked by any of the above.
    let r = admin(gw.addr, "GET", "/v1/admin/revocations", ADMIN, "");
    assert_eq!(r.json()["revocations"], json!([]));
}

/// Starts `intentgate serve` with `env` and returns its exit status and standard error once
/// it stops by itself (it must, within 20 s).
fn failed_start(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_intentgate"))
        .arg("serve")
        .env_clear()
        .env("INTENTGATE_ADDR", "127.0.0.1:0")
        .env("INTENTGATE_ADMIN_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve with {env:?} did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status, err)
}

#[test]
fn startup_fails_fast_with_one_clear_line_per_misconfiguration() {
    let bad_policy = temp_file("broken.rego", "package intentgate.policy\ndecision := {");
    let unreachable = format!("postgres://ig:s3cret-pw@127.0.0.1:{}/ig", closed_port());
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("INTENTGATE_POSTGRES_URL", "not a url"),
                ("INTENTGATE_AUDIT_PERSIST", "true"),
            ],
            "INTENTGATE_POSTGRES_URL",
        ),
        (
            vec![
                ("INTENTGATE_POSTGRES_URL", unreachable.as_str()),
                ("INTENTGATE_AUDIT_PERSIST", "true"),
            ],
            "cannot reach Postgres",
        ),
        (
            vec![("INTENTGATE_MASTER_KEY", "not!base64")],
            "INTENTGATE_MASTER_KEY",
        ),
        (
            vec![("INTENTGATE_MASTER_KEY", "c2hvcnQ")],
            "INTENTGATE_MASTER_KEY",
        ),
        (
            vec![("INTENTGATE_POLICY_FILE", bad_policy.to_str().unwrap())],
            "does not compile",
        ),
        (
            vec![("INTENTGATE_POLICY_FILE", "/nonexistent/policy.rego")],
            "cannot read /nonexistent/policy.rego",
        ),
        (
            vec![("INTENTGATE_AUDIT_PERSIST", "true")],
            "INTENTGATE_AUDIT_PERSIST",
        ),
        (vec![("INTENTGATE_ADDR", "nowhere")], "INTENTGATE_ADDR"),
        (
            vec![("INTENTGATE_SHUTDOWN_DELAY_S", "-1")],
            "INTENTGATE_SHUTDOWN_DELAY_S",
        ),
    ];
    for (env, expected) in cases {
        let started = Instant::now();
        let (status, err) = failed_start(&env);
        assert!(!status.success(), "{env:?} started");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{env:?} took {:?}",
            started.elapsed()
        );
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("intentgate: ") && last.contains(expected),
            "{env:?}: last line {last:?} should name {expected:?}; all: {err}"
        );
        let errors = err
            .lines()
            .filter(|l| l.starts_with("intentgate: "))
            .count();
        assert_eq!(errors, 1, "{env:?}: one error line, got {err}");
        assert!(!err.contains("s3cret-pw"), "the password leaked: {err}");
    }
}

/// A client-side load balancer, as a Kubernetes Service with readiness probes behaves: it
/// routes only to replicas whose `/healthz` answered 200 at the last poll (every 20 ms).
struct Balancer {
    replicas: Mutex<Vec<(SocketAddr, bool)>>,
}

impl Balancer {
    fn ready(&self, n: usize) -> Option<SocketAddr> {
        let r = self.replicas.lock().unwrap();
        let ready: Vec<_> = r.iter().filter(|x| x.1).map(|x| x.0).collect();
        (!ready.is_empty()).then(|| ready[n % ready.len()])
    }

    fn set(&self, addrs: &[SocketAddr]) {
        let mut r = self.replicas.lock().unwrap();
        r.retain(|x| addrs.contains(&x.0));
        for a in addrs {
            if !r.iter().any(|x| x.0 == *a) {
                r.push((*a, false));
            }
        }
    }

    fn poll(&self) {
        let addrs: Vec<_> = self.replicas.lock().unwrap().iter().map(|x| x.0).collect();
        for a in addrs {
            let ready = healthz(a) == Some(200);
            if let Some(x) = self.replicas.lock().unwrap().iter_mut().find(|x| x.0 == a) {
                x.1 = ready;
            }
        }
    }
}

fn healthz(addr: SocketAddr) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.get(9..12)?.parse().ok()
}

/// How long a replica under load may take to drain and stop.
const REPLICA_STOP: Duration = Duration::from_secs(30);

fn replica(db: &TempDb, name: &str) -> Gateway {
    spawn(
        "serve",
        &[
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_AUDIT_PERSIST", "true"),
            ("INTENTGATE_ADMIN_TOKEN", ADMIN),
            ("INTENTGATE_REPLICA_ID", name),
            ("INTENTGATE_SHUTDOWN_DELAY_S", "1"),
        ],
    )
}

#[test]
fn a_rolling_restart_under_load_fails_no_call_and_loses_no_audit_row() {
    let db = TempDb::new();
    let a = replica(&db, "replica-a");
    let b = replica(&db, "replica-b");
    let lb = Arc::new(Balancer {
        replicas: Mutex::new(Vec::new()),
    });
    lb.set(&[a.addr, b.addr]);
    lb.poll();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let poller = {
        let (lb, stop) = (Arc::clone(&lb), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                lb.poll();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let token = mint(&["read_invoice"], vec![]);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "read_invoice", "arguments": {}}}).to_string();
    let request = format!(
        "POST /v1/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (lb, stop, answered, failures, request) = (
                Arc::clone(&lb),
                Arc::clone(&stop),
                Arc::clone(&answered),
                Arc::clone(&failures),
                request.clone(),
            );
            std::thread::spawn(move || {
                let mut conn: Option<(TcpStream, Vec<u8>)> = None;
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // Steady load the replicas sustain (a debug build's audit writer is the
                    // limit; past it calls are refused with 503 by design, which is not what
                    // this test is about).
                    std::thread::sleep(Duration::from_millis(2));
                    if conn.is_none() {
                        let Some(addr) = lb.ready(n) else {
                            failures.lock().unwrap().push("no ready replica".into());
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        };
                        match TcpStream::connect(addr) {
                            Ok(s) => {
                                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                                conn = Some((s, Vec::new()));
                            }
                            Err(e) => {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("connect {addr}: {e}"));
                                continue;
                            }
                        }
                    }
                    let (s, pending) = conn.as_mut().unwrap();
                    if let Err(e) = s.write_all(request.as_bytes()) {
                        failures.lock().unwrap().push(format!("send: {e}"));
                        conn = None;
                        continue;
                    }
                    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        read_reply(s, pending)
                    }));
                    match reply {
                        Ok(r) if r.status == 200 && r.json().get("result").is_some() => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            if r.head.to_ascii_lowercase().contains("connection: close") {
                                conn = None;
                            }
                        }
                        Ok(r) => {
                            failures.lock().unwrap().push(format!(
                                "{} {}",
                                r.status,
                                String::from_utf8_lossy(&r.body)
                            ));
                            conn = None;
                        }
                        Err(_) => {
                            failures
                                .lock()
                                .unwrap()
                                .push("connection lost mid-call".into());
                            conn = None;
                        }
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(500));
    // Roll A: drain and stop it, start its replacement; then the same for B.
    assert!(terminate(a, REPLICA_STOP).success());
    let a2 = replica(&db, "replica-a");
    lb.set(&[a2.addr, b.addr]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(terminate(b, REPLICA_STOP).success());
    let b2 = replica(&db, "replica-b");
    lb.set(&[a2.addr, b2.addr]);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    poller.join().unwrap();
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "failed calls during the rolling restart: {failures:?}"
    );
    let answered = answered.load(Ordering::Relaxed);
    assert!(
        answered > 200,
        "too little load to mean anything: {answered}"
    );
    eprintln!("rolling restart: {answered} calls answered, none failed");

    // Stop the replacements too, so every record is flushed, then count.
    assert!(terminate(a2, REPLICA_STOP).success());
    assert!(terminate(b2, REPLICA_STOP).success());
    let mut probe = Probe::open(&db.url);
    let rows = probe.scalar("SELECT count(*) FROM audit_events WHERE tool = 'read_invoice'");
    assert_eq!(
        rows,
        i64::try_from(answered).unwrap(),
        "one audit row per answered call"
    );
    let seq =
        probe.scalar("SELECT count(DISTINCT seq) FROM audit_events WHERE tool = 'read_invoice'");
    assert_eq!(seq, rows, "two writers, one gapless chain");
}
