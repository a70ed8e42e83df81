use std::collections::HashMap;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use http_body_util::BodyExt as _;
use intentgate_shared::approval::{Decided, PendingApprovals, PendingRequest};
use intentgate_shared::audit_sink::{RingFull, Ticket};
use intentgate_shared::config::Secret;
use intentgate_shared::key_ring::MasterKey;
use intentgate_shared::policy::Policy;
use intentgate_shared::snapshot::{RevocationSet, Snapshot};
use tower::ServiceExt as _;

use super::*;

/// Admin records as the drain would hand them to a memory sink: the newest 100, in order.
#[derive(Debug, Clone, Default)]
struct Recorded(Arc<Mutex<Vec<AuditEvent>>>);

impl AuditRecorder for Recorded {
    fn push(&mut self, event: AuditEvent) -> Result<Ticket, RingFull> {
        let mut kept = self.0.lock().unwrap();
        if kept.len() == 100 {
            kept.remove(0);
        }
        kept.push(event);
        Ok(Ticket { core: 0, seq: 0 })
    }
}

/// Where a decision reaches the waiting call.
type Slot = Arc<Mutex<Option<Decided>>>;

/// A call waiting for its decision (the data plane's queue wakes it through a oneshot).
#[derive(Debug)]
struct Waiter(Slot);

impl Waiter {
    /// `Ok(None)` while undecided, as the oneshot's `try_recv`.
    fn try_recv(&mut self) -> Result<Option<Decided>, std::convert::Infallible> {
        Ok(self.0.lock().unwrap().take())
    }
}

/// An in-memory approvals queue with the data plane queue's rules for what the admin API
/// does with it (list newest first, decide once, tenant scope). The real queue is tested in
/// the data plane, and behind the admin API end to end in `tests/gateway_e2e.rs`.
#[derive(Debug, Default)]
struct MemoryQueue {
    rows: Mutex<Vec<(PendingRequest, Slot)>>,
}

impl MemoryQueue {
    fn enqueue(&self, row: PendingRequest) -> Option<Waiter> {
        let slot = Slot::default();
        self.rows.lock().unwrap().push((row, Arc::clone(&slot)));
        Some(Waiter(slot))
    }
}

impl PendingApprovals for MemoryQueue {
    fn list(
        &self,
        tenant: Option<&str>,
        status: Option<Status>,
        limit: usize,
        offset: usize,
    ) -> Vec<PendingRequest> {
        let rows = self.rows.lock().unwrap();
        rows.iter()
            .rev()
            .map(|(r, _)| r)
            .filter(|r| {
                tenant.is_none_or(|t| r.tenant == t) && status.is_none_or(|s| r.status == s)
            })
            .skip(offset)
            .take(limit)
            .cloned()
            .collect()
    }

    fn decide(
        &self,
        id: &str,
        approved: bool,
        by: &str,
        note: &str,
        tenant: Option<&str>,
    ) -> Result<PendingRequest, DecideError> {
        let mut rows = self.rows.lock().unwrap();
        let (row, slot) = rows
            .iter_mut()
            .find(|(r, _)| r.pending_id == id && tenant.is_none_or(|t| r.tenant == t))
            .ok_or(DecideError::NotFound)?;
        if row.status != Status::Pending {
            return Err(DecideError::AlreadyDecided(Box::new(row.clone())));
        }
        row.status = if approved {
            Status::Approved
        } else {
            Status::Rejected
        };
        row.decided_at = Some(Timestamp::now());
        by.clone_into(&mut row.decided_by);
        note.clone_into(&mut row.decide_note);
        *slot.lock().unwrap() = Some(Decided {
            approved,
            decided_by: by.to_owned(),
            note: note.to_owned(),
        });
        Ok(row.clone())
    }

    // The admin API never hands decisions on: that is the Postgres path's (`crate::approvals`).
    fn resolve(&self, _id: &str, _decided: Decided) -> bool {
        false
    }

    fn expire(&self, _id: &str) {}

    fn is_waiting(&self, _id: &str) -> bool {
        false
    }

    fn waiting(&self) -> Vec<String> {
        Vec::new()
    }
}

struct Harness {
    app: Router,
    state: Arc<AdminState>,
    sink: Recorded,
    queue: Arc<MemoryQueue>,
}

impl Harness {
    fn new() -> Self {
        Self::with_store(None)
    }

    fn with_store(audit_store: Option<sqlx::PgPool>) -> Self {
        Self::build(audit_store, None)
    }

    /// With the policy lifecycle on `store` (its snapshot is the harness's own).
    fn with_policies(store: crate::policies::PolicyStore) -> Self {
        Self::build(None, Some(store))
    }

