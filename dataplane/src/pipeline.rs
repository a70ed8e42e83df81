//! The decision for one call: capability → intent → policy → budget (compat §4.5, §5).
//!
//! Sans-IO and synchronous: it reads the snapshot and the per-core caches and returns a
//! [`Verdict`] holding the JSON-RPC error (if any) and the audit record. Forwarding happens
//! afterwards in the server. Every stage fails closed.

use std::collections::HashMap;
use std::hash::RandomState;
use std::sync::Arc;

use regorus::Value;

use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::policy::{AgentInput, CapabilityInput, Evaluator, Input, IntentInput};
use intentgate_shared::snapshot::Snapshot;
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::Token;

use crate::budget::Budget;
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
    /// The last revocation lookup: revoked, when it started and how long it took (read by
    /// the server for metrics and spans).
    pub revocation: Option<(bool, std::time::Instant, std::time::Duration)>,
    /// When the last policy evaluation finished (the server splits policy from budget
    /// time with it).
    pub policy_done: Option<std::time::Instant>,
    /// Whether the last token verification was answered from the cache.
    pub token_cache_hit: Option<bool>,
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
    /// Tool name (`tools/call`) or method (other methods).
    pub tool: &'a str,
    /// Arguments, parsed.
    pub arguments: Option<&'a Value>,
    /// Caller address.
    pub remote_ip: &'a str,
    /// Decision time.
    pub now: Timestamp,
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
// `Done` is the hot path: boxing it would allocate on every call to save space on the rare one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Finished {
    /// Decided.
    Done(Verdict),
    /// The policy escalated: a reviewer decides (the server waits, then calls
    /// [`Core::after_approval`]).
    Escalated(Box<Escalation>),
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
    },
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
    Verdict::Deny { error, event }
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
            revocation: None,
            policy_done: None,
            token_cache_hit: None,
        }
    }

    fn sync(&mut self, snap: &Snapshot) {
        if self.version != snap.version {
            self.version = snap.version;
            self.tokens.clear();
            self.evaluators.clear();
        }
    }

    /// Verifies (or finds in the cache) the bearer token of `authorization`.
    pub fn verify(
        &mut self,
        snap: &Snapshot,
        authorization: &[u8],
    ) -> Result<Arc<VerifiedToken>, String> {
        self.sync(snap);
        let Some(raw) = authorization.strip_prefix(b"Bearer ") else {
            return Err("expected \"Bearer <token>\" Authorization header".into());
        };
        let raw = raw.trim_ascii();
        if let Some(hit) = self.tokens.get(raw) {
            self.token_cache_hit = Some(true);
            return Ok(Arc::clone(hit));
        }
        self.token_cache_hit = Some(false);
        let text = std::str::from_utf8(raw)
            .map_err(|_| "token is not valid unpadded base64url".to_string())?;
        let token = Token::decode_verified(text, &snap.keys).map_err(|e| e.to_string())?;
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

    /// The capability stage alone, for methods other than `tools/call`: a present token must
    /// verify, be unrevoked and be valid now (nbf, exp, agent lock); tool caveats do not apply.
    pub fn authorize_session(
        &mut self,
        snap: &Snapshot,
        settings: &Settings,
        call: &Call<'_>,
    ) -> Verdict {
        let mut event = AuditEvent::new(call.now, Decision::Allow, call.tool);
        event.remote_ip = call.remote_ip.to_owned();
        match self.capability(snap, settings, call, &mut event, false) {
            Ok(_) => Verdict::Allow { event },
            Err(reason) => deny(
                event,
                Check::Capability,
                code::CAPABILITY,
                "capability check failed",
                reason,
            ),
        }
    }

    fn capability(
        &mut self,
        snap: &Snapshot,
        settings: &Settings,
        call: &Call<'_>,
        event: &mut AuditEvent,
        tool_caveats: bool,
    ) -> Result<Option<Arc<VerifiedToken>>, String> {
        let Some(auth) = call.authorization else {
            return if settings.require_capability {
                Err("capability token required (send Authorization: Bearer <token>)".into())
            } else {
                Ok(None)
            };
        };
        let v = self.verify(snap, auth)?;
        let claims = &v.token.claims;
        event.agent_id.clone_from(&claims.sub);
        event.tenant.clone_from(&claims.tenant);
        event.capability_token_id.clone_from(&claims.jti);
        event.root_capability_token_id.clone_from(&claims.root_jti);
        event.caveat_count = v.token.caveats.len() as i64;
        let lookup = std::time::Instant::now();
        let revoked = snap.revoked.is_revoked(&claims.jti, &claims.tenant)
            || snap.revoked.is_revoked(&claims.root_jti, &claims.tenant);
        self.revocation = Some((revoked, lookup, lookup.elapsed()));
        if revoked {
            return Err("token revoked".into());
        }
        let now = call.now.unix_seconds();
        let checked = if tool_caveats {
            v.token.check(now, &claims.sub, call.tool)
        } else {
            v.token.check_validity(now, &claims.sub)
        };
        checked.map_err(|d| d.to_string())?;
        Ok(Some(v))
    }

    /// Runs the four checks for a `tools/call` without an intent extractor (the server calls
    /// [`Core::capability_stage`] and [`Core::finish`] itself to consult one in between).
    pub fn decide(
        &mut self,
        snap: &Snapshot,
        settings: &Settings,
        budget: &Budget,
        call: &Call<'_>,
    ) -> Verdict {
        match self.capability_stage(snap, settings, call) {
            Ok(passed) => match self.finish(
                snap,
                settings,
                budget,
                call,
                passed,
                IntentOutcome::NotConsulted,
            ) {
                Finished::Done(v) => v,
                // Without a server to wait for a reviewer, an escalation is a refusal.
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
            },
            Err(verdict) => *verdict,
        }
    }

    /// The capability stage of a `tools/call`. The denial is boxed: it is the rare path,
    /// and boxing keeps the `Ok` path small.
    pub fn capability_stage(
        &mut self,
        snap: &Snapshot,
        settings: &Settings,
        call: &Call<'_>,
    ) -> Result<Passed, Box<Verdict>> {
        let mut event = AuditEvent::new(call.now, Decision::Allow, call.tool);
        event.remote_ip = call.remote_ip.to_owned();
        match self.capability(snap, settings, call, &mut event, true) {
            Ok(token) => Ok(Passed { token, event }),
            Err(reason) => Err(Box::new(deny(
                with_arg_keys(event, call.arguments),
                Check::Capability,
                code::CAPABILITY,
                "capability check failed",
                reason,
            ))),
        }
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
    ) -> Finished {
        let Passed { token, mut event } = passed;
        let args = call.arguments.cloned();
        event.arg_keys = args.as_ref().map(keys_of).unwrap_or_default();
        let intent_value = match intent {
            IntentOutcome::Failed(reason) => {
                return Finished::Done(deny(
                    event,
                    Check::Intent,
                    code::INTENT,
                    "intent check failed",
                    reason,
                ));
            }
            IntentOutcome::Extracted(i) => {
                if let Err(reason) = crate::intent::check(&i, call.tool) {
                    event.intent_summary = i.summary;
                    return Finished::Done(deny(
                        event,
                        Check::Intent,
                        code::INTENT,
                        "intent check failed",
                        reason,
                    ));
                }
                event.intent_summary.clone_from(&i.summary);
                Some(i.to_value())
            }
            IntentOutcome::NotConsulted if settings.require_intent => {
                let reason = if call.intent_prompt.is_none() {
                    "intent prompt required (send X-Intent-Prompt)"
                } else {
                    "intent prompt provided but no extractor URL is configured"
                };
                return Finished::Done(deny(
                    event,
                    Check::Intent,
                    code::INTENT,
                    "intent check failed",
                    reason.into(),
                ));
            }
            IntentOutcome::NotConsulted => None,
        };

        let now_s = call.now.unix_seconds();
        let tenant = token
            .as_ref()
            .map_or("", |t| t.token.claims.tenant.as_str());
        let agent = token.as_ref().map_or("", |t| t.token.claims.sub.as_str());
        let stats = budget.stats(tenant, agent, call.tool, now_s);
        let input = Input {
            tool: call.tool,
            args,
            agent_id: agent,
            session_id: "",
            intent: intent_value,
            capability: token.as_ref().map(|t| t.capability.clone()),
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
        .to_value();
        self.sync(snap);
        let policy = snap.policy_for(tenant);
        let decision = self
            .evaluators
            .entry(policy.id())
            .or_insert_with(|| policy.evaluator())
            .evaluate(input);
        self.policy_done = Some(std::time::Instant::now());
        event.requires_step_up = decision.requires_step_up;
        if decision.escalate {
            return Finished::Escalated(Box::new(Escalation {
                event,
                token,
                policy_reason: decision.reason,
            }));
        }
        if !decision.allow {
            return Finished::Done(deny(
                event,
                Check::Policy,
                code::POLICY,
                "policy check failed",
                decision.reason,
            ));
        }
        event.reason = decision.reason;
        Finished::Done(Self::budget_stage(
            settings,
            budget,
            call,
            token.as_ref(),
            event,
        ))
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
            return deny(
                event,
                Check::Budget,
                code::BUDGET,
                "budget check failed",
                d.to_string(),
            );
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
    Failed(String),
}

#[cfg(test)]
mod tests;
