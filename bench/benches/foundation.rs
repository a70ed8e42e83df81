//! Foundation stages: token decode + verify (1 and 5 caveats), caveat check, canonical audit
//! bytes + chain hash, policy input build and evaluation (register VM).

#![expect(
    clippy::panic,
    reason = "a harness: a failed set-up should stop it loudly"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use intentgate_bench::{NOW, audit_event, key_ring, wire_token};
use intentgate_shared::policy::{CapabilityInput, Input, Policy, args_from_json};
use intentgate_shared::token::Token;
use std::hint::black_box;

fn token(c: &mut Criterion) {
    let ring = key_ring();
    for n in [1, 5] {
        let wire = wire_token(n);
        c.bench_function(&format!("token/decode_verify/{n}_caveats"), |b| {
            b.iter(|| Token::decode_verified(black_box(&wire), &ring))
        });
        let token = Token::decode(&wire).unwrap_or_else(|e| panic!("{e}"));
        c.bench_function(&format!("token/verify_only/{n}_caveats"), |b| {
            b.iter(|| black_box(&token).verify(&ring))
        });
        c.bench_function(&format!("token/check/{n}_caveats"), |b| {
            b.iter(|| black_box(&token).check(NOW, "bench-agent", "read_invoice"))
        });
    }
}

fn audit(c: &mut Criterion) {
    let event = audit_event();
    let prev = "a".repeat(64);
    let mut buf = Vec::with_capacity(512);
    c.bench_function("audit/canonical_bytes", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&event).write_canonical(&mut buf);
            buf.len()
        })
    });
    c.bench_function("audit/canonical_and_hash", |b| {
        b.iter(|| black_box(&event).chain_hash(&prev))
    });
}

fn policy(c: &mut Criterion) {
    let policy = Policy::default_policy().unwrap_or_else(|e| panic!("{e}"));
    let mut ev = policy.evaluator();
    let cap = CapabilityInput {
        subject: "bench-agent".into(),
        tenant: "acme".into(),
        ..Default::default()
    }
    .to_value();
    let args = r#"{"id":"bench-1"}"#;
    let build = |tool| Input {
        tool,
        args: Some(args_from_json(args).unwrap_or_else(|e| panic!("{e}"))),
        agent_id: "bench-agent",
        capability: Some(cap.clone()),
        ..Input::default()
    };
    c.bench_function("policy/input_build", |b| {
        b.iter(|| build(black_box("read_invoice")).to_value())
    });
    let allow = build("read_invoice").to_value();
    let deny = build("launch_rocket").to_value();
    c.bench_function("policy/eval_allow", |b| {
        b.iter(|| ev.evaluate(black_box(allow.clone())))
    });
    c.bench_function("policy/eval_default_deny", |b| {
        b.iter(|| ev.evaluate(black_box(deny.clone())))
    });
    c.bench_function("policy/compile_default", |b| b.iter(Policy::default_policy));
}

criterion_group!(benches, token, audit, policy);
criterion_main!(benches);
