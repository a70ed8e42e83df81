//! Fixtures shared by the benchmarks, so every bench measures the same inputs.

// Benchmarks run fixed fixtures, never requests: a broken fixture should stop the run loudly.
#![expect(
    clippy::panic,
    reason = "a harness: a failed set-up should stop it loudly"
)]

use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::key_ring::{KeyRing, MasterKey};
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::{Caveat, MintRequest, Token};

/// Fixed time for fixtures.
pub const NOW: i64 = 1_790_000_000;

/// A ring with one fixed key.
pub fn key_ring() -> KeyRing {
    KeyRing::single(MasterKey::from_bytes(&[42; 32]))
}

/// A wire token with `n` caveats (agent_lock, exp, tool_allow, tool_deny, max_calls, ...).
pub fn wire_token(n: usize) -> String {
    let all = [
        Caveat::agent_lock("bench-agent"),
        Caveat::exp(NOW + 3600),
        Caveat::tool_allow(["read_invoice", "web_search"]),
        Caveat::tool_deny(["delete"]),
        Caveat::max_calls(10_000_000),
    ];
    let req = MintRequest {
        subject: "bench-agent".into(),
        tenant: "acme".into(),
        caveats: all.into_iter().cycle().take(n).collect(),
        ..MintRequest::default()
    };
    match Token::mint(key_ring().current(), req, NOW) {
        Ok(t) => t.encode(),
        Err(e) => panic!("fixture token: {e}"),
    }
}

/// A typical allowed tools/call event.
pub fn audit_event() -> AuditEvent {
    let mut e = AuditEvent::new(
        Timestamp::from_unix_micros(1_790_000_000_123_456),
        Decision::Allow,
        "read_invoice",
    )
    .with_check(Check::Policy);
    e.reason = "read-only tool".into();
    e.tenant = "acme".into();
    e.agent_id = "bench-agent".into();
    e.arg_keys = vec!["id".into()];
    e.capability_token_id = "AAAAAAAAAAAAAAAAAAAAAA".into();
    e.root_capability_token_id = "AAAAAAAAAAAAAAAAAAAAAA".into();
    e.caveat_count = 5;
    e.latency_ms = 1;
    e.remote_ip = "127.0.0.1:50000".into();
    e
}
