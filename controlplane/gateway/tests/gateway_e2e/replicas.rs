//! Several replicas over one Postgres: escalations and approvals, revocations, staleness, restarts.

use super::*;

const ESCALATING_POLICY: &str = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "no rule"}
decision := {"allow": true, "reason": "read"} if input.tool == "read_invoice"
decision := {"allow": false, "escalate": true, "reason": "wire needs review"} if input.tool == "wire_money"
"#;

fn wait_for_pending(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = admin(
            addr,
            "GET",
            "/v1/admin/approvals?status=pending",
            "root-secret",
            "",
        )
        .json();
        if let Some(id) = v["approvals"][0]["pending_id"].as_str() {
            return id.to_owned();
        }
        assert!(Instant::now() < deadline, "no pending approval appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn escalations_wait_for_a_reviewer_then_approve_reject_or_expire() {
    let policy = escalating_policy_file();
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
            ("INTENTGATE_POLICY_FILE", policy.to_str().unwrap()),
            ("INTENTGATE_APPROVAL_TIMEOUT_S", "2"),
        ],
    );
    let token = mint(&[], vec![]);
    let addr = gw.addr;
    let pending_call = |t: String| {
        std::thread::spawn(move || call(addr, Some(&t), "wire_money", json!({"amount": 5})))
    };

    // Approve: the waiting call goes through (to the stub upstream).
    let waiting = pending_call(token.clone());
    let id = wait_for_pending(addr);
    let r = admin(
        addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"approve","decided_by":"alice"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = waiting.join().unwrap();
    assert!(v["result"]["content"].is_array(), "{v}");

    // Reject.
    let waiting = pending_call(token.clone());
    let id = wait_for_pending(addr);
    admin(
        addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"reject","decided_by":"bob","note":"no"}"#,
    );
    let v = waiting.join().unwrap();
    assert_eq!(
        (v["error"]["code"].clone(), v["error"]["message"].clone()),
        (json!(-32012), json!("policy: rejected by reviewer"))
    );
    assert_eq!(v["error"]["data"], "rejected by bob: no");

    // Revoked while waiting: the approval does not resurrect the token.
    let doomed = mint(&[], vec![]);
    let waiting = pending_call(doomed.clone());
    let id = wait_for_pending(addr);
    let jti = Token::decode(&doomed).unwrap().claims.jti;
    assert_eq!(
        admin(
            addr,
            "POST",
            "/v1/admin/revoke",
            "root-secret",
            &json!({"jti": jti}).to_string()
        )
        .status,
        200
    );
    admin(
        addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"approve","decided_by":"alice"}"#,
    );
    let v = waiting.join().unwrap();
    assert_eq!(
        (v["error"]["code"].clone(), v["error"]["data"].clone()),
        (json!(-32010), json!("token revoked"))
    );

    // Nobody decides: the window expires and the row says so.
    let started = Instant::now();
    let v = call(addr, Some(&token), "wire_money", json!({}));
    assert_eq!(v["error"]["message"], "policy: approval window expired");
    assert_eq!(v["error"]["data"], "approval window expired (2s)");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let rows = admin(
        addr,
        "GET",
        "/v1/admin/approvals?status=timeout",
        "root-secret",
        "",
    )
    .json();
    assert_eq!(rows["approvals"].as_array().unwrap().len(), 1);
}

#[test]
fn a_revocation_on_one_replica_reaches_another_through_postgres() {
    let db = TempDb::new();
    let env = [
        ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
        ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
        ("INTENTGATE_SNAPSHOT_MAX_STALENESS_S", "3"),
    ];
    let a = spawn("serve", &env);
    let b = spawn("serve", &env);
    let token = mint(&[], vec![]);
    assert!(call(b.addr, Some(&token), "read_invoice", json!({}))["result"].is_object());
    let jti = Token::decode(&token).unwrap().claims.jti;
    let r = admin(
        a.addr,
        "POST",
        "/v1/admin/revoke",
        "root-secret",
        &json!({"jti": jti}).to_string(),
    );
    assert_eq!(r.status, 200);
    let revoked_at = Instant::now();
    loop {
        let v = call(b.addr, Some(&token), "read_invoice", json!({}));
        if v["error"]["data"] == "token revoked" {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "replica B never saw the revocation: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "revocation reached the other replica after {:?}",
        revoked_at.elapsed()
    );
    // A restarted replica loads it at startup.
    drop(b);
    let c = spawn("serve", &env);
    assert_eq!(
        call(c.addr, Some(&token), "read_invoice", json!({}))["error"]["data"],
        "token revoked"
    );
    drop((a, c));
}

#[test]
fn a_replica_that_cannot_refresh_fails_closed_and_reports_unready() {
    let db = TempDb::new();
    let gw = spawn(
        "serve",
        &[
            ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
            ("INTENTGATE_SNAPSHOT_MAX_STALENESS_S", "2"),
        ],
    );
    let token = mint(&[], vec![]);
    assert_eq!(raw(gw.addr, b"GET /healthz HTTP/1.1\r\n\r\n").status, 200);
    assert!(call(gw.addr, Some(&token), "read_invoice", json!({}))["result"].is_object());
    // The database disappears: revocations can no longer be confirmed.
    drop(db);
    let deadline = Instant::now() + Duration::from_secs(8);
    while raw(gw.addr, b"GET /healthz HTTP/1.1\r\n\r\n").status != 503 {
        assert!(
            Instant::now() < deadline,
            "healthz never reported the stale snapshot"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, reason) = error_of(&call(gw.addr, Some(&token), "read_invoice", json!({})));
    assert_eq!(
        (code, reason.as_str()),
        (
            -32010,
            "revocation snapshot is stale; token rejected (fail-closed)"
        )
    );
    // Unready is not dead: liveness stays 200, so an orchestrator does not restart a process
    // whose database is the problem.
    let live = raw(gw.addr, b"GET /livez HTTP/1.1\r\n\r\n");
    assert_eq!(
        (live.status, live.json()["status"].as_str()),
        (200, Some("alive"))
    );
}

fn approvals_env<'a>(db: &'a TempDb, policy: &'a str, replica: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("INTENTGATE_POSTGRES_URL", db.url.as_str()),
        ("INTENTGATE_ADMIN_TOKEN", "root-secret"),
        ("INTENTGATE_POLICY_FILE", policy),
        ("INTENTGATE_APPROVALS_BACKEND", "postgres"),
        ("INTENTGATE_APPROVAL_TIMEOUT_S", "20"),
        ("INTENTGATE_REPLICA_ID", replica),
    ]
}

