//! Dry runs over the audit history.

use super::*;

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
