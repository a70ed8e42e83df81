//! Policy dry-run (COMPATIBILITY.md §7.3): replays a candidate policy over the persisted audit history
//! and reports how its decisions would differ. Pages are read by keyset (newest first) and
//! evaluated on the control plane's blocking threads, one evaluator per thread, so a long
//! replay never runs on a data plane core.
//!
//! Unlike the Go gateway, one decision is replayed per call: records of calls the policy never
//! saw (refused at the capability or intent check), admin records, and the approval and
//! forward records that follow an escalation are skipped.

use std::collections::HashSet;
use std::sync::Arc;

use regorus::Value;
use serde_json::json;
use sqlx::PgPool;

use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::policy::{Input, Policy};
use intentgate_shared::timestamp::Timestamp;

use crate::store::audit::{self as sql, Filter};

/// Events replayed at most by default, and the ceiling.
pub const DEFAULT_LIMIT: usize = 10_000;
/// See [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: usize = 100_000;
/// Samples returned by default, and the ceiling.
pub const DEFAULT_SAMPLES: usize = 100;
/// See [`DEFAULT_SAMPLES`].
pub const MAX_SAMPLES: usize = 1000;
const PAGE: i64 = 1000;

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Window start.
    pub from: Option<Timestamp>,
    /// Window end.
    pub to: Option<Timestamp>,
    /// Chain scope.
    pub tenant: Option<String>,
    /// Only this agent.
    pub agent_id: Option<String>,
    /// Only this tool.
    pub tool: Option<String>,
    /// Events replayed at most.
    pub limit: usize,
    /// Samples returned at most.
    pub max_samples: usize,
}

/// The three outcomes a policy can have, plus failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allow,
    Block,
    Escalate,
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Block => "block",
            Self::Escalate => "escalate",
            Self::Error => "error",
        }
    }
}

/// What the policy originally decided for a replayable record, or `None` to skip it.
fn original(e: &AuditEvent, seen_pending: &mut HashSet<String>) -> Option<Outcome> {
    if e.tool.starts_with("admin/")
        || matches!(e.check.known(), Some(Check::Capability | Check::Intent))
    {
        return None;
    }
    if !e.pending_id.is_empty() {
        // Only the escalation itself: the approval and the forward records are the same call.
        if e.decision != Decision::Escalate || !seen_pending.insert(e.pending_id.clone()) {
            return None;
        }
        return Some(Outcome::Escalate);
    }
    match (e.check.known(), e.decision.known()) {
        (Some(Check::Policy), Some(Decision::Block)) => Some(Outcome::Block),
        (Some(Check::Policy), Some(Decision::Escalate)) => Some(Outcome::Escalate),
        // Allowed by the policy (later stages may still have refused it).
        _ => Some(Outcome::Allow),
    }
}

/// The input a record gives the candidate: stored argument values when there are any, else
/// each argument key mapped to null.
fn input_of(e: &AuditEvent) -> Value {
    let args = match &e.arg_values {
        Some(v) if !v.is_empty() => Value::from(serde_json::Value::Object(v.clone())),
        _ => {
            let mut map = std::collections::BTreeMap::new();
            for k in &e.arg_keys {
                map.insert(Value::from(k.as_str()), Value::Null);
            }
            Value::from(map)
        }
    };
    let mut intent = std::collections::BTreeMap::new();
    intent.insert(
        Value::from("summary"),
        Value::from(e.intent_summary.as_str()),
    );
    Input {
        tool: &e.tool,
        args: Some(args),
        agent_id: &e.agent_id,
        session_id: &e.session_id,
        intent: Some(Value::from(intent)),
        ..Input::default()
    }
    .to_value()
}

fn evaluate(policy: &Policy, events: &[AuditEvent]) -> Vec<(Outcome, String)> {
    let mut ev = policy.evaluator();
    events
        .iter()
        .map(|e| {
            let d = ev.evaluate(input_of(e));
            let o = if d.error {
                Outcome::Error
            } else if d.escalate {
                Outcome::Escalate
            } else if d.allow {
                Outcome::Allow
            } else {
                Outcome::Block
            };
            (o, d.reason)
        })
        .collect()
}

/// Evaluates a page on the blocking threads, split across the available cores.
async fn evaluate_parallel(policy: &Policy, events: Vec<AuditEvent>) -> Vec<(Outcome, String)> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = events.len().div_ceil(threads).max(64);
    let events = Arc::new(events);
    let mut tasks = Vec::new();
    for start in (0..events.len()).step_by(chunk) {
        let (policy, events) = (policy.clone(), Arc::clone(&events));
        tasks.push(tokio::task::spawn_blocking(move || {
            let end = (start + chunk).min(events.len());
            evaluate(&policy, &events[start..end])
        }));
    }
    let mut out = Vec::with_capacity(events.len());
    for t in tasks {
        match t.await {
            Ok(part) => out.extend(part),
            // A panicking evaluation counts as a policy error for its events.
            Err(_) => out.extend(std::iter::repeat_n(
                (Outcome::Error, "evaluation aborted".to_owned()),
                chunk,
            )),
        }
    }
    out.truncate(events.len());
    out
}