fn escalating_policy_file() -> std::path::PathBuf {
    temp_file("policy.rego", ESCALATING_POLICY)
}

#[test]
fn approvals_are_shared_across_replicas_through_postgres() {
    let db = TempDb::new();
    let policy = escalating_policy_file();
    let policy = policy.to_str().unwrap();
    let a = spawn("serve", &approvals_env(&db, policy, "replica-a"));
    let b = spawn("serve", &approvals_env(&db, policy, "replica-b"));
    let token = mint(&[], vec![]);

    // The call waits on A; a reviewer decides on B; A's call goes through.
    let addr = a.addr;
    let t = token.clone();
    let waiting =
        std::thread::spawn(move || call(addr, Some(&t), "wire_money", json!({"amount": 5})));
    let id = wait_for_pending(b.addr);
    let rows = admin(b.addr, "GET", "/v1/admin/approvals", "root-secret", "").json();
    assert_eq!(rows["approvals"][0]["args"], json!({"amount": 5}));
    assert_eq!(rows["approvals"][0]["tool"], "wire_money");
    let decided_at = Instant::now();
    let r = admin(
        b.addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"approve","decided_by":"alice","note":"ok"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "approved");
    let v = waiting.join().unwrap();
    let woke = decided_at.elapsed();
    assert!(v["result"]["content"].is_array(), "{v}");
    assert!(woke < Duration::from_secs(3), "the decision took {woke:?}");
    eprintln!("a decision on replica B woke the call on replica A after {woke:?}");

    // Decided once: a second decision on either replica is a 409 with the current row.
    let again = admin(
        a.addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"reject"}"#,
    );
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["current"]["status"], "approved");
    let unknown = admin(
        a.addr,
        "POST",
        "/v1/admin/approvals/nope/decide",
        "root-secret",
        r#"{"decision":"reject"}"#,
    );
    assert_eq!(unknown.status, 404);

    // Rejected on A while the call waits on B.
    let addr = b.addr;
    let t = token.clone();
    let waiting = std::thread::spawn(move || call(addr, Some(&t), "wire_money", json!({})));
    let id = wait_for_pending(a.addr);
    let r = admin(
        a.addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"reject","decided_by":"bob","note":"no"}"#,
    );
    assert_eq!(r.status, 200);
    let v = waiting.join().unwrap();
    assert_eq!(v["error"]["message"], "policy: rejected by reviewer");
    assert_eq!(v["error"]["data"], "rejected by bob: no");
    drop((a, b));
}

#[test]
fn a_restarted_replica_times_out_the_approvals_of_its_crashed_calls() {
    let db = TempDb::new();
    let policy = escalating_policy_file();
    let policy = policy.to_str().unwrap();
    let other = spawn("serve", &approvals_env(&db, policy, "replica-other"));
    let crashing = spawn("serve", &approvals_env(&db, policy, "replica-c"));
    let token = mint(&[], vec![]);
    let addr = crashing.addr;
    // The call never gets an answer: its gateway is killed while it waits.
    let _orphan = std::thread::spawn(move || {
        let _ = std::panic::catch_unwind(|| call(addr, Some(&token), "wire_money", json!({})));
    });
    let id = wait_for_pending(other.addr);
    drop(crashing); // SIGKILL: no shutdown path runs
    let rows = admin(other.addr, "GET", "/v1/admin/approvals", "root-secret", "").json();
    assert_eq!(rows["approvals"][0]["status"], "pending");

    let _restarted = spawn("serve", &approvals_env(&db, policy, "replica-c"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = admin(
            other.addr,
            "GET",
            "/v1/admin/approvals?status=timeout",
            "root-secret",
            "",
        )
        .json();
        if rows["approvals"][0]["pending_id"] == id.as_str() {
            assert_eq!(
                rows["approvals"][0]["decide_note"],
                "the gateway holding this call stopped before a decision"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the orphaned row stayed pending");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nobody can approve a call that no longer exists.
    let r = admin(
        other.addr,
        "POST",
        &format!("/v1/admin/approvals/{id}/decide"),
        "root-secret",
        r#"{"decision":"approve"}"#,
    );
    assert_eq!(r.status, 409);
}
