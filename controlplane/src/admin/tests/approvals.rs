//! Listing and deciding approvals.

use super::*;

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
    assert!(matches!(h.state.approvals, Some(Approvals::Memory(_))));
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
