use super::*;
use intentgate_shared::key_ring::{KeyRing, MasterKey};
use intentgate_shared::policy::{Policy, Syntax};
use intentgate_shared::snapshot::{RevocationSet, SnapshotCell};
use intentgate_shared::token::{Caveat, MintRequest, kind};

use crate::list_filter::ListKind;

const NOW_S: i64 = 1_790_000_000;

fn key() -> MasterKey {
    MasterKey::from_bytes(&[3; 32])
}

fn snapshot(policy: Policy) -> Snapshot {
    Snapshot {
        version: 1,
        built_at: Timestamp::from_unix_micros(0),
        keys: KeyRing::single(key()),
        revoked: Arc::new(RevocationSet::default()),
        default_policy: policy,
        tenant_policies: Arc::new(HashMap::new()),
    }
}

fn bearer(caveats: Vec<Caveat>) -> (String, Token) {
    let req = MintRequest {
        subject: "agent-1".into(),
        tenant: "acme".into(),
        caveats,
        ..MintRequest::default()
    };
    let t = Token::mint(&key(), req, NOW_S - 10).unwrap();
    (format!("Bearer {}", t.encode()), t)
}

const STRICT: Settings = Settings {
    require_capability: true,
    require_intent: false,
    require_budget: false,
};

fn call<'a>(auth: Option<&'a str>, tool: &'a str, args: Option<&'a Value>) -> Call<'a> {
    Call {
        authorization: auth.map(str::as_bytes),
        intent_prompt: None,
        tool,
        method: TOOLS_CALL,
        target: Target::Tool(tool),
        arguments: args,
        params: None,
        remote_ip: "127.0.0.1:1",
        now: Timestamp::from_unix_micros(NOW_S * 1_000_000),
    }
}

fn method<'a>(
    auth: Option<&'a str>,
    method: &'a str,
    target: Target<'a>,
    params: Option<&'a Value>,
) -> Call<'a> {
    Call {
        tool: method,
        method,
        target,
        arguments: None,
        params,
        ..call(auth, method, None)
    }
}

fn denied(v: Verdict) -> (i32, String, AuditEvent) {
    match v {
        Verdict::Deny { error, event, .. } => {
            let data: serde_json::Value = serde_json::from_slice(&error.data.unwrap()).unwrap();
            // Budget refusals carry an object whose `reason` is the text.
            let reason = data.get("reason").unwrap_or(&data);
            (error.code, reason.as_str().unwrap().to_owned(), event)
        }
        Verdict::Allow { event } => panic!("expected deny, got allow: {event:?}"),
    }
}

fn allowed(v: Verdict) -> AuditEvent {
    match v {
        Verdict::Allow { event } => event,
        Verdict::Deny { error, .. } => panic!("expected allow, got {error:?}"),
    }
}