    fn build(
        audit_store: Option<sqlx::PgPool>,
        policy_store: Option<crate::policies::PolicyStore>,
    ) -> Self {
        let snapshot = Snapshot {
            version: 0,
            built_at: Timestamp::now(),
            keys: KeyRing::single(MasterKey::from_bytes(&[5; 32])),
            revoked: Arc::new(RevocationSet::default()),
            default_policy: Policy::default_policy().unwrap(),
            tenant_policies: Arc::new(HashMap::new()),
        };
        let sink = Recorded::default();
        let queue = Arc::new(MemoryQueue::default());
        let snapshot = Arc::new(SnapshotCell::new(snapshot));
        let policies = policy_store.map(|store| {
            Arc::new(crate::policies::PolicyManager::new(
                store,
                Arc::clone(&snapshot),
                intentgate_shared::policy::Syntax::V1,
                (Policy::default_policy().unwrap(), "embedded default".into()),
            ))
        });
        let state = Arc::new(AdminState {
            auth: AdminAuth::new(
                Some(&Secret::new("root-token")),
                &[
                    ("acme".into(), Secret::new("acme-token")),
                    ("globex".into(), Secret::new("globex-token")),
                ],
            ),
            keys: KeyRing::single(MasterKey::from_bytes(&[5; 32])),
            snapshot,
            revocations: RevocationStore::memory(),
            audit: Mutex::new(Box::new(sink.clone())),
            approvals: Some(Approvals::Memory(queue.clone())),
            audit_store,
            audit_public_key: None,
            policies,
            policy_syntax: intentgate_shared::policy::Syntax::V1,
            relay_secret: Some(relay_secret_digest("relay-s3cret")),
            integrations: Default::default(),
        });
        let app = router(Arc::clone(&state))
            .unwrap()
            .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
        Self {
            app,
            state,
            sink,
            queue,
        }
    }

    /// Status, headers and the raw body.
    async fn fetch(&self, uri: &str, token: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let req = Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        self.send_with(method, uri, token, body, &[]).await
    }

    async fn send_with(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn events(&mut self) -> Vec<AuditEvent> {
        self.sink.0.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn no_admin_token_means_no_admin_api() {
    let auth = AdminAuth::new(None, &[]);
    assert!(!auth.enabled());
}

#[test]
fn a_previous_superadmin_token_is_accepted_during_a_rotation() {
    use axum::http::HeaderMap;
    let ip: std::net::IpAddr = [127, 0, 0, 1].into();
    let header = |t: &str| {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {t}").parse().unwrap());
        h
    };
    let new = Secret::new("new-token".to_owned());
    let old = Secret::new("old-token".to_owned());
    let auth = AdminAuth::new(Some(&new), &[]).with_previous(Some(&old));
    for t in ["new-token", "old-token"] {
        assert_eq!(
            auth.authenticate(ip, &header(t)).unwrap(),
            auth::Principal { tenant: None },
            "{t}"
        );
    }
    assert!(auth.authenticate(ip, &header("other")).is_err());
    let after = AdminAuth::new(Some(&new), &[]).with_previous(None);
    assert!(after.authenticate(ip, &header("old-token")).is_err());
}

#[tokio::test]
async fn authentication_and_throttling() {
    let h = Harness::new();
    let (s, v) = h.send("GET", "/v1/admin/tenants", None, "").await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (
            StatusCode::UNAUTHORIZED,
            "admin token required (Authorization: Bearer <token>)"
        )
    );
    for _ in 0..auth::MAX_FAILURES {
        let (s, v) = h.send("GET", "/v1/admin/tenants", Some("wrong"), "").await;
        assert_eq!(
            (s, v["error"].as_str().unwrap()),
            (StatusCode::UNAUTHORIZED, "invalid admin token")
        );
    }
    let (s, v) = h
        .send("GET", "/v1/admin/tenants", Some("root-token"), "")
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let (s, _) = h
        .send("GET", "/v1/admin/revocations", Some("root-token"), "")
        .await;
    assert_eq!(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        "the throttle holds for every route"
    );
    let (s, v) = h
        .send("GET", "/v1/admin/nothing-here", Some("root-token"), "")
        .await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (StatusCode::NOT_FOUND, "no such admin route")
    );
}

#[tokio::test]
async fn tenants_are_scoped() {
    let h = Harness::new();
    let (s, v) = h
        .send("GET", "/v1/admin/tenants", Some("root-token"), "")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"tenants": [{"id": "acme", "has_admin": true}, {"id": "globex", "has_admin": true}]})
    );
    let (_, v) = h
        .send("GET", "/v1/admin/tenants", Some("acme-token"), "")
        .await;
    assert_eq!(v, json!({"tenants": [{"id": "acme", "has_admin": true}]}));
}

