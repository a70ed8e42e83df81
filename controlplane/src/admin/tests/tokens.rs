//! Minting and revoking tokens, and the scoped lists.

use super::*;

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
