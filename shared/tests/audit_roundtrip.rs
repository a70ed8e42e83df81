//! `AuditEvent`'s `Deserialize` against the Go vectors: every canonical line, and every
//! event as the Go generator's input object, reads back into an event whose canonical bytes
//! (and so its chain hash) are the Go bytes.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::path::Path;

use intentgate_shared::audit::AuditEvent;
use serde_json::Value;

fn go_audit() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/go_audit.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The vector cases: each standalone event and each event of each chain.
fn cases(v: &Value) -> Vec<&Value> {
    let events = v["events"].as_array().unwrap().iter();
    let chained = v["chains"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["events"].as_array().unwrap().iter());
    events.chain(chained).collect()
}

#[test]
fn go_audit_lines_deserialize_to_the_same_canonical_bytes() {
    let v = go_audit();
    let mut checked = 0;
    for case in cases(&v) {
        let name = text(&case["name"]);
        let canonical = text(&case["canonical_json"]);
        // Invalid UTF-8 reaches the canonical bytes as `\ufffd` escapes; read back, it is a
        // valid U+FFFD, which Go writes as itself: that line cannot round-trip by design.
        if case.get("invalid_utf8_b64").is_some() {
            continue;
        }
        let from_line: AuditEvent = serde_json::from_str(canonical).unwrap();
        assert_eq!(
            String::from_utf8(from_line.canonical()).unwrap(),
            canonical,
            "{name}: canonical line"
        );
        let from_input: AuditEvent = serde::Deserialize::deserialize(&case["input"]).unwrap();
        assert_eq!(from_input, from_line, "{name}: Go input object");
        if let Some(hash) = case.get("hash") {
            assert_eq!(
                from_line.chain_hash(text(&case["prev_hash"])),
                text(hash),
                "{name}"
            );
        }
        // The full JSON (with `arg_values`) reads back to the same event.
        let full: AuditEvent = serde_json::from_slice(&from_line.to_json()).unwrap();
        assert_eq!(full, from_line, "{name}: to_json");
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} audit vectors checked");
}