#[test]
fn allowed_call_fills_the_audit_record() {
    let snap = snapshot(Policy::default_policy().unwrap());
    let (auth, token) = bearer(vec![Caveat::tool_allow(["read_invoice"])]);
    let args = Value::from_json_str(r#"{"z":1,"a":2}"#).unwrap();
    let e = allowed(Core::new().decide(
        &snap,
        &STRICT,
        &Budget::new(None, None),
        &call(Some(&auth), "read_invoice", Some(&args)),
    ));
    assert_eq!(e.decision, "allow");
    assert_eq!(e.reason, "read-only tool");
    assert_eq!(
        (e.agent_id.as_str(), e.tenant.as_str()),
        ("agent-1", "acme")
    );
    assert_eq!(e.capability_token_id, token.claims.jti);
    assert_eq!(e.caveat_count, 1);
    assert_eq!(e.arg_keys, ["a", "z"]);
}

#[test]
fn capability_denials() {
    let snap = snapshot(Policy::default_policy().unwrap());
    let budget = Budget::new(None, None);
    let mut core = Core::new();
    let (code, reason, e) =
        denied(core.decide(&snap, &STRICT, &budget, &call(None, "read_x", None)));
    assert_eq!((code, e.check.as_str()), (code::CAPABILITY, "capability"));
    assert!(reason.starts_with("capability token required"), "{reason}");
    let (_, reason, _) = denied(core.decide(
        &snap,
        &STRICT,
        &budget,
        &call(Some("Basic abc"), "read_x", None),
    ));
    assert_eq!(reason, "expected \"Bearer <token>\" Authorization header");
    let (_, reason, _) = denied(core.decide(
        &snap,
        &STRICT,
        &budget,
        &call(Some("Bearer !!"), "read_x", None),
    ));
    assert_eq!(reason, "token is not valid unpadded base64url");
    let (auth, _) = bearer(vec![Caveat::tool_deny(["read_x"])]);
    let (_, reason, e) =
        denied(core.decide(&snap, &STRICT, &budget, &call(Some(&auth), "read_x", None)));
    assert_eq!(reason, "caveat 0 (tool_deny): tool \"read_x\" is forbidden");
    assert_eq!(
        e.agent_id, "agent-1",
        "identity is audited once the signature verified"
    );
    let other = Token::mint(
        &MasterKey::from_bytes(&[9; 32]),
        MintRequest {
            subject: "s".into(),
            tenant: "t".into(),
            ..Default::default()
        },
        NOW_S,
    )
    .unwrap();
    let (_, reason, _) = denied(core.decide(
        &snap,
        &STRICT,
        &budget,
        &call(Some(&format!("Bearer {}", other.encode())), "read_x", None),
    ));
    assert_eq!(reason, "signature mismatch");
    // Permissive mode lets token-less calls reach the policy.
    let open = Settings {
        require_capability: false,
        ..STRICT
    };
    allowed(core.decide(&snap, &open, &budget, &call(None, "read_x", None)));
}

#[test]
fn revocation_applies_on_the_next_call_despite_the_cache() {
    let cell = SnapshotCell::new(snapshot(Policy::default_policy().unwrap()));
    let budget = Budget::new(None, None);
    let mut core = Core::new();
    let (auth, token) = bearer(vec![]);
    allowed(core.decide(
        &cell.load(),
        &STRICT,
        &budget,
        &call(Some(&auth), "read_x", None),
    ));
    cell.update(|s| {
        let mut r = RevocationSet::clone(&s.revoked);
        r.insert(&token.claims.jti, "");
        s.revoked = Arc::new(r);
    });
    let (code, reason, _) = denied(core.decide(
        &cell.load(),
        &STRICT,
        &budget,
        &call(Some(&auth), "read_x", None),
    ));
    assert_eq!((code, reason.as_str()), (code::CAPABILITY, "token revoked"));
}

#[test]
fn a_tenant_revocation_does_not_touch_other_tenants() {
    let mut r = RevocationSet::default();
    r.insert("j", "globex");
    assert!(!r.is_revoked("j", "acme"));
    assert!(r.is_revoked("j", "globex"));
    r.insert("j", "");
    assert!(r.is_revoked("j", "acme"));
}

#[test]
fn policy_deny_and_escalation() {
    let src = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "nope"}
decision := {"allow": false, "escalate": true, "reason": "big"} if input.tool == "wire"
decision := {"allow": true, "reason": "busy check"} if { input.tool == "count"; input.agent.calls_today_for_tool < 2 }
"#;
    let snap = snapshot(Policy::compile(src, Syntax::V1).unwrap());
    let budget = Budget::new(None, None);
    let mut core = Core::new();
    let (auth, _) = bearer(vec![]);
    let (code, reason, e) =
        denied(core.decide(&snap, &STRICT, &budget, &call(Some(&auth), "other", None)));
    assert_eq!(
        (code, reason.as_str(), e.check.as_str()),
        (code::POLICY, "nope", "policy")
    );
    let (code, reason, _) =
        denied(core.decide(&snap, &STRICT, &budget, &call(Some(&auth), "wire", None)));
    assert_eq!(code, code::POLICY);
    assert!(reason.contains("escalation requested (big)"), "{reason}");
    // input.agent counts come from the budget counters.
    allowed(core.decide(&snap, &STRICT, &budget, &call(Some(&auth), "count", None)));
    allowed(core.decide(&snap, &STRICT, &budget, &call(Some(&auth), "count", None)));
    let (_, reason, _) =
        denied(core.decide(&snap, &STRICT, &budget, &call(Some(&auth), "count", None)));
    assert_eq!(reason, "nope");
}

#[test]
fn budget_is_shared_by_attenuated_children() {
    let snap = snapshot(Policy::default_policy().unwrap());
    let budget = Budget::new(None, None);
    let mut core = Core::new();
    let (auth, parent) = bearer(vec![Caveat::max_calls(2)]);
    let child = format!(
        "Bearer {}",
        parent
            .attenuate(Caveat::tool_allow(["read_x"]))
            .unwrap()
            .encode()
    );
    allowed(core.decide(&snap, &STRICT, &budget, &call(Some(&auth), "read_x", None)));
    allowed(core.decide(&snap, &STRICT, &budget, &call(Some(&child), "read_x", None)));
    let (code, reason, e) =
        denied(core.decide(&snap, &STRICT, &budget, &call(Some(&child), "read_x", None)));
    assert_eq!(
        (code, reason.as_str(), e.check.as_str()),
        (code::BUDGET, "max_calls exceeded (3 > 2)", "budget")
    );
}

