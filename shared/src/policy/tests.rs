use super::*;

fn input(tool: &str, args: Option<&str>) -> Value {
    Input {
        tool,
        args: args.map(|a| args_from_json(a).unwrap()),
        ..Input::default()
    }
    .to_value()
}

fn eval(policy: &Policy, tool: &str, args: Option<&str>) -> Decision {
    policy.evaluator().evaluate(input(tool, args))
}

#[test]
fn default_policy_runs_on_the_vm_and_decides_as_documented() {
    let p = Policy::default_policy().unwrap();
    assert!(p.uses_vm());
    let cases: &[(&str, Option<&str>, bool, &str)] = &[
        ("read_invoice", None, true, "read-only tool"),
        ("web_search", None, true, "routine write tool"),
        (
            "transfer_funds",
            Some(r#"{"amount_eur": 10000}"#),
            true,
            "transfer within 10000 EUR threshold",
        ),
        (
            "transfer_funds",
            Some(r#"{"amount_eur": "9999.5"}"#),
            true,
            "transfer within 10000 EUR threshold",
        ),
        (
            "transfer_funds",
            Some(r#"{"amount_eur": 10000.01}"#),
            false,
            "transfer above 10000 EUR threshold",
        ),
        (
            "transfer_funds",
            None,
            false,
            "no policy rule matched (default deny)",
        ),
        (
            "purge_audit",
            None,
            false,
            "destructive tool denied by default policy",
        ),
        (
            "launch_rocket",
            None,
            false,
            "no policy rule matched (default deny)",
        ),
    ];
    let mut ev = p.evaluator();
    for (tool, args, allow, reason) in cases {
        let d = ev.evaluate(input(tool, *args));
        assert_eq!(
            (d.allow, d.reason.as_str()),
            (*allow, *reason),
            "{tool} {args:?}"
        );
        assert!(!d.escalate && !d.requires_step_up);
    }
}

#[test]
fn decision_fields_are_read() {
    let p = Policy::compile(
        r#"package intentgate.policy
decision := {"allow": false, "reason": "needs a human", "escalate": true, "requires_step_up": true} if input.tool == "wire"
"#,
        Syntax::V1,
    )
    .unwrap();
    let d = eval(&p, "wire", None);
    assert_eq!(
        d,
        Decision {
            allow: false,
            reason: "needs a human".into(),
            escalate: true,
            requires_step_up: true,
            error: false,
        }
    );
}

#[test]
fn bad_results_fail_closed_with_a_reason() {
    let cases = [
        ("decision := 1", SHAPE),
        (r#"decision := {"allow": "yes"}"#, SHAPE),
        (r#"decision := {"reason": "x"}"#, SHAPE),
        (
            r#"decision := {"allow": true, "reason": 3}"#,
            "policy decision reason must be a string",
        ),
        (
            r#"decision := {"allow": true, "escalate": "no"}"#,
            "policy decision escalate must be a boolean",
        ),
        (
            r#"decision := {"allow": true} if input.tool == "never""#,
            "policy returned no decision (undefined)",
        ),
    ];
    for (rule, reason) in cases {
        let src = format!("package intentgate.policy\n{rule}\n");
        let d = eval(&Policy::compile(&src, Syntax::V1).unwrap(), "t", None);
        assert_eq!((d.allow, d.reason.as_str()), (false, reason), "{rule}");
    }
}

#[test]
fn conflicting_complete_rules_deny_with_an_evaluation_error() {
    let src = r#"package intentgate.policy
decision := {"allow": true} if input.tool == "t"
decision := {"allow": false} if input.tool == "t"
"#;
    let d = eval(&Policy::compile(src, Syntax::V1).unwrap(), "t", None);
    assert!(!d.allow);
    assert!(
        d.reason.starts_with("policy evaluation error"),
        "{}",
        d.reason
    );
}

#[test]
fn runaway_policies_hit_the_instruction_budget() {
    let src = r#"package intentgate.policy
decision := {"allow": count([x | some x in numbers.range(1, 10000000)]) > 0}
"#;
    let p = Policy::compile(src, Syntax::V1).unwrap();
    let d = eval(&p, "t", None);
    assert!(!d.allow);
    assert!(d.reason.contains("instruction"), "{}", d.reason);
}

#[test]
fn compile_errors_are_precise() {
    assert_eq!(
        Policy::compile("  ", Syntax::V1).unwrap_err(),
        PolicyError::Empty
    );
    let big = "#".repeat(MAX_SOURCE_BYTES + 1);
    assert!(matches!(
        Policy::compile(&big, Syntax::V1),
        Err(PolicyError::TooLarge { .. })
    ));
    let err = Policy::compile("package intentgate.policy\ndecision := {", Syntax::V1).unwrap_err();
    assert!(
        matches!(&err, PolicyError::Compile(m) if m.contains("intentgate_policy.rego")),
        "{err}"
    );
    let err = Policy::compile("package other\nx := 1\n", Syntax::V1).unwrap_err();
    assert_eq!(err, PolicyError::NoDecisionRule);
    let err = Policy::compile(
        "package intentgate.policy\ndecision := foo.bar(1)\n",
        Syntax::V1,
    )
    .unwrap_err();
    assert!(matches!(err, PolicyError::Compile(_)), "{err}");
}

#[test]
fn v0_syntax_needs_the_compat_switch() {
    let v0 = r#"package intentgate.policy
decision = {"allow": true, "reason": "v0"} { input.tool == "t" }
"#;
    assert!(matches!(
        Policy::compile(v0, Syntax::V1),
        Err(PolicyError::Compile(_))
    ));
    let d = eval(&Policy::compile(v0, Syntax::V0).unwrap(), "t", None);
    assert_eq!((d.allow, d.reason.as_str()), (true, "v0"));
    // A v0-mode module may still opt into v1 keywords.
    let d = eval(
        &Policy::compile(DEFAULT_POLICY, Syntax::V0).unwrap(),
        "read_x",
        None,
    );
    assert!(d.allow);
    assert_eq!("v0".parse::<Syntax>().unwrap(), Syntax::V0);
    assert!("v2".parse::<Syntax>().is_err());
}

#[test]
fn input_document_carries_capability_intent_and_agent() {
    let src = r#"package intentgate.policy
import rego.v1
decision := {"allow": true, "reason": "ok"} if {
    input.capability.tenant == "acme"
    input.capability.step_up_at == 42
    not input.capability.issuer
    input.intent.summary == "pay"
    "x" in input.intent.allowed_tools
    input.agent.calls_today_for_tool < 50
    input.agent_id == "a1"
    input.args.n == 1
}
"#;
    let p = Policy::compile(src, Syntax::V1).unwrap();
    let cap = CapabilityInput {
        subject: "a1".into(),
        tenant: "acme".into(),
        step_up_at: 42,
        ..Default::default()
    };
    let intent = IntentInput {
        summary: "pay".into(),
        allowed_tools: vec!["x".into()],
        ..Default::default()
    };
    let agent = AgentInput {
        id: "a1".into(),
        calls_today_for_tool: 49,
        ..Default::default()
    };
    let mk = |agent: &AgentInput| {
        Input {
            tool: "x",
            args: Some(args_from_json(r#"{"n":1}"#).unwrap()),
            agent_id: "a1",
            capability: Some(cap.to_value()),
            intent: Some(intent.to_value()),
            agent: Some(agent.to_value()),
            ..Input::default()
        }
        .to_value()
    };
    let mut ev = p.evaluator();
    assert!(ev.evaluate(mk(&agent)).allow);
    let busy = AgentInput {
        calls_today_for_tool: 50,
        ..agent
    };
    assert!(!ev.evaluate(mk(&busy)).allow);
}

#[test]
fn policies_outside_the_vm_fall_back_to_the_interpreter() {
    let src = r#"package intentgate.policy
import rego.v1
allowed if input.tool == "t"
decision := {"allow": x} if { x := allowed with input.tool as "t" }
"#;
    let p = Policy::compile(src, Syntax::V1).unwrap();
    assert!(!p.uses_vm());
    assert!(eval(&p, "other", None).allow);
}

#[test]
fn policy_and_values_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    fn assert_send<T: Send>() {}
    assert_send::<Evaluator>();
    assert!(args_from_json("{").is_err());
}

fn method_input(method: &str, phase: &str, tool: &str, params: Option<&str>) -> Value {
    Input {
        tool,
        method,
        phase,
        params: params.map(|p| args_from_json(p).unwrap()),
        ..Input::default()
    }
    .to_value()
}

#[test]
fn the_default_policy_governs_every_method_and_the_list_phase() {
    let p = Policy::default_policy().unwrap();
    assert!(p.governs_methods());
    let mut ev = p.evaluator();
    let cases: &[(&str, &str, &str, Option<&str>, bool)] = &[
        (
            "initialize",
            "call",
            "",
            Some(r#"{"protocolVersion":"2025-06-18"}"#),
            true,
        ),
        ("notifications/initialized", "call", "", None, true),
        ("ping", "call", "", None, true),
        ("tools/list", "call", "", None, true),
        ("resources/templates/list", "call", "", None, true),
        (
            "resources/read",
            "call",
            "",
            Some(r#"{"uri":"file:///a"}"#),
            true,
        ),
        ("prompts/get", "call", "", Some(r#"{"name":"p"}"#), true),
        ("completion/complete", "call", "", None, true),
        ("sampling/createMessage", "call", "", None, false),
        ("made/up", "call", "", None, false),
        // The list phase: entries a call could use are listed.
        ("tools/call", "list", "read_invoice", None, true),
        ("tools/call", "list", "transfer_funds", None, true),
        ("tools/call", "list", "purge_audit", None, false),
        ("tools/call", "list", "launch_rocket", None, false),
        // tools/call with the method set decides as without it.
        ("tools/call", "call", "transfer_funds", None, false),
        ("tools/call", "call", "read_invoice", None, true),
    ];
    for &(method, phase, tool, params, allow) in cases {
        let d = ev.evaluate(method_input(method, phase, tool, params));
        assert_eq!(d.allow, allow, "{method} {phase} {tool}: {}", d.reason);
    }
}

#[test]
fn a_policy_governs_methods_when_its_code_reads_them() {
    let with = |body: &str| {
        let src = format!(
            "package intentgate.policy\nimport rego.v1\ndefault decision := {{\"allow\": false, \"reason\": \"no\"}}\n{body}\n"
        );
        Policy::compile(&src, Syntax::V1).unwrap().governs_methods()
    };
    assert!(!with(
        "decision := {\"allow\": true, \"reason\": \"t\"} if input.tool == \"x\""
    ));
    assert!(!with("# input.method is not read: a comment\nx := 1"));
    assert!(with(
        "decision := {\"allow\": true, \"reason\": \"m\"} if input.method == \"ping\""
    ));
    assert!(with(
        "decision := {\"allow\": true, \"reason\": \"m\"} if input[\"phase\"] == \"list\""
    ));
    assert!(with("x if startswith(input.params.uri, \"a\")"));
    let default = Policy::default_policy().unwrap();
    assert!(default.governs_methods() && !default.reads_params());
}
