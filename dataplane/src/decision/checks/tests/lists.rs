//! Lists agree with calls: for random grants and random catalogues, an entry is listed
//! exactly when a call using it would be allowed (under a policy whose rules do not depend on
//! arguments, where the two can be compared).

use super::*;
use crate::list_filter::{ListKind, Visible, visible};
use proptest::prelude::*;

const POLICY: &str = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "no"}
decision := {"allow": true, "reason": "t"} if {
	input.method == "tools/call"
	not startswith(input.tool, "x_")
}
decision := {"allow": true, "reason": "p"} if {
	input.method == "prompts/get"
	input.params.name != "p_secret"
}
decision := {"allow": true, "reason": "r"} if {
	input.method == "resources/read"
	not startswith(input.params.uri, "f:/hr/")
}
decision := {"allow": true, "reason": "plumbing"} if input.method == "tools/list"
"#;

const TOOLS: [&str; 5] = ["a", "b", "x_c", "d", "x_e"];
const PROMPTS: [&str; 4] = ["p1", "p2", "p_secret", "p3"];
const URIS: [&str; 6] = [
    "f:/pub/a",
    "f:/pub/b",
    "f:/hr/pay",
    "f:/priv/k",
    "g:/z",
    "f:/pub/../hr/pay",
];

fn arb_grant() -> impl Strategy<Value = Caveat> {
    let sub =
        |names: &'static [&'static str]| prop::collection::vec(prop::sample::select(names), 0..3);
    let prefixes: &'static [&'static str] = &["f:/pub/", "f:/hr/", "f:/priv/", "g:", "f:/"];
    prop_oneof![
        sub(&TOOLS).prop_map(Caveat::tool_allow),
        sub(&TOOLS).prop_map(Caveat::tool_deny),
        sub(&PROMPTS).prop_map(|v| Caveat::list(kind::PROMPT_ALLOW, v)),
        sub(&PROMPTS).prop_map(|v| Caveat::list(kind::PROMPT_DENY, v)),
        sub(prefixes).prop_map(|v| Caveat::list(kind::RESOURCE_ALLOW, v)),
        sub(prefixes).prop_map(|v| Caveat::list(kind::RESOURCE_DENY, v)),
    ]
}

fn call_allowed(core: &mut Core, snap: &Snapshot, auth: &str, kind: ListKind, name: &str) -> bool {
    let budget = Budget::new(None, None);
    let params = args(&serde_json::json!({kind.key(): name}).to_string());
    let c = match kind {
        ListKind::Tools => call(Some(auth), name, None),
        _ => method(
            Some(auth),
            kind.use_method(),
            kind.target(name),
            Some(&params),
        ),
    };
    matches!(
        core.decide(snap, &STRICT, &budget, &c),
        Verdict::Allow { .. }
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn an_entry_is_listed_exactly_when_a_call_using_it_is_allowed(
        grants in prop::collection::vec(arb_grant(), 0..5),
    ) {
        let snap = snapshot(Policy::compile(POLICY, Syntax::V1).unwrap());
        let mut core = Core::new();
        let (auth, _) = bearer(grants);
        let token = core.verify(&snap, auth.as_bytes()).token.unwrap();
        let catalogue = [
            (ListKind::Tools, &TOOLS[..]),
            (ListKind::Prompts, &PROMPTS[..]),
            (ListKind::Resources, &URIS[..]),
        ];
        for (kind, names) in catalogue {
            for name in names {
                let shown = visible(&mut core, &snap, Some(&token), kind, name, NOW_S)
                    == Visible::Shown;
                let allowed = call_allowed(&mut core, &snap, &auth, kind, name);
                prop_assert_eq!(shown, allowed, "{:?} {}", kind, name);
            }
        }
    }
}