#[test]
fn intent_and_budget_requirements_fail_closed() {
    let snap = snapshot(Policy::default_policy().unwrap());
    let budget = Budget::new(None, None);
    let mut core = Core::new();
    let (auth, _) = bearer(vec![]);
    let need_intent = Settings {
        require_intent: true,
        ..STRICT
    };
    let (code, reason, _) = denied(core.decide(
        &snap,
        &need_intent,
        &budget,
        &call(Some(&auth), "read_x", None),
    ));
    assert_eq!(
        (code, reason.as_str()),
        (
            code::INTENT,
            "intent prompt required (send X-Intent-Prompt)"
        )
    );
    let need_budget = Settings {
        require_capability: false,
        require_budget: true,
        require_intent: false,
    };
    let (code, reason, _) =
        denied(core.decide(&snap, &need_budget, &budget, &call(None, "read_x", None)));
    assert_eq!(
        (code, reason.as_str()),
        (
            code::BUDGET,
            "budget enforcement requires a verified capability token"
        )
    );
}

#[test]
fn session_methods_check_validity_but_not_tool_lists() {
    let snap = snapshot(Policy::default_policy().unwrap());
    let mut core = Core::new();
    let (auth, _) = bearer(vec![Caveat::tool_allow(["read_x"])]);
    allowed(
        core.authorize_session(
            &snap,
            &STRICT,
            &method(Some(&auth), "tools/list", Target::Nothing, None),
        )
        .0,
    );
    let (expired, _) = bearer(vec![Caveat::exp(NOW_S - 1)]);
    let (code, reason, _) = denied(
        core.authorize_session(
            &snap,
            &STRICT,
            &method(Some(&expired), "tools/list", Target::Nothing, None),
        )
        .0,
    );
    assert_eq!(
        (code, reason.as_str()),
        (code::CAPABILITY, "caveat 0 (exp): expired")
    );
}

/// A method-aware policy: resources under /public only, prompts but "leak", lists of tools
/// without "hidden_", and it echoes what it saw in the reason.
const METHODS_POLICY: &str = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "default deny"}
decision := {"allow": true, "reason": sprintf("tool %s %v", [input.tool, input.params])} if {
	input.method == "tools/call"
	input.phase == "call"
}
decision := {"allow": true, "reason": "listed"} if {
	input.method == "tools/call"
	input.phase == "list"
	not startswith(input.tool, "hidden_")
}
decision := {"allow": true, "reason": "public resource"} if {
	input.method == "resources/read"
	startswith(input.params.uri, "file:///public/")
}
decision := {"allow": true, "reason": "prompt"} if {
	input.method == "prompts/get"
	input.params.name != "leak"
}
decision := {"allow": true, "reason": "plumbing"} if input.method in {"initialize", "ping"}
"#;

fn args(json: &str) -> Value {
    intentgate_shared::policy::args_from_json(json).unwrap()
}

