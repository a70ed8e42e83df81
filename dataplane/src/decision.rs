//! Phase 4, the decision: everything from the bearer token to the verdict of one call, and
//! its audit record. The synchronous checks (capability → intent → policy → budget over the
//! snapshot and the per-core caches) are in [`checks`]; this module runs them for a request,
//! consulting the intent extractor between capability and policy and a reviewer when the
//! policy escalates ([`approval`]), timing each stage and counting cache and revocation
//! facts. Both tool-call entry points (`mcp`, `tool_call`) go through
//! [`Worker::authorize_and_record`]; the other MCP methods and `GET`/`DELETE` through
//! [`Worker::session_verdict`].

mod approval;
pub mod checks;

use std::time::Instant;

use intentgate_shared::audit::{AuditEvent, Check, Decision, Recorded};
use intentgate_shared::snapshot::Snapshot;
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::Target;

pub use checks::{
    Call, CapabilityRefusal, CapabilityStage, Core, Escalation, Finish, Finished, IntentOutcome,
    Passed, RevocationLookup, Settings, TOKEN_CACHE_ENTRIES, TOOLS_CALL, TokenFacts, TokenLookup,
    Verdict, VerifiedToken, capability_denied, deny,
};

use crate::audit_ring::Reservation;
use crate::http::Head;
use crate::jsonrpc::RpcError;
use crate::routing::Refusal;
use crate::stages::{self, Stages};
use crate::worker::{Worker, elapsed_ms};

/// A tool call after the four checks.
#[expect(
    clippy::large_enum_variant,
    reason = "`Allowed` is the hot path: boxing it would allocate on every call"
)]
#[derive(Debug)]
pub(crate) enum Authorized {
    /// Refused; its record is already pushed.
    Denied {
        /// The agent's error.
        error: RpcError,
        /// The stage that refused.
        check: Recorded<Check>,
        /// Why.
        reason: String,
        /// The refusal concerns the named prompt or resource: answer as "not found".
        about_target: bool,
    },
    /// Allowed: the record is written into `slot` around the forward.
    Allowed {
        /// The call's reserved audit slot.
        slot: Reservation,
        /// The record so far.
        event: AuditEvent,
        /// The call's stage clock.
        stages: Stages,
    },
}