#[tokio::test]
async fn mint_returns_a_verifiable_token_and_is_audited() {
    let mut h = Harness::new();
    let body = r#"{"subject":"agent-1","tenant":"acme","ttl_seconds":600,"tools":[" read_x ",""],"max_calls":5,"step_up":true}"#;
    let (s, v) = h
        .send("POST", "/v1/admin/mint", Some("root-token"), body)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = Token::decode_verified(v["token"].as_str().unwrap(), &h.state.keys).unwrap();
    assert_eq!(
        (token.claims.tenant.as_str(), token.claims.sub.as_str()),
        ("acme", "agent-1")
    );
    let kinds: Vec<&str> = token.caveats.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["agent_lock", "exp", "tool_allow", "max_calls", "step_up"]
    );
    assert_eq!(token.caveats[2].tools, ["read_x"]);
    assert_eq!(v["jti"], token.claims.jti.as_str());
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    let (_, v) = h
        .send(
            "POST",
            "/v1/admin/mint",
            Some("root-token"),
            r#"{"subject":"s"}"#,
        )
        .await;
    let t = Token::decode(v["token"].as_str().unwrap()).unwrap();
    assert_eq!(t.claims.tenant, "default");
    assert_eq!(v["expires_at"], "");
    let events = h.events();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].tool.as_str(), events[0].decision.as_str()),
        ("admin/mint", "allow")
    );
    assert_eq!(events[0].reason, "token minted for subject=agent-1");
    assert_eq!(events[0].caveat_count, 5);
}

#[tokio::test]
async fn mint_rejects_bad_input_precisely() {
    let h = Harness::new();
    let cases: &[(&str, StatusCode, &str)] = &[
        (
            r#"{"subject":"  "}"#,
            StatusCode::BAD_REQUEST,
            "subject is required",
        ),
        (
            r#"{"subject":"s","ttl_seconds":-1}"#,
            StatusCode::BAD_REQUEST,
            "ttl_seconds must not be negative",
        ),
        (
            r#"{"subject":"s","max_calls":-2}"#,
            StatusCode::BAD_REQUEST,
            "max_calls must not be negative",
        ),
        (
            r#"{"subject":"s","colour":"red"}"#,
            StatusCode::BAD_REQUEST,
            "unknown field `colour`",
        ),
        (
            r#"{"subject":"#,
            StatusCode::BAD_REQUEST,
            "invalid JSON body",
        ),
        (r#"{}"#, StatusCode::BAD_REQUEST, "missing field `subject`"),
    ];
    for (body, status, needle) in cases {
        let (s, v) = h
            .send("POST", "/v1/admin/mint", Some("root-token"), body)
            .await;
        assert_eq!(s, *status, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    let big = format!(r#"{{"subject":"{}"}}"#, "a".repeat(MAX_BODY));
    let (s, v) = h
        .send("POST", "/v1/admin/mint", Some("root-token"), &big)
        .await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (StatusCode::PAYLOAD_TOO_LARGE, "request body exceeds 64 KiB")
    );
    let (s, v) = h
        .send(
            "POST",
            "/v1/admin/mint",
            Some("acme-token"),
            r#"{"subject":"s","tenant":"globex"}"#,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (
            StatusCode::FORBIDDEN,
            "tenant admins may only act for their own tenant"
        )
    );
    let (s, v) = h
        .send(
            "POST",
            "/v1/admin/mint",
            Some("acme-token"),
            r#"{"subject":"s"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        Token::decode(v["token"].as_str().unwrap())
            .unwrap()
            .claims
            .tenant,
        "acme",
        "tenant admins are forced onto their tenant"
    );
}

#[tokio::test]
async fn revoke_reaches_the_snapshot_and_lists_are_scoped() {
    let mut h = Harness::new();
    let (s, v) = h
        .send(
            "POST",
            "/v1/admin/revoke",
            Some("acme-token"),
            r#"{"jti":"j-acme","reason":"leaked"}"#,
        )
        .await;
    assert_eq!(
        (s, v),
        (StatusCode::OK, json!({"ok": true, "jti": "j-acme"}))
    );
    h.send(
        "POST",
        "/v1/admin/revoke",
        Some("root-token"),
        r#"{"jti":"j-global"}"#,
    )
    .await;
    let snap = h.state.snapshot.load();
    assert!(snap.revoked.is_revoked("j-acme", "acme"));
    assert!(
        !snap.revoked.is_revoked("j-acme", "globex"),
        "a tenant revocation is the tenant's"
    );
    assert!(
        snap.revoked.is_revoked("j-global", "globex"),
        "a superadmin revocation is global"
    );

    let (_, v) = h
        .send("GET", "/v1/admin/revocations", Some("root-token"), "")
        .await;
    assert_eq!(v["revocations"].as_array().unwrap().len(), 2);
    assert_eq!(
        (v["limit"].clone(), v["offset"].clone()),
        (json!(100), json!(0))
    );
    let (_, v) = h
        .send("GET", "/v1/admin/revocations", Some("acme-token"), "")
        .await;
    let rows = v["revocations"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0]["jti"].clone(),
            rows[0]["reason"].clone(),
            rows[0]["tenant"].clone()
        ),
        (json!("j-acme"), json!("leaked"), json!("acme"))
    );
    let (_, v) = h
        .send("GET", "/v1/admin/revocations", Some("globex-token"), "")
        .await;
    assert!(v["revocations"].as_array().unwrap().is_empty());
    let (_, v) = h
        .send(
            "GET",
            "/v1/admin/revocations?limit=5000&offset=1",
            Some("root-token"),
            "",
        )
        .await;
    assert_eq!(
        (
            v["limit"].clone(),
            v["revocations"].as_array().unwrap().len()
        ),
        (json!(1000), 1)
    );
    let (s, v) = h
        .send(
            "GET",
            "/v1/admin/revocations?limit=ten",
            Some("root-token"),
            "",
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "limit must be an integer")
    );

    let (s, v) = h
        .send(
            "POST",
            "/v1/admin/revoke",
            Some("root-token"),
            r#"{"jti":" "}"#,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "jti is required")
    );
    let (s, _) = h
        .send(
            "POST",
            "/v1/admin/revoke",
            Some("root-token"),
            r#"{"jti":"x","why":"y"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let events = h.events();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (
            events[0].tool.as_str(),
            events[0].decision.as_str(),
            events[0].tenant.as_str()
        ),
        ("admin/revoke", "block", "acme")
    );
    assert_eq!(events[0].reason, "token revoked: leaked");
    assert_eq!(events[0].capability_token_id, "j-acme");
}

