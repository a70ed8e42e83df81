//! The synchronous checks of one call: capability → intent → policy → budget (COMPATIBILITY.md §4.5,
//! §5).
//!
//! Sans-IO: it reads the snapshot and the per-core caches and returns values: a [`Verdict`]
//! holding the JSON-RPC error (if any) and the audit record, plus what the metrics and spans
//! need ([`TokenFacts`], the policy's end time). The waits (intent extractor, reviewer) are
//! the async half in [`super`]. Every stage fails closed.

use std::collections::HashMap;
use std::hash::RandomState;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regorus::Value;

use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::policy::{AgentInput, CapabilityInput, Evaluator, Input, IntentInput};
use intentgate_shared::snapshot::Snapshot;
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::{CaveatFailure, Denial, Target, Token, TokenError};

use crate::budget::Budget;
use crate::intent::IntentRefusal;
use crate::jsonrpc::{RpcError, code};

/// Verified tokens kept per core before the cache is cleared.
pub const TOKEN_CACHE_ENTRIES: usize = 4096;

/// Decision switches from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Deny calls without a token.
    pub require_capability: bool,
    /// Deny calls without an intent prompt.
    pub require_intent: bool,
    /// Deny token-less calls at the budget stage.
    pub require_budget: bool,
}

/// A token verified under the current snapshot, with what every call re-derives from it.
#[derive(Debug)]
pub struct VerifiedToken {
    /// The token.
    pub token: Token,
    /// `input.capability` for policies.
    pub capability: Value,
    /// Tightest `max_calls`, if any.
    pub max_calls: Option<u64>,
}

/// Per-core decision state: verified-token cache and policy evaluators. Cleared whenever a
/// new snapshot version appears (keys, revocations or policies may have changed).
pub struct Core {
    version: u64,
    tokens: HashMap<Box<[u8]>, Arc<VerifiedToken>, RandomState>,
    evaluators: HashMap<usize, Evaluator>,
    /// List-phase decisions ([`Core::lists`]).
    lists: HashMap<lists::ListKey, bool, RandomState>,
}

/// Why the capability stage refused. The text is the audit reason and the error data the
/// agent sees (compat wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityRefusal {
    /// No token, and tokens are required.
    #[error("capability token required (send Authorization: Bearer <token>)")]
    Missing,
    /// The `Authorization` header is not `Bearer <token>`.
    #[error("expected \"Bearer <token>\" Authorization header")]
    NotBearer,
    /// The token bytes are not text.
    #[error("token is not valid unpadded base64url")]
    NotText,
    /// The token does not decode or verify.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The token or its root is revoked.
    #[error("token revoked")]
    Revoked,
    /// A caveat refuses the call (expiry, agent lock, tool lists).
    #[error(transparent)]
    Caveat(#[from] Denial),
    /// The snapshot could not be confirmed current: a revocation made elsewhere may be
    /// missing.
    #[error("revocation snapshot is stale; token rejected (fail-closed)")]
    Stale,
}

/// One revocation-set lookup: its answer, when it started and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct RevocationLookup {
    /// The token or its root is revoked.
    pub revoked: bool,
    /// When the lookup started.
    pub started: Instant,
    /// How long it took.
    pub took: Duration,
}

/// What the capability stage learned besides its verdict, for metrics and spans.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenFacts {
    /// `Some(true)`: the token came from the per-core cache; `Some(false)`: it was verified
    /// now; `None`: no token was looked up.
    pub cache_hit: Option<bool>,
    /// The revocation lookup, if one was made.
    pub revocation: Option<RevocationLookup>,
}