impl Worker {
    /// The checks of a request (the four of a tool call; capability and policy of any other
    /// method), with its audit slot reserved first (a call that cannot be recorded must not
    /// consume budget: `Err(AuditFull)`), and a denial recorded at once.
    pub(crate) async fn authorize_and_record(
        &self,
        snap: &Snapshot,
        buf: &[u8],
        head: &Head,
        call: &Call<'_>,
        started: Instant,
    ) -> Result<Authorized, Refusal<'static>> {
        let Some(slot) = self.audit.borrow_mut().reserve() else {
            return Err(Refusal::AuditFull);
        };
        let mut stages = self.stages(buf, head, started);
        match self.decide(snap, call, &mut stages).await {
            Verdict::Deny {
                error,
                mut event,
                about_target,
            } => {
                event.latency_ms = elapsed_ms(started);
                stages.finish(&mut event);
                let (check, reason) = (event.check.clone(), event.reason.clone());
                self.audit.borrow_mut().push_reserved(slot, event);
                Ok(Authorized::Denied {
                    error,
                    check,
                    reason,
                    about_target,
                })
            }
            Verdict::Allow { event } => Ok(Authorized::Allowed {
                slot,
                event,
                stages,
            }),
        }
    }

    /// The checks of a request, each timed on `stages`.
    async fn decide(&self, snap: &Snapshot, call: &Call<'_>, stages: &mut Stages) -> Verdict {
        let settings = &self.config.settings;
        let metrics = self.metrics();
        if self.stale() {
            // A revocation made elsewhere may be missing: refuse rather than guess.
            return self.stale_denial(call.now, call.tool, call.remote_ip);
        }
        let capability = self
            .core
            .borrow_mut()
            .capability_stage(snap, settings, call);
        stages.end(stages::CAPABILITY, metrics);
        if let Some(lookup) = self.count_token_facts(capability.facts) {
            stages.span(
                "revocation_lookup",
                lookup.started,
                lookup.started + lookup.took,
            );
        }
        let passed = match capability.outcome {
            Ok(p) => p,
            Err(v) => return *v,
        };
        let intent = self.consult_intent(call, &passed).await;
        if !matches!(intent, IntentOutcome::NotConsulted) {
            stages.end(stages::INTENT, metrics);
        }
        let finish = self.core.borrow_mut().finish(
            snap,
            settings,
            &self.shared.budget,
            call,
            passed,
            intent,
        );
        if let Some(t) = finish.policy_done {
            stages.end_at(stages::POLICY, t, metrics);
        }
        match finish.outcome {
            Finished::Escalated(esc) => {
                let v = self.escalate(call, esc).await;
                stages.end(stages::APPROVAL, metrics);
                v
            }
            Finished::Done(v) => {
                let reached_budget = match &v {
                    Verdict::Allow { .. } => true,
                    Verdict::Deny { event, .. } => event.check == Check::Budget,
                };
                if reached_budget {
                    stages.end(stages::BUDGET, metrics);
                }
                v
            }
        }
    }

    /// The intent extractor's reading of the call's prompt, when there are both.
    async fn consult_intent(&self, call: &Call<'_>, passed: &Passed) -> IntentOutcome {
        let (Some(prompt), Some(extractor)) = (call.intent_prompt, &self.extractor) else {
            return IntentOutcome::NotConsulted;
        };
        if !call.is_tool_call() {
            return IntentOutcome::NotConsulted;
        }
        let claims = passed.token.as_ref().map(|t| &t.token.claims);
        let tenant = claims.map_or("", |c| c.tenant.as_str());
        let agent = claims.map_or("", |c| c.sub.as_str());
        match crate::intent::consult(extractor, &self.intents, prompt, tenant, agent).await {
            Ok(intent) => IntentOutcome::Extracted(intent),
            Err(refusal) => IntentOutcome::Failed(refusal),
        }
    }

    /// The capability check of `GET` and `DELETE /v1/mcp` (no JSON-RPC request to decide):
    /// refused while the snapshot is stale, else the token (if any) must verify, be
    /// unrevoked and valid now.
    pub(crate) fn session_verdict(
        &self,
        snap: &Snapshot,
        buf: &[u8],
        head: &Head,
        what: &str,
        remote: &str,
    ) -> Verdict {
        if self.stale() {
            return self.stale_denial(Timestamp::now(), what, remote);
        }
        let (verdict, facts) = self.core.borrow_mut().authorize_session(
            snap,
            &self.config.settings,
            &self.method_call(buf, head, what, Target::Nothing, None, remote),
        );
        self.count_token_facts(facts);
        verdict
    }

    /// Counts the capability stage's token cache use and revocation lookup; returns the
    /// lookup, if it made one.
    fn count_token_facts(&self, facts: TokenFacts) -> Option<RevocationLookup> {
        let metrics = self.metrics();
        if let Some(hit) = facts.cache_hit {
            metrics.token_cache[usize::from(!hit)].inc();
        }
        if let Some(lookup) = facts.revocation {
            metrics.revocation(lookup.revoked, lookup.took);
        }
        facts.revocation
    }

    /// The snapshot could not be confirmed current within the staleness bound.
    pub(crate) fn stale(&self) -> bool {
        self.config
            .max_staleness
            .is_some_and(|max| self.shared.snapshot.is_stale(max))
    }

    /// The refusal of every call while the snapshot is stale.
    fn stale_denial(&self, now: Timestamp, what: &str, remote: &str) -> Verdict {
        let mut event = AuditEvent::new(now, Decision::Block, what);
        event.remote_ip = remote.to_owned();
        capability_denied(event, &CapabilityRefusal::Stale)
    }
}