#[tokio::test]
async fn elevation_ids_reach_admin_events() {
    let mut h = Harness::new();
    let req = Request::builder()
        .method("POST")
        .uri("/v1/admin/revoke")
        .header("authorization", "Bearer root-token")
        .header("x-intentgate-elevation-id", "chg-42")
        .body(Body::from(r#"{"jti":"j"}"#))
        .unwrap();
    assert_eq!(
        h.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(h.events()[0].elevation_id, "chg-42");
}

fn pending(id: &str, tenant: &str) -> PendingRequest {
    PendingRequest {
        pending_id: id.into(),
        tenant: tenant.into(),
        capability_token_id: "j".into(),
        root_capability_token_id: "j".into(),
        agent_id: "agent-1".into(),
        tool: "wire".into(),
        args: Some(json!({"amount": 5})),
        intent_summary: String::new(),
        reason: "big".into(),
        status: Status::Pending,
        created_at: Timestamp::now(),
        decided_at: None,
        decided_by: String::new(),
        decide_note: String::new(),
        requires_step_up: false,
    }
}

#[tokio::test]
async fn approvals_list_decide_once_and_scope() {
    let mut h = Harness::new();
    let Some(Approvals::Memory(_)) = h.state.approvals.as_ref() else {
        panic!("memory approvals expected");
    };
    let queue = Arc::clone(&h.queue);
    let mut waiter = queue.enqueue(pending("p-acme", "acme")).unwrap();
    let _other = queue.enqueue(pending("p-globex", "globex")).unwrap();

    let (_, v) = h
        .send(
            "GET",
            "/v1/admin/approvals?status=pending",
            Some("acme-token"),
            "",
        )
        .await;
    let rows = v["approvals"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["pending_id"].clone(), rows[0]["args"].clone()),
        (json!("p-acme"), json!({"amount": 5}))
    );
    let (_, v) = h
        .send("GET", "/v1/admin/approvals", Some("root-token"), "")
        .await;
    assert_eq!(v["approvals"].as_array().unwrap().len(), 2);
    let (s, v) = h
        .send(
            "GET",
            "/v1/admin/approvals?status=maybe",
            Some("root-token"),
            "",
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (
            StatusCode::BAD_REQUEST,
            "status must be one of pending, approved, rejected, timeout"
        )
    );

    let (s, _) = h
        .send(
            "POST",
            "/v1/admin/approvals/p-acme/decide",
            Some("globex-token"),
            r#"{"decision":"approve"}"#,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another tenant's approval does not exist for this admin"
    );
    let (s, v) = h
        .send(
            "POST",
            "/v1/admin/approvals/p-acme/decide",
            Some("acme-token"),
            r#"{"decision":"maybe"}"#,
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (
            StatusCode::BAD_REQUEST,
            "decision must be \"approve\" or \"reject\""
        )
    );
    let (s, _) = h
        .send(
            "POST",
            "/v1/admin/approvals/p-acme/decide",
            Some("acme-token"),
            r#"{"decision":"approve","by":"x"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown field");
    let (s, v) = h
        .send(
            "POST",
            "/v1/admin/approvals/p-acme/decide",
            Some("acme-token"),
            r#"{"decision":"approve","decided_by":"alice","note":"ok"}"#,
        )
        .await;
    assert_eq!(
        (s, v["status"].clone(), v["decided_by"].clone()),
        (StatusCode::OK, json!("approved"), json!("alice"))
    );
    assert!(
        waiter.try_recv().unwrap().unwrap().approved,
        "the waiting call is woken"
    );
    let (s, v) = h
        .send(
            "POST",
            "/v1/admin/approvals/p-acme/decide",
            Some("acme-token"),
            r#"{"decision":"reject"}"#,
        )
        .await;
    assert_eq!(
        (s, v["error"].clone(), v["current"]["status"].clone()),
        (
            StatusCode::CONFLICT,
            json!("already decided"),
            json!("approved")
        )
    );
    let (s, _) = h
        .send(
            "POST",
            "/v1/admin/approvals/nope/decide",
            Some("root-token"),
            r#"{"decision":"reject"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let events = h.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].tool.as_str(),
            events[0].pending_id.as_str(),
            events[0].decided_by.as_str()
        ),
        ("admin/decide_approval", "p-acme", "alice")
    );
}

fn chained(i: i64, tenant: &str) -> AuditEvent {
    let mut e = AuditEvent::new(
        Timestamp::from_unix_micros(1_790_000_000_000_000 + i),
        Decision::Allow,
        "read_invoice",
    );
    e.tenant = tenant.into();
    e.reason = format!("a \"quoted\", comma reason\nwith a newline {i}");
    e.arg_keys = vec!["id".into(), "note".into()];
    e
}

#[sqlx::test(migrator = "crate::store::MIGRATOR")]
async fn audit_export_streams_csv_and_ndjson_that_round_trip(pool: sqlx::PgPool) {
    let h = Harness::with_store(Some(pool.clone()));
    let events: Vec<AuditEvent> = (0..30)
        .map(|i| chained(i, if i % 3 == 0 { "globex" } else { "acme" }))
        .collect();
    crate::store::audit::append(&pool, &events).await.unwrap();

    let (status, headers, body) = h
        .fetch("/v1/admin/audit/export?tenant=acme", "acme-token")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"intentgate-audit-acme-2"),
        "{disposition}"
    );
    assert!(disposition.ends_with("Z.csv\""), "{disposition}");
    let text = String::from_utf8(body).unwrap();
    // A minimal RFC 4180 reader: every record has the 22 columns, quotes and newlines intact.
    let records = parse_csv(&text);
    assert_eq!(records[0].len(), 22);
    assert_eq!(records[0][0], "ts");
    assert_eq!(records.len(), 1 + 20);
    assert!(records[1..].iter().all(|r| r.len() == 22 && r[6] == "acme"));
    assert_eq!(
        records[1][5],
        "a \"quoted\", comma reason\nwith a newline 29"
    );
    assert_eq!(records[1][10], "id;note");
    assert_eq!(records[1][20], "false");

    // NDJSON carries the chain columns: the export re-verifies without the database.
    let (_, headers, body) = h
        .fetch(
            "/v1/admin/audit/export?format=json&tenant=acme",
            "root-token",
        )
        .await;
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    let mut prev = String::new();
    for (line, e) in lines
        .iter()
        .rev()
        .zip(events.iter().filter(|e| e.tenant == "acme"))
    {
        assert_eq!(line["reason"], e.reason.as_str());
        assert_eq!(line["prev_hash"], prev.as_str());
        let hash = e.chain_hash(&prev);
        assert_eq!(line["hash"], hash.as_str());
        prev = hash;
    }

    // Tenant scope, bad format, and the foreign tenant.
    let (status, _, _) = h
        .fetch("/v1/admin/audit/export?format=xml", "root-token")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = h
        .fetch("/v1/admin/audit/export?tenant=globex", "acme-token")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = h.fetch("/v1/admin/audit/export", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "crate::store::MIGRATOR")]
