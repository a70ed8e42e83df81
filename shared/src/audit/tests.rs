use super::*;

fn event(i: i64) -> AuditEvent {
    let mut e = AuditEvent::new(
        Timestamp::from_unix_micros(1_790_000_000_000_000 + i),
        Decision::Allow,
        "read_x",
    )
    .with_check(Check::Policy);
    e.tenant = "acme".into();
    e.latency_ms = i;
    e
}

fn chain(n: i64) -> Vec<ChainedEvent> {
    let mut prev = String::new();
    (0..n)
        .map(|i| {
            let event = event(i);
            let hash = event.chain_hash(&prev);
            let row = ChainedEvent {
                event,
                prev_hash: prev.clone(),
                hash: hash.clone(),
            };
            prev = hash;
            row
        })
        .collect()
}

#[test]
fn canonical_bytes_follow_go_order_and_omit_empty_fields() {
    let mut e = AuditEvent::new(
        Timestamp::parse_rfc3339("2026-05-14T10:11:12.1234567Z").unwrap(),
        Decision::Block,
        "t<1>",
    );
    e.arg_keys = vec!["b".into(), "a".into()];
    e.arg_values = Some(serde_json::Map::from_iter([(
        "a".to_string(),
        serde_json::json!(1),
    )]));
    e.requires_step_up = true;
    let got = String::from_utf8(e.canonical()).unwrap();
    assert_eq!(
        got,
        r#"{"ts":"2026-05-14T10:11:12.123456Z","event":"intentgate.tool_call","schema_version":"6","decision":"block","tool":"t\u003c1\u003e","arg_keys":["b","a"],"latency_ms":0,"requires_step_up":true}"#
    );
    let full = String::from_utf8(e.to_json()).unwrap();
    assert!(
        full.contains(r#""arg_keys":["b","a"],"arg_values":{"a":1},"latency_ms""#),
        "{full}"
    );
}

#[test]
fn hash_is_sha256_of_prev_hex_and_canonical() {
    let e = event(1);
    let mut joined = b"abc".to_vec();
    joined.extend_from_slice(&e.canonical());
    assert_eq!(e.chain_hash("abc"), hex_sha256(&joined));
    assert_eq!(
        hex_sha256(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn empty_tenant_chains_as_default() {
    assert_eq!(chain_key(""), "default");
    assert_eq!(chain_key("acme"), "acme");
}

#[test]
fn intact_chain_verifies() {
    let rows = chain(5);
    let walk = verify_chain(&rows);
    assert_eq!(walk.verified, 5);
    assert_eq!(walk.broken, None);
    assert_eq!(walk.last_hash.as_deref(), Some(rows[4].hash.as_str()));
}

#[test]
fn modified_row_is_detected() {
    let mut rows = chain(5);
    rows[2].event.reason = "edited".into();
    let broken = verify_chain(&rows).broken.unwrap();
    assert_eq!((broken.index, broken.reason), (2, TAMPERED_ROW));
    assert_eq!(broken.stored_hash, rows[2].hash);
}

#[test]
fn deleted_row_is_detected() {
    let mut rows = chain(5);
    rows.remove(2);
    let walk = verify_chain(&rows);
    let broken = walk.broken.unwrap();
    assert_eq!((broken.index, broken.reason), (2, BROKEN_LINK));
    assert_eq!(broken.expected_hash, rows[1].hash);
    assert_eq!(walk.verified, 2);
}

#[test]
fn pre_chain_rows_are_skipped() {
    let mut rows = chain(3);
    rows.insert(
        0,
        ChainedEvent {
            event: event(9),
            prev_hash: String::new(),
            hash: String::new(),
        },
    );
    let walk = verify_chain(&rows);
    assert_eq!((walk.verified, walk.skipped, walk.broken), (3, 1, None));
}