/// A token lookup: the verified token (or why not) and whether the cache answered.
#[derive(Debug)]
pub struct TokenLookup {
    /// The token, or why it does not verify.
    pub token: Result<Arc<VerifiedToken>, CapabilityRefusal>,
    /// See [`TokenFacts::cache_hit`].
    pub cache_hit: Option<bool>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("version", &self.version)
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl Default for Core {
    fn default() -> Self {
        Self::new()
    }
}

/// What the request carries that the checks read.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// `Authorization` header value.
    pub authorization: Option<&'a [u8]>,
    /// `X-Intent-Prompt` header value.
    pub intent_prompt: Option<&'a [u8]>,
    /// Tool name (`tools/call`) or method (other methods): the audit record's `tool`.
    pub tool: &'a str,
    /// The JSON-RPC method ([`TOOLS_CALL`] for tool calls, `POST /v1/tool-call` included).
    pub method: &'a str,
    /// What the caveats check: the tool, resource or prompt the request names.
    pub target: Target<'a>,
    /// Arguments, parsed.
    pub arguments: Option<&'a Value>,
    /// `params` of a method other than `tools/call`, parsed (for `input.params`).
    pub params: Option<&'a Value>,
    /// Caller address.
    pub remote_ip: &'a str,
    /// Decision time.
    pub now: Timestamp,
}

/// The method of tool calls.
pub const TOOLS_CALL: &str = "tools/call";

impl Call<'_> {
    /// A `tools/call` (intent and budget apply only to these).
    pub fn is_tool_call(&self) -> bool {
        self.method == TOOLS_CALL
    }

    /// The request names a prompt or a resource: refusing it must look like "not found".
    fn hides_refusals(&self) -> bool {
        matches!(
            self.target,
            Target::Prompt(_) | Target::Resource(_) | Target::ResourceTemplate(_)
        )
    }
}

/// A call the policy escalated to a human: what resuming it needs.
#[derive(Debug)]
pub struct Escalation {
    /// The audit record so far (becomes the final record after approval).
    pub event: AuditEvent,
    /// The verified token.
    pub token: Option<Arc<VerifiedToken>>,
    /// The policy's reason for escalating.
    pub policy_reason: String,
}

/// What [`Core::finish`] leads to: a verdict, or a reviewer's decision to wait for.
#[expect(
    clippy::large_enum_variant,
    reason = "`Done` is the hot path: boxing it would allocate on every call to save space on the rare one"
)]
#[derive(Debug)]
pub enum Finished {
    /// Decided.
    Done(Verdict),
    /// The policy escalated: a reviewer decides (the caller waits, then calls
    /// [`Core::after_approval`]).
    Escalated(Box<Escalation>),
}

/// Intent, policy and budget's outcome, and when the policy evaluation ended (policy time is
/// split from budget time with it; `None` when the call stopped before the policy).
#[derive(Debug)]
pub struct Finish {
    /// The outcome.
    pub outcome: Finished,
    /// When the policy evaluation finished.
    pub policy_done: Option<Instant>,
}

/// The capability stage's outcome and facts.
#[derive(Debug)]
pub struct CapabilityStage {
    /// Passed, or the denial (boxed: it is the rare path, and boxing keeps `Ok` small).
    pub outcome: Result<Passed, Box<Verdict>>,
    /// Cache use and revocation lookup.
    pub facts: TokenFacts,
}

/// The outcome. `event` is the audit record of this decision point (not yet pushed).
#[derive(Debug)]
pub enum Verdict {
    /// All checks passed.
    Allow {
        /// Audit record (decision allow).
        event: AuditEvent,
    },

    /// A check refused.
    Deny {
        /// Error for the agent.
        error: RpcError,
        /// Audit record (decision block).
        event: AuditEvent,
        /// The refusal concerns the prompt or resource the request names (its caveats or
        /// the policy), not the caller: it is answered like a missing one, so that a
        /// refusal does not reveal what exists (the record keeps the reason).
        about_target: bool,
    },
}

impl Verdict {
    fn about_target(self, yes: bool) -> Self {
        match self {
            Self::Deny { error, event, .. } => Self::Deny {
                error,
                event,
                about_target: yes,
            },
            allow => allow,
        }
    }
}