async fn audit_export_stops_at_the_row_cap_and_says_so(pool: sqlx::PgPool) {
    // 250,000 rows, written directly (the cap is about paging, not chaining).
    sqlx::query(
        "INSERT INTO audit_events (ts, decision, tool, reason) \
         SELECT now(), 'allow', 'read_invoice', 'r' || g FROM generate_series(1, 250000) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    let h = Harness::with_store(Some(pool));
    let (status, headers, body) = h
        .fetch("/v1/admin/audit/export?format=json", "root-token")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-intentgate-row-cap"], "200000");
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 200_001);
    let trailer: Value = serde_json::from_str(lines[200_000]).unwrap();
    assert_eq!(trailer["truncated"], true);
    assert_eq!(trailer["row_cap"], 200_000);
    let next = trailer["next_before_id"].as_i64().unwrap();
    assert_eq!(next, 50_001);
    let (_, _, csv) = h.fetch("/v1/admin/audit/export", "root-token").await;
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), 1 + 200_000 + 1);
    assert!(
        csv.lines()
            .last()
            .unwrap()
            .starts_with("# truncated: row cap 200000 reached; continue with before_id=50001")
    );
    // The next page continues where the trailer says.
    let (_, _, rest) = h
        .fetch(
            &format!("/v1/admin/audit/export?format=json&before_id={next}"),
            "root-token",
        )
        .await;
    assert_eq!(String::from_utf8(rest).unwrap().lines().count(), 50_000);
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    records
}