/// Whether the source reads `input.args.<name>` anywhere.
fn reads_args(source: &str) -> bool {
    source.match_indices("input.args.").any(|(i, m)| {
        source[i + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Summary keys of the decision changes, in [`Tally::transitions`] order.
const TRANSITIONS: [&str; 6] = [
    "allow_to_block",
    "allow_to_escalate",
    "block_to_allow",
    "block_to_escalate",
    "escalate_to_allow",
    "escalate_to_block",
];

/// What a replay counted so far.
#[derive(Default)]
struct Tally {
    evaluated: u64,
    allow: u64,
    block: u64,
    escalate: u64,
    errors: u64,
    /// Per [`TRANSITIONS`] key.
    transitions: [u64; 6],
    /// Replayed events that carried stored argument values.
    with_values: u64,
    samples: Vec<serde_json::Value>,
}

impl Tally {
    /// Counts one replayed event: what it `was`, what the candidate decides `now`.
    fn add(&mut self, e: &AuditEvent, was: Outcome, now: Outcome, reason: String, max: usize) {
        self.evaluated += 1;
        self.with_values += u64::from(e.arg_values.as_ref().is_some_and(|v| !v.is_empty()));
        match now {
            Outcome::Allow => self.allow += 1,
            Outcome::Block => self.block += 1,
            Outcome::Escalate => self.escalate += 1,
            Outcome::Error => self.errors += 1,
        }
        let t = match (was, now) {
            (Outcome::Allow, Outcome::Block) => Some(0),
            (Outcome::Allow, Outcome::Escalate) => Some(1),
            (Outcome::Block, Outcome::Allow) => Some(2),
            (Outcome::Block, Outcome::Escalate) => Some(3),
            (Outcome::Escalate, Outcome::Allow) => Some(4),
            (Outcome::Escalate, Outcome::Block) => Some(5),
            _ => None,
        };
        if let Some(i) = t {
            self.transitions[i] += 1;
        }
        if (was != now || now == Outcome::Error) && self.samples.len() < max {
            let error = if now == Outcome::Error {
                reason.clone()
            } else {
                String::new()
            };
            self.samples.push(json!({
                "ts": e.ts.to_rfc3339_nano(),
                "tool": e.tool,
                "agent_id": e.agent_id,
                "tenant": e.tenant,
                "original_decision": was.as_str(),
                "original_check": e.check,
                "original_reason": e.reason,
                "candidate_decision": now.as_str(),
                "candidate_reason": reason,
                "candidate_error": error,
                "arg_keys": e.arg_keys,
            }));
        }
    }

    fn summary(&self) -> serde_json::Value {
        let mut summary = json!({
            "events_evaluated": self.evaluated,
            "would_allow": self.allow,
            "would_block": self.block,
            "would_escalate": self.escalate,
            "policy_error": self.errors,
        });
        for (k, n) in TRANSITIONS.iter().zip(self.transitions) {
            summary[*k] = n.into();
        }
        summary
    }

    /// What the operator should know about the replay of `source`.
    fn warnings(&self, source: &str) -> Vec<String> {
        let (evaluated, with_values) = (self.evaluated, self.with_values);
        let mut warnings: Vec<String> = Vec::new();
        if evaluated == 0 {
            warnings.push("no audit events matched".into());
        } else if reads_args(source) {
            warnings.push(if with_values == 0 {
                "the candidate reads input.args.* but no replayed event stored argument values \
                 (INTENTGATE_AUDIT_PERSIST_ARG_VALUES=off): those values were null in the replay"
                    .to_owned()
            } else if with_values < evaluated {
                format!(
                    "the candidate reads input.args.* but only {with_values} of {evaluated} replayed \
                     events stored argument values; the rest replayed with null values"
                )
            } else {
                "the candidate reads input.args.*: replayed with the stored argument values, which \
                 are redacted (strings as null) unless INTENTGATE_AUDIT_PERSIST_ARG_VALUES=raw"
                    .to_owned()
            });
        }
        warnings
    }
}

/// Replays `candidate` (compiled from `source`) and builds the compat response.
pub async fn run(
    pool: &PgPool,
    candidate: &Policy,
    source: &str,
    req: &Request,
) -> Result<serde_json::Value, sqlx::Error> {
    let mut filter = Filter {
        from: req.from,
        to: req.to,
        tenant: req.tenant.clone(),
        agent_id: req.agent_id.clone(),
        tool: req.tool.clone(),
        ..Filter::default()
    };
    let mut tally = Tally::default();
    let mut seen_pending = HashSet::new();
    loop {
        let rows = sql::query(pool, &filter, PAGE, 0).await?;
        let Some(last) = rows.last() else { break };
        filter.before_id = Some(last.id);
        let mut page = Vec::new();
        let mut originals = Vec::new();
        for r in rows {
            if (tally.evaluated as usize) + page.len() >= req.limit {
                break;
            }
            if let Some(o) = original(&r.event, &mut seen_pending) {
                originals.push(o);
                page.push(r.event);
            }
        }
        let results = evaluate_parallel(candidate, page.clone()).await;
        for ((e, was), (now, reason)) in page.iter().zip(originals).zip(results) {
            tally.add(e, was, now, reason, req.max_samples);
        }
        if tally.evaluated as usize >= req.limit {
            break;
        }
    }
    let (summary, warnings) = (tally.summary(), tally.warnings(source));
    Ok(json!({
        "summary": summary,
        "samples": tally.samples,
        "warnings": warnings,
        "window": {
            "from": req.from.map(Timestamp::to_rfc3339_nano),
            "to": req.to.map(Timestamp::to_rfc3339_nano),
            "tenant": req.tenant,
            "limit": req.limit,
        },
    }))
}