#[test]
fn every_method_meets_a_method_aware_policy() {
    let snap = snapshot(Policy::compile(METHODS_POLICY, Syntax::V1).unwrap());
    let budget = Budget::new(None, None);
    let mut core = Core::new();
    let (auth, _) = bearer(vec![Caveat::max_calls(2)]);
    let auth = Some(auth.as_str());
    // tools/call keeps input.tool/input.args and gains input.method/input.params.
    let a = args(r#"{"id":"7"}"#);
    let e = allowed(core.decide(&snap, &STRICT, &budget, &call(auth, "read_x", Some(&a))));
    assert_eq!(
        e.reason,
        r#"tool read_x {"arguments": {"id": "7"}, "name": "read_x"}"#
    );
    // Other methods: allowed or refused by the policy; refusals about a named resource or
    // prompt are marked, so the handler answers them like missing ones.
    let public = args(r#"{"uri":"file:///public/a"}"#);
    let secret = args(r#"{"uri":"file:///etc/shadow"}"#);
    let leak = args(r#"{"name":"leak"}"#);
    let m = |name, target, params| method(auth, name, target, params);
    allowed(core.decide(
        &snap,
        &STRICT,
        &budget,
        &m(
            "resources/read",
            Target::Resource("file:///public/a"),
            Some(&public),
        ),
    ));
    allowed(core.decide(
        &snap,
        &STRICT,
        &budget,
        &m("initialize", Target::Nothing, None),
    ));
    allowed(core.decide(&snap, &STRICT, &budget, &m("ping", Target::Nothing, None)));
    for (name, target, params) in [
        (
            "resources/read",
            Target::Resource("file:///etc/shadow"),
            Some(&secret),
        ),
        ("prompts/get", Target::Prompt("leak"), Some(&leak)),
    ] {
        match core.decide(&snap, &STRICT, &budget, &m(name, target, params)) {
            Verdict::Deny {
                error,
                event,
                about_target,
            } => {
                assert!(about_target, "{name}");
                assert_eq!(error.code, code::POLICY);
                assert_eq!(event.check, Check::Policy);
                assert_eq!(event.tool, name);
            }
            Verdict::Allow { .. } => panic!("{name} allowed"),
        }
    }
    // A method the policy does not name is refused, and not as "not found".
    match core.decide(
        &snap,
        &STRICT,
        &budget,
        &m("logging/setLevel", Target::Nothing, None),
    ) {
        Verdict::Deny {
            about_target,
            event,
            ..
        } => {
            assert!(!about_target);
            assert_eq!(event.reason, "default deny");
        }
        Verdict::Allow { .. } => panic!("allowed"),
    }
    // Methods cost no budget: the second call max_calls allows is still there.
    allowed(core.decide(&snap, &STRICT, &budget, &call(auth, "read_y", None)));
    let (code, _, _) = denied(core.decide(&snap, &STRICT, &budget, &call(auth, "read_z", None)));
    assert_eq!(code, code::BUDGET);
}

#[test]
fn a_tools_only_policy_leaves_other_methods_to_the_capability_check() {
    // The Go gateway's kind of policy: it never reads input.method.
    let legacy = "package intentgate.policy\nimport rego.v1\ndefault decision := {\"allow\": false, \"reason\": \"no\"}\ndecision := {\"allow\": true, \"reason\": \"ok\"} if input.tool == \"read_x\"\n";
    let policy = Policy::compile(legacy, Syntax::V1).unwrap();
    assert!(!policy.governs_methods());
    let snap = snapshot(policy);
    let budget = Budget::new(None, None);
    let mut core = Core::new();
    let (auth, _) = bearer(vec![Caveat::list(
        kind::RESOURCE_DENY,
        ["file:///private/"],
    )]);
    let auth = Some(auth.as_str());
    let e = allowed(core.decide(
        &snap,
        &STRICT,
        &budget,
        &method(
            auth,
            "resources/read",
            Target::Resource("file:///public/a"),
            None,
        ),
    ));
    assert!(
        e.reason.contains("policy governs tools/call only"),
        "{}",
        e.reason
    );
    // The caveats still apply, and their refusal is about the resource.
    match core.decide(
        &snap,
        &STRICT,
        &budget,
        &method(
            auth,
            "resources/read",
            Target::Resource("file:///private/k"),
            None,
        ),
    ) {
        Verdict::Deny {
            about_target,
            event,
            ..
        } => {
            assert!(about_target);
            assert_eq!(event.check, Check::Capability);
            assert_eq!(
                event.reason,
                r#"caveat 0 (resource_deny): resource "file:///private/k" is forbidden"#
            );
        }
        Verdict::Allow { .. } => panic!("allowed"),
    }
    // A refusal about the caller (an expired token) is not dressed as "not found".
    let (expired, _) = bearer(vec![Caveat::exp(NOW_S - 1)]);
    match core.decide(
        &snap,
        &STRICT,
        &budget,
        &method(
            Some(&expired),
            "resources/read",
            Target::Resource("file:///public/a"),
            None,
        ),
    ) {
        Verdict::Deny { about_target, .. } => assert!(!about_target),
        Verdict::Allow { .. } => panic!("allowed"),
    }
    // Lists: a tools-only policy hides nothing (its argument rules would hide callable tools).
    assert!(core.lists(&snap, None, ListKind::Tools, "anything"));
}

#[test]
fn the_list_phase_asks_the_policy_once_per_entry_and_snapshot() {
    let mut snap = snapshot(Policy::compile(METHODS_POLICY, Syntax::V1).unwrap());
    let mut core = Core::new();
    let (_, token) = bearer(vec![]);
    let verified = core
        .verify(&snap, format!("Bearer {}", token.encode()).as_bytes())
        .token
        .unwrap();
    assert!(core.lists(&snap, Some(&verified), ListKind::Tools, "read_x"));
    assert!(!core.lists(&snap, Some(&verified), ListKind::Tools, "hidden_y"));
    // Prompts in the list phase: the prompt rule reads params.name, which the entry gives.
    assert!(core.lists(&snap, Some(&verified), ListKind::Prompts, "p"));
    assert!(!core.lists(&snap, Some(&verified), ListKind::Prompts, "leak"));
    assert_eq!(core.lists.len(), 4);
    assert!(core.lists(&snap, Some(&verified), ListKind::Tools, "read_x"));
    assert_eq!(core.lists.len(), 4, "answered from the cache");
    // A new snapshot (new policy) clears the cache.
    snap.version += 1;
    snap.default_policy = Policy::default_policy().unwrap();
    assert!(core.lists(&snap, None, ListKind::Tools, "transfer_funds"));
    assert!(!core.lists(&snap, None, ListKind::Tools, "factory_reset"));
    assert!(!core.lists(&snap, None, ListKind::Tools, "launch_rocket"));
    assert_eq!(core.lists.len(), 3);
}

mod lists;
