//! The data plane's request stages and the whole in-process decision: HTTP head parse,
//! JSON-RPC envelope parse, and `Core::decide` (capability with a warm token cache, policy on
//! the VM, budget) for an allowed and a denied call; revocation lookup, budget charge and
//! audit ring push on their own. Token verify, policy input/eval and canonical bytes + hash
//! are in `foundation.rs`.

#![expect(
    clippy::unwrap_used,
    reason = "a harness: a failed set-up should stop it loudly"
)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use intentgate_bench::{NOW, key_ring, wire_token};
use intentgate_dataplane::audit_ring::{self, AuditCounters};
use intentgate_dataplane::budget::Budget;
use intentgate_dataplane::decision::{Call, Core, Settings, TOOLS_CALL};
use intentgate_dataplane::http::parse_head;
use intentgate_dataplane::jsonrpc::{Scratch, parse_request};
use intentgate_shared::audit::AuditEvent;
use intentgate_shared::audit_sink::AuditSink;
use intentgate_shared::policy::Policy;
use intentgate_shared::snapshot::{RevocationSet, Snapshot};
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::Target;

const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"bench-1"}}}"#;

fn stages(c: &mut Criterion) {
    let token = wire_token(5);
    let head = format!(
        "POST /v1/mcp HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    c.bench_function("http_parse_head", |b| {
        b.iter(|| parse_head(black_box(head.as_bytes()), 1 << 20))
    });
    let mut scratch = Scratch::new();
    c.bench_function("jsonrpc_parse_tools_call", |b| {
        b.iter(|| {
            let r = parse_request(&mut scratch, black_box(BODY.as_bytes())).unwrap();
            r.tool_call().unwrap().arguments.is_some()
        })
    });
    // The same work done the way the first build did it (serde_json for the envelope, then
    // the policy engine's own JSON parse of the arguments), for a ratio in one run.
    c.bench_function("jsonrpc_parse_tools_call_serde_baseline", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_slice(black_box(BODY.as_bytes())).unwrap();
            let args = v["params"]["arguments"].to_string();
            regorus::Value::from_json_str(&args).unwrap()
        })
    });
}

