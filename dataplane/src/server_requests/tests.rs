use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

#[test]
fn a_request_is_answered_once_on_its_own_session() {
    let store = ServerRequests::default();
    let now = Instant::now();
    store.record(
        "s1",
        id_key(&json!(0)).unwrap(),
        "sampling/createMessage",
        now,
    );
    store.record(
        "s1",
        id_key(&json!("e-1")).unwrap(),
        "elicitation/create",
        now,
    );
    assert_eq!(store.len(), 2);
    // Another session, another id or another spelling of the id's type: nothing.
    assert_eq!(store.method_of("s2", "0", now), None);
    assert_eq!(store.method_of("s1", "1", now), None);
    assert_eq!(store.method_of("s1", "\"0\"", now), None);
    assert_eq!(
        store.method_of("s1", "0", now).as_deref(),
        Some("sampling/createMessage")
    );
    assert_eq!(
        store.take("s1", "0", now).as_deref(),
        Some("sampling/createMessage")
    );
    assert_eq!(store.take("s1", "0", now), None, "answered once");
    assert_eq!(
        store.take("s1", "\"e-1\"", now).as_deref(),
        Some("elicitation/create")
    );
    assert!(store.is_empty());
}

#[test]
fn ids_are_keyed_by_their_json_value_not_their_spelling() {
    let parsed: serde_json::Value = serde_json::from_str(r#""\u0061""#).unwrap();
    assert_eq!(id_key(&parsed), id_key(&json!("a")));
    assert_eq!(id_key(&json!(7)).as_deref(), Some("7"));
    for no_id in [json!(null), json!(1.5), json!({"a": 1}), json!([1])] {
        assert_eq!(id_key(&no_id), None, "{no_id}");
    }
    assert_eq!(id_key(&json!("x".repeat(300))), None);
}

#[test]
fn requests_expire_and_the_oldest_go_first_when_full() {
    let store = ServerRequests::new(2, Duration::from_secs(60));
    let t0 = Instant::now();
    store.record("s", "1".into(), "roots/list", t0);
    assert_eq!(
        store.method_of("s", "1", t0 + Duration::from_secs(60)),
        None
    );
    assert_eq!(store.take("s", "1", t0 + Duration::from_secs(61)), None);
    store.record("s", "2".into(), "roots/list", t0);
    store.record("s", "3".into(), "roots/list", t0);
    store.record("s", "4".into(), "roots/list", t0);
    assert_eq!(store.len(), 2);
    assert_eq!(store.take("s", "2", t0), None, "the oldest was forgotten");
    assert!(store.take("s", "3", t0).is_some());
    assert!(store.take("s", "4", t0).is_some());
    // Expired entries make room before live ones are dropped.
    store.record("s", "5".into(), "roots/list", t0);
    let later = t0 + Duration::from_secs(61);
    store.record("s", "6".into(), "roots/list", later);
    store.record("s", "7".into(), "roots/list", later);
    assert!(store.take("s", "6", later).is_some());
    assert!(store.take("s", "7", later).is_some());
}

#[test]
fn answered_requests_do_not_grow_the_order_without_bound() {
    let store = ServerRequests::new(4, Duration::from_secs(60));
    let now = Instant::now();
    store.record("s", "keep".into(), "roots/list", now);
    for i in 0..1000 {
        store.record("s", i.to_string(), "roots/list", now);
        assert!(store.take("s", &i.to_string(), now).is_some());
    }
    assert!(store.lock().order.len() <= 8);
    assert_eq!(
        store.method_of("s", "keep", now).as_deref(),
        Some("roots/list")
    );
}

#[test]
fn oversized_methods_and_ids_are_not_kept() {
    let store = ServerRequests::default();
    let now = Instant::now();
    store.record("s", "1".into(), &"m".repeat(200), now);
    store.record("s", "x".repeat(300), "roots/list", now);
    assert!(store.is_empty());
}