/// A denial at `check` with JSON-RPC `code`/`message`; `reason` becomes the error data and
/// the audit reason.
pub fn deny(
    mut event: AuditEvent,
    check: Check,
    code: i32,
    message: &'static str,
    reason: String,
) -> Verdict {
    event.decision = Decision::Block.into();
    event.check = check.into();
    let error = RpcError::with_reason(code, message, &reason);
    event.reason = reason;
    Verdict::Deny {
        error,
        event,
        about_target: false,
    }
}

/// A denial at the capability stage.
pub fn capability_denied(event: AuditEvent, refusal: &CapabilityRefusal) -> Verdict {
    deny(
        event,
        Check::Capability,
        code::CAPABILITY,
        "capability check failed",
        refusal.to_string(),
    )
}

/// The keys of a parsed arguments object, sorted (regorus objects are ordered).
fn keys_of(args: &Value) -> Vec<String> {
    args.as_object()
        .map(|o| {
            o.keys()
                .filter_map(|k| k.as_string().ok().map(|s| s.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn with_arg_keys(mut event: AuditEvent, arguments: Option<&Value>) -> AuditEvent {
    event.arg_keys = arguments.map(keys_of).unwrap_or_default();
    event
}

impl Core {
    /// Empty caches.
    pub fn new() -> Self {
        Self {
            version: 0,
            tokens: HashMap::default(),
            evaluators: HashMap::new(),
            lists: HashMap::default(),
        }
    }

    fn sync(&mut self, snap: &Snapshot) {
        if self.version != snap.version {
            self.version = snap.version;
            self.tokens.clear();
            self.evaluators.clear();
            self.lists.clear();
        }
    }

    /// Verifies (or finds in the cache) the bearer token of `authorization`.
    pub fn verify(&mut self, snap: &Snapshot, authorization: &[u8]) -> TokenLookup {
        self.sync(snap);
        let Some(raw) = authorization.strip_prefix(b"Bearer ") else {
            return TokenLookup {
                token: Err(CapabilityRefusal::NotBearer),
                cache_hit: None,
            };
        };
        let raw = raw.trim_ascii();
        if let Some(hit) = self.tokens.get(raw) {
            return TokenLookup {
                token: Ok(Arc::clone(hit)),
                cache_hit: Some(true),
            };
        }
        TokenLookup {
            token: self.verify_fresh(snap, raw),
            cache_hit: Some(false),
        }
    }

    /// A cache miss: decode, verify and cache the token.
    fn verify_fresh(
        &mut self,
        snap: &Snapshot,
        raw: &[u8],
    ) -> Result<Arc<VerifiedToken>, CapabilityRefusal> {
        let text = std::str::from_utf8(raw).map_err(|_| CapabilityRefusal::NotText)?;
        let token = Token::decode_verified(text, &snap.keys)?;
        let capability = CapabilityInput {
            subject: token.claims.sub.clone(),
            issuer: token.claims.iss.clone(),
            tenant: token.claims.tenant.clone(),
            step_up_at: token.step_up_at().unwrap_or(0),
        }
        .to_value();
        let max_calls = token.max_calls().and_then(|n| u64::try_from(n).ok());
        let verified = Arc::new(VerifiedToken {
            token,
            capability,
            max_calls,
        });
        if self.tokens.len() >= TOKEN_CACHE_ENTRIES {
            self.tokens.clear();
        }
        self.tokens.insert(raw.into(), Arc::clone(&verified));
        Ok(verified)
    }

    /// The capability stage alone, for `GET`/`DELETE` (no JSON-RPC request): a present
    /// token must verify, be unrevoked and be valid now (nbf, exp, agent lock); the caveats
    /// of `call.target` apply (none, for a target of [`Target::Nothing`]).
    pub fn authorize_session(
        &mut self,
        snap: &Snapshot,
        settings: &Settings,
        call: &Call<'_>,
    ) -> (Verdict, TokenFacts) {
        let mut event = AuditEvent::new(call.now, Decision::Allow, call.tool);
        event.remote_ip = call.remote_ip.to_owned();
        let mut facts = TokenFacts::default();
        let verdict = match self.capability(snap, settings, call, &mut event, &mut facts) {
            Ok(_) => Verdict::Allow { event },
            Err(refusal) => capability_denied(event, &refusal),
        };
        (verdict, facts)
    }

    fn capability(
        &mut self,
        snap: &Snapshot,
        settings: &Settings,
        call: &Call<'_>,
        event: &mut AuditEvent,
        facts: &mut TokenFacts,
    ) -> Result<Option<Arc<VerifiedToken>>, CapabilityRefusal> {
        let Some(auth) = call.authorization else {
            return if settings.require_capability {
                Err(CapabilityRefusal::Missing)
            } else {
                Ok(None)
            };
        };
        let lookup = self.verify(snap, auth);
        facts.cache_hit = lookup.cache_hit;
        let v = lookup.token?;
        let claims = &v.token.claims;
        event.agent_id.clone_from(&claims.sub);
        event.tenant.clone_from(&claims.tenant);
        event.capability_token_id.clone_from(&claims.jti);
        event.root_capability_token_id.clone_from(&claims.root_jti);
        event.caveat_count = v.token.caveats.len() as i64;
        let started = Instant::now();
        let revoked = snap.revoked.revokes(claims);
        facts.revocation = Some(RevocationLookup {
            revoked,
            started,
            took: started.elapsed(),
        });
        if revoked {
            return Err(CapabilityRefusal::Revoked);
        }
        v.token
            .check_target(call.now.unix_seconds(), &claims.sub, call.target)?;
        Ok(Some(v))
    }

    /// Runs the four checks for a `tools/call` without an intent extractor or a reviewer (an
    /// escalation is a refusal): the benches' and tests' entry point. The gateway runs the
    /// stages itself ([`super`]) to consult the extractor and wait for reviewers in between.
    pub fn decide(
        &mut self,
        snap: &Snapshot,
        settings: &Settings,
        budget: &Budget,
        call: &Call<'_>,
    ) -> Verdict {
        let passed = match self.capability_stage(snap, settings, call).outcome {
            Ok(passed) => passed,
            Err(verdict) => return *verdict,
        };
        let finish = self.finish(
            snap,
            settings,
            budget,
            call,
            passed,
            IntentOutcome::NotConsulted,
        );
        match finish.outcome {
            Finished::Done(v) => v,
            Finished::Escalated(esc) => {
                let reason = format!("escalation requested ({})", esc.policy_reason);
                deny(
                    esc.event,
                    Check::Policy,
                    code::POLICY,
                    "policy escalation required",
                    reason,
                )
            }
        }
    }

    /// The capability stage of a request: token, revocation, validity and the caveats of
    /// its target.
    pub fn capability_stage(
        &mut self,
        snap: &Snapshot,
        settings: &Settings,
        call: &Call<'_>,
    ) -> CapabilityStage {
        let mut event = AuditEvent::new(call.now, Decision::Allow, call.tool);
        event.remote_ip = call.remote_ip.to_owned();
        let mut facts = TokenFacts::default();
        let outcome = match self.capability(snap, settings, call, &mut event, &mut facts) {
            Ok(token) => Ok(Passed { token, event }),
            Err(refusal) => Err(Box::new(
                capability_denied(with_arg_keys(event, call.arguments), &refusal)
                    .about_target(call.hides_refusals() && refusal.is_about_target()),
            )),
        };
        CapabilityStage { outcome, facts }
    }

    /// Intent, policy and budget, after the capability stage passed.
    pub fn finish(
        &mut self,
        snap: &Snapshot,
        settings: &Settings,
        budget: &Budget,
        call: &Call<'_>,
        passed: Passed,
        intent: IntentOutcome,
    ) -> Finish {
        let Passed { token, mut event } = passed;
        let args = call.arguments.cloned();
        event.arg_keys = args.as_ref().map(keys_of).unwrap_or_default();
        let intent_value = match intent_stage(settings, call, intent, &mut event) {
            Ok(v) => v,
            Err(refusal) => {
                let verdict = deny(
                    event,
                    Check::Intent,
                    code::INTENT,
                    "intent check failed",
                    refusal.to_string(),
                );
                return Finish {
                    outcome: Finished::Done(verdict),
                    policy_done: None,
                };
            }
        };
        let tenant = token
            .as_ref()
            .map_or("", |t| t.token.claims.tenant.as_str());
        let agent = token.as_ref().map_or("", |t| t.token.claims.sub.as_str());
        self.sync(snap);
        let policy = snap.policy_for(tenant);
        let governs = policy.governs_methods();
        if !call.is_tool_call() && !governs {
            // A policy written for tools/call alone (the Go gateway's): other methods pass
            // on the capability check, as they did there.
            event.reason =
                "policy governs tools/call only; method passed the capability check".into();
            return Finish {
                outcome: Finished::Done(Verdict::Allow { event }),
                policy_done: None,
            };
        }
        let stats = budget.stats(tenant, agent, call.tool, call.now.unix_seconds());
        let params = governs && (!call.is_tool_call() || policy.reads_params());
        let input = policy_input(call, token.as_ref(), args, intent_value, stats, params);
        let decision = self
            .evaluators
            .entry(policy.id())
            .or_insert_with(|| policy.evaluator())
            .evaluate(input);
        let policy_done = Some(Instant::now());
        event.requires_step_up = decision.requires_step_up;
        let outcome = if decision.escalate {
            Finished::Escalated(Box::new(Escalation {
                event,
                token,
                policy_reason: decision.reason,
            }))
        } else if !decision.allow {
            Finished::Done(
                deny(
                    event,
                    Check::Policy,
                    code::POLICY,
                    "policy check failed",
                    decision.reason,
                )
                .about_target(call.hides_refusals()),
            )
        } else {
            event.reason = decision.reason;
            Finished::Done(Self::budget_stage(
                settings,
                budget,
                call,
                token.as_ref(),
                event,
            ))
        };
        Finish {
            outcome,
            policy_done,
        }
    }

    /// The budget stage of a call a reviewer approved.
    pub fn after_approval(
        settings: &Settings,
        budget: &Budget,
        call: &Call<'_>,
        esc: Escalation,
        reason: String,
    ) -> Verdict {
        let Escalation {
            mut event, token, ..
        } = esc;
        event.reason = reason;
        Self::budget_stage(settings, budget, call, token.as_ref(), event)
    }

    fn budget_stage(
        settings: &Settings,
        budget: &Budget,
        call: &Call<'_>,
        token: Option<&Arc<VerifiedToken>>,
        event: AuditEvent,
    ) -> Verdict {
        if !call.is_tool_call() {
            // Budgets count tool calls; other methods cost nothing.
            return Verdict::Allow { event };
        }
        if token.is_none() && settings.require_budget {
            let reason = "budget enforcement requires a verified capability token".to_string();
            return deny(
                event,
                Check::Budget,
                code::BUDGET,
                "budget check failed",
                reason,
            );
        }
        let tenant = token.map_or("", |t| t.token.claims.tenant.as_str());
        let agent = token.map_or("", |t| t.token.claims.sub.as_str());
        let root = token.map(|t| t.token.claims.root_jti.as_str());
        let max_calls = token.and_then(|t| t.max_calls);
        if let Err(d) = budget.charge(
            root,
            max_calls,
            tenant,
            agent,
            call.tool,
            call.now.unix_seconds(),
        ) {
            let mut verdict = deny(
                event,
                Check::Budget,
                code::BUDGET,
                "budget check failed",
                d.to_string(),
            );
            // The agent can act on the numbers: which limit, how much was used, when to retry.
            if let Verdict::Deny { error, .. } = &mut verdict {
                error.data = Some(d.data(call.now.unix_seconds()));
            }
            return verdict;
        }
        Verdict::Allow { event }
    }
}

/// A call that passed the capability stage.
#[derive(Debug)]
pub struct Passed {
    /// The verified token (None when tokens are optional and none was sent).
    pub token: Option<Arc<VerifiedToken>>,
    /// The audit record so far.
    pub event: AuditEvent,
}

/// What the intent extractor said, if it was consulted.
#[derive(Debug)]
pub enum IntentOutcome {
    /// No prompt, or no extractor configured.
    NotConsulted,
    /// The extracted intent.
    Extracted(IntentInput),
    /// The extractor failed or the prompt was unusable: deny (fail closed).
    Failed(IntentRefusal),
}

/// The policy's input for a request in the call phase. `input.params` is built only when
/// `with_params` (a tool call's repeats `input.tool`/`input.args`: built only for a policy
/// that reads it).
fn policy_input(
    call: &Call<'_>,
    token: Option<&Arc<VerifiedToken>>,
    args: Option<Value>,
    intent: Option<Value>,
    stats: crate::budget::AgentStats,
    with_params: bool,
) -> Value {
    let agent = token.map_or("", |t| t.token.claims.sub.as_str());
    let params = match (with_params, call.is_tool_call()) {
        (false, _) => None,
        (true, true) => Some(tool_call_params(call.tool, args.as_ref())),
        (true, false) => call.params.cloned(),
    };
    Input {
        tool: if call.is_tool_call() { call.tool } else { "" },
        method: call.method,
        params,
        phase: "call",
        args,
        agent_id: agent,
        session_id: "",
        intent,
        capability: token.map(|t| t.capability.clone()),
        agent: Some(
            AgentInput {
                id: agent.to_owned(),
                calls_today: stats.calls_today,
                calls_today_for_tool: stats.calls_today_for_tool,
                calls_this_hour: stats.calls_this_hour,
            }
            .to_value(),
        ),
    }
    .to_value()
}

/// `input.params` of a `tools/call`: `{name, arguments}`, as the request carried them.
fn tool_call_params(name: &str, args: Option<&Value>) -> Value {
    let mut params = std::collections::BTreeMap::new();
    params.insert(Value::from("name"), Value::from(name));
    if let Some(a) = args {
        params.insert(Value::from("arguments"), a.clone());
    }
    Value::from(params)
}

impl CapabilityRefusal {
    /// The refusal names the prompt or resource itself (its caveats), not the caller.
    pub fn is_about_target(&self) -> bool {
        matches!(
            self,
            Self::Caveat(Denial::Caveat {
                reason: CaveatFailure::ResourceNotAllowed(_)
                    | CaveatFailure::ResourceDenied(_)
                    | CaveatFailure::AmbiguousResource(_)
                    | CaveatFailure::PromptNotAllowed(_)
                    | CaveatFailure::PromptDenied(_),
                ..
            })
        )
    }
}

/// The intent stage: the intent as a policy value, or why the call is refused. The summary
/// is put on the record either way. Only tool calls have an intent.
fn intent_stage(
    settings: &Settings,
    call: &Call<'_>,
    intent: IntentOutcome,
    event: &mut AuditEvent,
) -> Result<Option<Value>, IntentRefusal> {
    if !call.is_tool_call() {
        return Ok(None);
    }
    match intent {
        IntentOutcome::Failed(refusal) => Err(refusal),
        IntentOutcome::Extracted(i) => {
            let fits = crate::intent::check(&i, call.tool);
            event.intent_summary.clone_from(&i.summary);
            fits?;
            Ok(Some(i.to_value()))
        }
        IntentOutcome::NotConsulted if settings.require_intent => {
            Err(if call.intent_prompt.is_none() {
                IntentRefusal::PromptRequired
            } else {
                IntentRefusal::NoExtractor
            })
        }
        IntentOutcome::NotConsulted => Ok(None),
    }
}

mod lists;
pub use lists::LIST_CACHE_ENTRIES;

#[cfg(test)]
mod tests;