const ALLOW_READS: &str = "package intentgate.policy\nimport rego.v1\ndefault decision := {\"allow\": false, \"reason\": \"no\"}\ndecision := {\"allow\": true, \"reason\": \"reads\"} if input.tool == \"send_email\"\n";

fn allows(state: &AdminState, tenant: &str, tool: &str) -> bool {
    let snap = state.snapshot.load();
    let input = intentgate_shared::policy::Input {
        tool,
        ..Default::default()
    }
    .to_value();
    snap.policy_for(tenant).evaluator().evaluate(input).allow
}

async fn policy_lifecycle(h: &mut Harness) {
    // Drafts compile on save.
    let (status, v) = h
        .send(
            "POST",
            "/v1/admin/policies/drafts",
            Some("root-token"),
            r#"{"name":"broken","rego_source":"package x\ndecision := {"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("rego compile error:"),
        "{v}"
    );
    let (status, _) = h
        .send(
            "POST",
            "/v1/admin/policies/drafts",
            Some("root-token"),
            r#"{"rego_source":"x","color":"red"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body =
        json!({"name": "reads", "rego_source": ALLOW_READS, "created_by": "alice"}).to_string();
    let (status, reads) = h
        .send(
            "POST",
            "/v1/admin/policies/drafts",
            Some("root-token"),
            &body,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reads}");
    let reads_id = reads["id"].as_str().unwrap().to_owned();
    assert_eq!(reads_id.len(), 16);
    let body =
        json!({"name": "acme strict", "rego_source": intentgate_shared::policy::DEFAULT_POLICY})
            .to_string();
    let (status, strict) = h
        .send(
            "POST",
            "/v1/admin/policies/drafts",
            Some("acme-token"),
            &body,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(strict["tenant"], "acme");
    let strict_id = strict["id"].as_str().unwrap().to_owned();

    // Scoping: acme sees its own draft only; another tenant's is 404, an explicit one 403.
    let (_, list) = h
        .send("GET", "/v1/admin/policies/drafts", Some("acme-token"), "")
        .await;
    assert_eq!(list["drafts"].as_array().unwrap().len(), 1);
    let (status, _) = h
        .send(
            "GET",
            &format!("/v1/admin/policies/drafts/{reads_id}"),
            Some("acme-token"),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h
        .send(
            "GET",
            "/v1/admin/policies/drafts?tenant=globex",
            Some("acme-token"),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, all) = h
        .send("GET", "/v1/admin/policies/drafts", Some("root-token"), "")
        .await;
    assert_eq!(all["drafts"].as_array().unwrap().len(), 2);

    // Nothing promoted: the startup policy, which denies everything.
    let (_, active) = h
        .send("GET", "/v1/admin/policies/active", Some("root-token"), "")
        .await;
    assert_eq!(active["source"], "embedded default");
    assert!(!allows(&h.state, "acme", "send_email"));

    // Promote on the default slot: every tenant without its own slot follows at once.
    let body = json!({"draft_id": reads_id, "promoted_by": "alice"}).to_string();
    let (status, v) = h
        .send(
            "POST",
            "/v1/admin/policies/active",
            Some("root-token"),
            &body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["swapped"].clone(),
            v["active"]["current_draft_id"].clone()
        ),
        (json!(true), json!(reads_id))
    );
    assert!(allows(&h.state, "acme", "send_email"));
    assert!(!allows(&h.state, "acme", "send_money"));
    let (_, active) = h
        .send(
            "GET",
            "/v1/admin/policies/active?tenant=acme",
            Some("acme-token"),
            "",
        )
        .await;
    assert_eq!(active["source"], "fallback");
    assert_eq!(active["current_draft"]["id"], reads_id.as_str());

    // acme's own slot overrides the default for acme only.
    let body = json!({"draft_id": strict_id}).to_string();
    let (status, _) = h
        .send(
            "POST",
            "/v1/admin/policies/active",
            Some("acme-token"),
            &body,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!allows(&h.state, "acme", "send_email"));
    assert!(allows(&h.state, "globex", "send_email"));
    // acme may not promote the superadmin's draft.
    let body = json!({"draft_id": reads_id}).to_string();
    let (status, _) = h
        .send(
            "POST",
            "/v1/admin/policies/active",
            Some("acme-token"),
            &body,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Drafts in use cannot be deleted; rollback is one step.
    let (status, _) = h
        .send(
            "DELETE",
            &format!("/v1/admin/policies/drafts/{reads_id}"),
            Some("root-token"),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, v) = h
        .send(
            "POST",
            "/v1/admin/policies/rollback",
            Some("acme-token"),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"], "no previous policy to roll back to");
    let body = json!({"rego_source": ALLOW_READS, "name": "reads v2"}).to_string();
    let (status, v2) = h
        .send(
            "PUT",
            &format!("/v1/admin/policies/drafts/{strict_id}"),
            Some("acme-token"),
            &body,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v2["name"], "reads v2");
    let body = json!({"draft_id": strict_id}).to_string();
    h.send(
        "POST",
        "/v1/admin/policies/active",
        Some("acme-token"),
        &body,
    )
    .await;
    assert!(
        allows(&h.state, "acme", "send_email"),
        "the re-promoted draft runs its new text"
    );

    // Clearing acme's slot falls back to the default slot; clearing that, to the startup policy.
    let (status, v) = h
        .send(
            "DELETE",
            "/v1/admin/policies/active",
            Some("acme-token"),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["cleared"]["current_draft_id"], strict_id.as_str());
    assert!(allows(&h.state, "acme", "send_email"));
    h.send(
        "DELETE",
        "/v1/admin/policies/active",
        Some("root-token"),
        "",
    )
    .await;
    assert!(!allows(&h.state, "acme", "send_email"));
    let (status, _) = h
        .send(
            "DELETE",
            &format!("/v1/admin/policies/drafts/{strict_id}"),
            Some("acme-token"),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Every pointer change is an admin audit event.
    let tools: Vec<String> = h.events().into_iter().map(|e| e.tool).collect();
    for t in [
        "admin/promote_policy",
        "admin/clear_policy",
        "admin/create_policy_draft",
        "admin/update_policy_draft",
        "admin/delete_policy_draft",
    ] {
        assert!(tools.iter().any(|x| x == t), "{t} missing from {tools:?}");
    }
}

#[tokio::test]
async fn policy_lifecycle_in_memory() {
    let mut h = Harness::with_policies(crate::policies::PolicyStore::Memory(Mutex::default()));
    policy_lifecycle(&mut h).await;
}

#[sqlx::test(migrator = "crate::store::MIGRATOR")]
async fn policy_lifecycle_in_postgres(pool: sqlx::PgPool) {
    let mut h = Harness::with_policies(crate::policies::PolicyStore::Postgres(pool));
    policy_lifecycle(&mut h).await;
}

#[tokio::test]
async fn policy_routes_without_a_store_are_503() {
    let h = Harness::new();
    let (status, v) = h
        .send("GET", "/v1/admin/policies/drafts", Some("root-token"), "")
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"], "policy store is off");
}

fn history_event(tool: &str, decision: Decision, check: &str, pending: &str) -> AuditEvent {
    let mut e = AuditEvent::new(Timestamp::now(), decision, tool);
    e.check = check.into();
    e.pending_id = pending.into();
    e.tenant = "acme".into();
    e.agent_id = "agent-1".into();
    e.arg_keys = vec!["amount".into()];
    e
}

#[sqlx::test(migrator = "crate::store::MIGRATOR")]
async fn dry_run_replays_one_decision_per_call_with_hand_counted_results(pool: sqlx::PgPool) {
    use Decision::{Allow, Block, Escalate};
    let mut history = Vec::new();
    for _ in 0..3 {
        history.push(history_event("read_invoice", Allow, "", ""));
    }
    for _ in 0..2 {
        history.push(history_event("send_money", Block, "policy", ""));
    }
    // One escalated call: escalation, approval, forward. Replayed once, as the escalation.
    history.push(history_event("wire_money", Escalate, "policy", "p1"));
    history.push(history_event("wire_money", Allow, "policy", "p1"));
    history.push(history_event("wire_money", Allow, "", "p1"));
    // Never reached the policy, or not a call: skipped.
    history.push(history_event("read_invoice", Block, "capability", ""));
    history.push(history_event("admin/mint", Allow, "capability", ""));
    // Allowed by the policy, refused later by the budget: the policy said allow.
    history.push(history_event("read_invoice", Block, "budget", ""));
    crate::store::audit::append(&pool, &history).await.unwrap();

    let h = Harness::with_store(Some(pool));
    let candidate = "package intentgate.policy\nimport rego.v1\ndefault decision := {\"allow\": false, \"reason\": \"no\"}\ndecision := {\"allow\": true, \"reason\": \"ok\"} if input.tool in {\"read_invoice\", \"send_money\"}\n";
    let (status, v) = h
        .send(
            "POST",
            "/v1/admin/policies/dry-run",
            Some("root-token"),
            &json!({"rego": candidate}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["summary"],
        json!({
            "events_evaluated": 7, "would_allow": 6, "would_block": 1, "would_escalate": 0,
            "policy_error": 0, "allow_to_block": 0, "allow_to_escalate": 0, "block_to_allow": 2,
            "block_to_escalate": 0, "escalate_to_allow": 0, "escalate_to_block": 1
        })
    );
    assert_eq!(v["samples"].as_array().unwrap().len(), 3);
    assert_eq!(v["samples"][0]["tool"], "wire_money");
    assert_eq!(v["samples"][0]["original_decision"], "escalate");
    assert_eq!(v["warnings"], json!([]));

    // A candidate reading arguments warns that none were stored; limits apply.
    let reads_args = "package intentgate.policy\nimport rego.v1\ndecision := {\"allow\": input.args.amount == null, \"reason\": \"r\"}\n";
    let (_, v) = h
        .send(
            "POST",
            "/v1/admin/policies/dry-run",
            Some("acme-token"),
            &json!({"rego": reads_args, "limit": 2, "max_samples": 1}).to_string(),
        )
        .await;
    assert_eq!(v["summary"]["events_evaluated"], 2);
    assert_eq!(v["window"]["tenant"], "acme");
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no replayed event stored argument values")
    );

    // A candidate that fails at evaluation counts as policy errors, every one sampled.
    let conflicting = "package intentgate.policy\nimport rego.v1\ndecision := {\"allow\": true}\ndecision := {\"allow\": false}\n";
    let (_, v) = h
        .send(
            "POST",
            "/v1/admin/policies/dry-run",
            Some("root-token"),
            &json!({"rego": conflicting}).to_string(),
        )
        .await;
    assert_eq!(v["summary"]["policy_error"], 7, "{v}");
    assert_eq!(v["samples"][0]["candidate_decision"], "error");

    // Bad input: precise 400s; a foreign tenant 403; no history matched warns.
    for (body, want) in [
        (
            json!({"rego": ""}),
            "rego is required (a non-empty Rego source)",
        ),
        (
            json!({"rego": "package x\ndecision := {"}),
            "compile candidate",
        ),
        (
            json!({"rego": candidate, "from": "yesterday"}),
            "from: invalid RFC 3339",
        ),
    ] {
        let (status, v) = h
            .send(
                "POST",
                "/v1/admin/policies/dry-run",
                Some("root-token"),
                &body.to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(v["error"].as_str().unwrap().starts_with(want), "{v}");
    }
    let (status, _) = h
        .send(
            "POST",
            "/v1/admin/policies/dry-run",
            Some("acme-token"),
            &json!({"rego": candidate, "tenant": "globex"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, v) = h
        .send(
            "POST",
            "/v1/admin/policies/dry-run",
            Some("root-token"),
            &json!({"rego": candidate, "tool": "nothing"}).to_string(),
        )
        .await;
    assert_eq!(v["warnings"], json!(["no audit events matched"]));
}

#[tokio::test]
async fn dry_run_without_an_audit_store_is_503() {
    let h = Harness::new();
    let (status, v) = h
        .send(
            "POST",
            "/v1/admin/policies/dry-run",
            Some("root-token"),
            r#"{"rego":"x"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("INTENTGATE_AUDIT_PERSIST")
    );
}

#[tokio::test]
async fn integrations_are_listed_for_the_superadmin_only() {
    let h = Harness::new();
    let (status, v) = h
        .send("GET", "/v1/admin/integrations", Some("root-token"), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = v["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["splunk", "datadog", "sentinel"]);
    assert_eq!(v["integrations"][0]["configured"], false);
    let (status, _) = h
        .send("GET", "/v1/admin/integrations", Some("acme-token"), "")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h.send("GET", "/v1/admin/integrations", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn relayed_client_addresses_are_believed_only_with_the_relay_secret() {
    let h = Harness::new();
    let spoof = [("x-intentgate-relayed-for", "10.0.0.1:1")];
    // A local process claiming to relay for 10.0.0.1 without the secret: its failures count
    // against itself (the loopback peer), which ends up throttled.
    for _ in 0..10 {
        let (status, _) = h
            .send_with("GET", "/v1/admin/tenants", Some("wrong"), "", &spoof)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = h
        .send("GET", "/v1/admin/tenants", Some("root-token"), "")
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // The real relay (with the secret) speaks for another client, who is not throttled.
    let relayed = [
        ("x-intentgate-relayed-for", "10.0.0.2:1"),
        ("x-intentgate-relay-secret", "relay-s3cret"),
    ];
    let (status, _) = h
        .send_with("GET", "/v1/admin/tenants", Some("root-token"), "", &relayed)
        .await;
    assert_eq!(status, StatusCode::OK);
    let wrong_secret = [
        ("x-intentgate-relayed-for", "10.0.0.2:1"),
        ("x-intentgate-relay-secret", "guess"),
    ];
    let (status, _) = h
        .send_with(
            "GET",
            "/v1/admin/tenants",
            Some("root-token"),
            "",
            &wrong_secret,
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
