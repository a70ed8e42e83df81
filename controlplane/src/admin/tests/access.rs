//! Authentication, throttling, tenant scoping, elevation ids and relayed client addresses.

use super::*;

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
