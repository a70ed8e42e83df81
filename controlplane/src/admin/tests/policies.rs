//! The policy lifecycle, in memory and in Postgres, and the routes without a store.

use super::*;

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