fn decision(c: &mut Criterion) {
    let snap = Snapshot {
        version: 1,
        built_at: Timestamp::from_unix_micros(0),
        keys: key_ring(),
        revoked: Arc::new(RevocationSet::default()),
        default_policy: Policy::default_policy().unwrap(),
        tenant_policies: Arc::new(HashMap::new()),
    };
    let settings = Settings {
        require_capability: true,
        require_intent: false,
        require_budget: false,
    };
    // No max_calls caveat among the first four: the budget stage counts per agent only.
    let auth = format!("Bearer {}", wire_token(4));
    let args = regorus::Value::from_json_str(r#"{"id":"bench-1"}"#).unwrap();
    let budget = Budget::new(None, None);
    let mut core = Core::new();
    let call = |tool| Call {
        authorization: Some(auth.as_bytes()),
        intent_prompt: None,
        tool,
        method: TOOLS_CALL,
        target: Target::Tool(tool),
        arguments: Some(&args),
        params: None,
        remote_ip: "127.0.0.1:50000",
        now: Timestamp::from_unix_micros((NOW + 10) * 1_000_000),
    };
    c.bench_function("decision_allow_warm_token", |b| {
        b.iter(|| core.decide(&snap, &settings, &budget, black_box(&call("read_invoice"))))
    });
    c.bench_function("decision_deny_capability_warm_token", |b| {
        b.iter(|| core.decide(&snap, &settings, &budget, black_box(&call("send_money"))))
    });
    c.bench_function("decision_allow_cold_token", |b| {
        b.iter(|| {
            let mut cold = Core::new();
            cold.decide(&snap, &settings, &budget, black_box(&call("read_invoice")))
        })
    });
}

/// The stages that read or write shared state: revocation lookup in a 10k-entry set, a
/// budget charge against a `max_calls` caveat, and an audit record pushed into a core's ring
/// (a drain thread empties it into a sink that drops the records, as a fast writer would).
fn shared_state(c: &mut Criterion) {
    let mut revoked = RevocationSet::default();
    for i in 0..10_000 {
        revoked.insert(&format!("jti-{i:016}"), "acme");
    }
    c.bench_function("revocation_lookup_10k/miss", |b| {
        b.iter(|| revoked.is_revoked(black_box("AAAAAAAAAAAAAAAAAAAAAA"), "acme"))
    });
    c.bench_function("revocation_lookup_10k/hit", |b| {
        b.iter(|| revoked.is_revoked(black_box("jti-0000000000004242"), "acme"))
    });
    let budget = Budget::new(Some(u64::MAX), Some(u64::MAX));
    c.bench_function("budget_charge_max_calls", |b| {
        b.iter(|| {
            budget.charge(
                Some(black_box("root-jti")),
                Some(u64::MAX),
                "acme",
                "bench-agent",
                "read_invoice",
                NOW,
            )
        })
    });
    struct Discard;
    impl AuditSink for Discard {
        fn write_batch(&mut self, batch: &mut Vec<AuditEvent>) {
            batch.clear();
        }
    }
    let (mut producers, drain) = audit_ring::start(1, Discard, Arc::new(AuditCounters::default()));
    let mut producer = producers.pop().unwrap();
    let event = intentgate_bench::audit_event();
    c.bench_function("audit_ring_push", |b| {
        b.iter(|| {
            // A full ring means the drain fell behind: retry as the gateway would not (it
            // answers 503), so the figure stays the push itself.
            while producer.push(black_box(event.clone())).is_err() {
                std::hint::spin_loop();
            }
        })
    });
    drop(producer);
    drop(drain);
}

/// What metrics add to each request: two clock reads and one per-core counter and histogram
/// update (`connection::Worker::connection`), compared with the decision it wraps.
fn metrics(c: &mut Criterion) {
    use intentgate_dataplane::metrics::Metrics;
    let m = Metrics::new(2);
    let core = m.core(0);
    c.bench_function("metrics_request_record", |b| {
        b.iter(|| {
            let started = std::time::Instant::now();
            core.request(
                intentgate_dataplane::metrics::route_index(black_box(b"/v1/mcp")),
                1,
                intentgate_dataplane::metrics::status_index(black_box(b"HTTP/1.1 200 OK")),
                started.elapsed(),
            );
        })
    });
    let decisions = intentgate_dataplane::metrics::DecisionMetrics::default();
    let mut out = String::new();
    c.bench_function("metrics_scrape_render_2_cores", |b| {
        b.iter(|| {
            out.clear();
            m.render(&decisions, &mut out);
            black_box(out.len())
        })
    });
}

/// What per-call stage timing and tracing add to a `tools/call` (`dataplane::stages`): the
/// clock reads and check histograms every call pays, a sampler that declines (no
/// allocation), and a traced call (spans recorded and attached to the audit record). The
/// spans' OTLP encoding and export run in the control plane, off the request path.
fn tracing_stages(c: &mut Criterion) {
    use intentgate_dataplane::metrics::CoreMetrics;
    use intentgate_dataplane::stages::{self, Stages};
    use intentgate_shared::audit::Decision;
    use intentgate_shared::trace::{IdGen, Root, Sampler};
    let m = CoreMetrics::default();
    let mut ids = IdGen::seeded(9);
    let off = Sampler::ParentBased(Root::AlwaysOff);
    let on = Sampler::AlwaysOn;
    for (name, sampler) in [
        ("stages_tracing_off", None),
        ("stages_tracing_on_not_sampled", Some(&off)),
        ("stages_tracing_on_sampled", Some(&on)),
    ] {
        let mut e = AuditEvent::new(
            Timestamp::from_unix_micros(NOW * 1_000_000),
            Decision::Allow,
            "t",
        );
        // The server reads the clock at the request's start and around the upstream call
        // anyway (request and forward metrics); stages reuse those reads.
        let existing = std::time::Instant::now();
        c.bench_function(name, |b| {
            b.iter(|| {
                let mut s = Stages::begin(existing, sampler, None, &mut ids);
                for stage in [stages::CAPABILITY, stages::POLICY, stages::BUDGET] {
                    s.end(stage, &m);
                }
                s.mark_at(existing);
                black_box(s.next_traceparent());
                s.end_at(stages::UPSTREAM, existing, &m);
                s.finish(&mut e);
                black_box(e.trace.take())
            })
        });
    }
    // One clock read, for scale: stages add three per call (capability, policy, budget ends).
    c.bench_function("instant_now", |b| b.iter(std::time::Instant::now));
}

criterion_group!(
    benches,
    stages,
    decision,
    shared_state,
    metrics,
    tracing_stages
);
criterion_main!(benches);
