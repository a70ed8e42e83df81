use super::*;
use proptest::prelude::*;

const NOW: i64 = 1_790_000_000;

fn key(b: u8) -> MasterKey {
    MasterKey::from_bytes(&[b; 32])
}

fn ring() -> KeyRing {
    KeyRing::single(key(7))
}

fn mint(caveats: Vec<Caveat>) -> Token {
    let req = MintRequest {
        subject: "agent-1".into(),
        issuer: "test".into(),
        tenant: "acme".into(),
        caveats,
        ..MintRequest::default()
    };
    Token::mint(&key(7), req, NOW).unwrap()
}

fn b64(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

#[test]
fn mint_encode_decode_verify_round_trip() {
    let t = mint(vec![
        Caveat::exp(NOW + 60),
        Caveat::tool_allow(["read_x"]),
        Caveat::max_calls(5),
    ]);
    let wire = t.encode();
    let back = Token::decode_verified(&wire, &ring()).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.claims.jti, back.claims.root_jti);
    assert_eq!(back.claims.jti.len(), 22);
    assert_eq!(back.max_calls(), Some(5));
    assert_eq!(back.expires_at(), Some(NOW + 60));
    back.check(NOW, "agent-1", "read_x").unwrap();
}

#[test]
fn jti_starts_with_big_endian_seconds() {
    let jti = new_jti(0x0102_0304).unwrap();
    let bytes = URL_SAFE_NO_PAD.decode(jti).unwrap();
    assert_eq!(&bytes[..4], &[1, 2, 3, 4]);
    assert_eq!(bytes.len(), 16);
    assert_ne!(new_jti(1).unwrap(), new_jti(1).unwrap());
}

#[test]
fn wire_json_has_go_field_order() {
    let t = mint(vec![Caveat::tool_deny(["a<b"])]);
    let json = String::from_utf8(URL_SAFE_NO_PAD.decode(t.encode()).unwrap()).unwrap();
    let order: Vec<usize> = [
        "\"v\":3",
        "\"jti\"",
        "\"root_jti\"",
        "\"iss\"",
        "\"tenant\"",
        "\"sub\"",
        "\"iat\"",
        "\"cav\"",
        "\"sig\"",
    ]
    .iter()
    .map(|k| {
        json.find(k)
            .unwrap_or_else(|| panic!("{k} missing in {json}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{json}");
    assert!(
        json.contains(r#"{"t":"tool_deny","tools":["a\u003cb"]}"#),
        "{json}"
    );
    assert!(!json.contains("nbf"));
}

#[test]
fn attenuation_needs_no_key_and_keeps_ids() {
    let parent = mint(vec![]);
    let child = parent.clone().attenuate(Caveat::tool_allow(["x"])).unwrap();
    assert_eq!(child.claims, parent.claims);
    child.verify(&ring()).unwrap();
    assert!(child.check(NOW, "agent-1", "y").is_err());
    assert!(parent.check(NOW, "agent-1", "y").is_ok());
}

#[test]
fn key_ring_accepts_previous_keys_only_for_verification() {
    let old = mint(vec![Caveat::exp(NOW + 1)]);
    let rotated = KeyRing::single(key(9)).with_previous(key(7));
    old.verify(&rotated).unwrap();
    assert_eq!(
        old.verify(&KeyRing::single(key(9))),
        Err(TokenError::SignatureMismatch)
    );
    let fresh = Token::mint(
        rotated.current(),
        MintRequest {
            subject: "s".into(),
            tenant: "t".into(),
            ..Default::default()
        },
        NOW,
    )
    .unwrap();
    assert_eq!(fresh.verify(&ring()), Err(TokenError::SignatureMismatch));
}

#[test]
fn caveat_rules() {
    let t = mint(vec![Caveat::exp(NOW + 10)]);
    assert!(t.check(NOW + 9, "a", "t").is_ok());
    assert_eq!(
        t.check(NOW + 10, "a", "t").unwrap_err().to_string(),
        "caveat 0 (exp): expired"
    );
    let t = mint(vec![
        Caveat::agent_lock("agent-1"),
        Caveat::tool_deny(["drop"]),
    ]);
    assert!(t.check(NOW, "agent-1", "read").is_ok());
    assert_eq!(
        t.check(NOW, "agent-2", "read").unwrap_err().to_string(),
        r#"caveat 0 (agent_lock): token bound to "agent-1", request from "agent-2""#
    );
    assert_eq!(
        t.check(NOW, "agent-1", "drop").unwrap_err().to_string(),
        r#"caveat 1 (tool_deny): tool "drop" is forbidden"#
    );
    let t = mint(vec![Caveat::of("teleport")]);
    assert_eq!(
        t.check(NOW, "a", "b").unwrap_err().to_string(),
        r#"caveat 0 (teleport): unknown caveat type "teleport" (deny by default)"#
    );
    let t = mint(vec![Caveat::step_up(-1)]);
    assert!(matches!(
        t.check(NOW, "a", "b"),
        Err(Denial::Caveat {
            reason: CaveatFailure::NegativeStepUp,
            ..
        })
    ));
    let t = mint(vec![Caveat::exp(0)]);
    assert!(matches!(
        t.check(NOW, "a", "b"),
        Err(Denial::Caveat {
            reason: CaveatFailure::MissingExp,
            ..
        })
    ));
    let t = mint(vec![Caveat::agent_lock("")]);
    assert!(matches!(
        t.check(NOW, "a", "b"),
        Err(Denial::Caveat {
            reason: CaveatFailure::MissingAgent,
            ..
        })
    ));
    let t = mint(vec![Caveat::max_calls(-1)]);
    assert!(matches!(
        t.check(NOW, "a", "b"),
        Err(Denial::Caveat {
            reason: CaveatFailure::NegativeMaxCalls,
            ..
        })
    ));
    let t = mint(vec![Caveat::step_up(NOW - 5), Caveat::step_up(NOW - 1)]);
    assert_eq!(t.step_up_at(), Some(NOW - 1));
}

#[test]
fn nbf_is_honoured() {
    let req = MintRequest {
        subject: "s".into(),
        tenant: "t".into(),
        not_before: NOW + 5,
        ..Default::default()
    };
    let t = Token::mint(&key(7), req, NOW).unwrap();
    assert_eq!(t.check(NOW, "s", "x"), Err(Denial::NotYetValid));
    assert!(t.check(NOW + 5, "s", "x").is_ok());
    Token::decode_verified(&t.encode(), &ring()).unwrap();
}

#[test]
fn v4_tokens_with_zone_round_trip() {
    let req = MintRequest {
        subject: "s".into(),
        tenant: "t".into(),
        zone: Some("eu".into()),
        ..Default::default()
    };
    let t = Token::mint(&key(7), req, NOW).unwrap();
    assert_eq!(t.claims.version, VERSION_4);
    let json = String::from_utf8(URL_SAFE_NO_PAD.decode(t.encode()).unwrap()).unwrap();
    assert!(
        json.contains(r#""tenant":"t","zone":"eu","sub":"s""#),
        "{json}"
    );
    Token::decode_verified(&t.encode(), &ring()).unwrap();
}

#[test]
fn malformed_tokens_get_precise_errors() {
    let sig = URL_SAFE_NO_PAD.encode([0u8; 32]);
    let base = |extra: &str| {
        b64(&format!(
            r#"{{"v":3,"jti":"j","root_jti":"j","iss":"","tenant":"t","sub":"s","iat":1{extra},"sig":"{sig}"}}"#
        ))
    };
    let cases: Vec<(String, TokenError)> = vec![
        (String::new(), TokenError::Empty),
        (
            "a".repeat(MAX_TOKEN_BYTES + 1),
            TokenError::TooLong {
                len: MAX_TOKEN_BYTES + 1,
                max: MAX_TOKEN_BYTES,
            },
        ),
        ("abc=".into(), TokenError::NotBase64),
        ("a+b/".into(), TokenError::NotBase64),
        (
            b64(r#"{"v":2,"jti":"j"}"#),
            TokenError::UnsupportedVersion(2),
        ),
        (b64(r#"{"jti":"j"}"#), TokenError::UnsupportedVersion(0)),
        (
            b64(&format!(
                r#"{{"v":3,"root_jti":"j","tenant":"t","sub":"s","iat":1,"sig":"{sig}"}}"#
            )),
            TokenError::Missing("jti"),
        ),
        (
            b64(&format!(
                r#"{{"v":3,"jti":"j","root_jti":"j","tenant":"","sub":"s","iat":1,"sig":"{sig}"}}"#
            )),
            TokenError::Missing("tenant"),
        ),
        (
            b64(&format!(
                r#"{{"v":3,"jti":"j","root_jti":"j","tenant":"t","sub":"s","sig":"{sig}"}}"#
            )),
            TokenError::Missing("iat"),
        ),
        (
            b64(r#"{"v":3,"jti":"j","root_jti":"j","tenant":"t","sub":"s","iat":1}"#),
            TokenError::Missing("sig"),
        ),
        (
            b64(r#"{"v":3,"jti":"j","root_jti":"j","tenant":"t","sub":"s","iat":1,"sig":"AAAA"}"#),
            TokenError::BadSignatureEncoding,
        ),
        (
            b64(r#"{"v":3,"jti":"j","root_jti":"j","tenant":"t","sub":"s","iat":1,"sig":"!!"}"#),
            TokenError::BadSignatureEncoding,
        ),
        (
            b64(&format!(
                r#"{{"v":3,"jti":"j","root_jti":"j","tenant":"t","zone":"z","sub":"s","iat":1,"sig":"{sig}"}}"#
            )),
            TokenError::UnexpectedZone,
        ),
        (
            b64(&format!(
                r#"{{"v":4,"jti":"j","root_jti":"j","tenant":"t","sub":"s","iat":1,"sig":"{sig}"}}"#
            )),
            TokenError::Missing("zone"),
        ),
    ];
    for (wire, want) in cases {
        assert_eq!(Token::decode(&wire).unwrap_err(), want, "{wire}");
    }
    // JSON-level problems name the offending key.
    for (extra, needle) in [
        (r#","JTI":"x""#, "unknown field `JTI`"),
        (r#","jti":"x""#, "duplicate field `jti`"),
        (
            r#","cav":[{"t":"exp","exp":1,"colour":"red"}]"#,
            "unknown caveat field `colour`",
        ),
        (r#","cav":[{"tools":["a"]}]"#, "caveat is missing `t`"),
        (r#","cav":{}"#, "invalid type"),
        (r#","nbf":1.5"#, "invalid type"),
    ] {
        match Token::decode(&base(extra)) {
            Err(TokenError::Json(m)) => assert!(m.contains(needle), "{m} lacks {needle}"),
            other => panic!("{extra}: {other:?}"),
        }
    }
    assert!(matches!(
        Token::decode(&b64("[1]")),
        Err(TokenError::Json(_))
    ));
    assert!(matches!(
        Token::decode(&b64("{} x")),
        Err(TokenError::Json(_))
    ));
    let many: Vec<String> = (0..=MAX_CAVEATS)
        .map(|_| r#"{"t":"exp","exp":9}"#.to_string())
        .collect();
    assert_eq!(
        Token::decode(&base(&format!(r#","cav":[{}]"#, many.join(",")))).unwrap_err(),
        TokenError::TooManyCaveats {
            count: MAX_CAVEATS + 1,
            max: MAX_CAVEATS
        }
    );
    let full = mint(
        (0..MAX_CAVEATS)
            .map(|i| Caveat::exp(NOW + i as i64 + 1))
            .collect(),
    );
    assert!(matches!(
        full.attenuate(Caveat::exp(1)),
        Err(TokenError::TooManyCaveats { .. })
    ));
    assert_eq!(
        Token::mint(&key(1), MintRequest::default(), NOW).unwrap_err(),
        TokenError::MissingSubject
    );
}

#[test]
fn alternative_spellings_of_absent_or_escaped_fields_are_refused() {
    let t = mint(vec![]);
    let json = String::from_utf8(URL_SAFE_NO_PAD.decode(t.encode()).unwrap()).unwrap();
    for (patch, needle) in [
        (r#"{"nbf":null,"#, "invalid type: null"),
        (r#"{"cav":null,"#, "invalid type: null"),
        (r#"{"cav":[],"#, "an empty cav list must be omitted"),
        (r#"{"nbf":0,"#, "nbf 0 must be omitted"),
    ] {
        match Token::decode(&b64(&json.replacen('{', patch, 1))) {
            Err(TokenError::Json(m)) => assert!(m.contains(needle), "{patch}: {m}"),
            other => panic!("{patch}: {other:?}"),
        }
    }
    let escaped = json.replacen(r#""jti""#, r#""j\u0074i""#, 1);
    match Token::decode(&b64(&escaped)) {
        Err(TokenError::Json(m)) => assert!(m.contains("escaped key"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Whitespace and key order stay free: the Python SDK re-encodes with spaces.
    let spaced = json.replace(',', ", ").replace(':', ": ");
    Token::decode_verified(&b64(&spaced), &ring()).unwrap();
}

#[test]
fn resource_and_prompt_caveats_govern_their_own_targets() {
    let t = mint(vec![
        Caveat::tool_allow(["read_invoice"]),
        Caveat::list(kind::RESOURCE_ALLOW, ["file:///public/", "db://reports/"]),
        Caveat::list(kind::RESOURCE_DENY, ["file:///public/secret/"]),
        Caveat::list(kind::PROMPT_DENY, ["leak"]),
    ]);
    let ok = |target| t.check_target(NOW, "agent-1", target).is_ok();
    let why = |target| {
        t.check_target(NOW, "agent-1", target)
            .unwrap_err()
            .to_string()
    };
    assert!(ok(Target::Resource("file:///public/a.txt")));
    assert!(ok(Target::Resource("db://reports/q1")));
    assert!(ok(Target::Prompt("summarize")));
    assert!(ok(Target::Nothing));
    // Tool caveats do not govern resources, resource caveats do not govern tools.
    assert!(ok(Target::Tool("read_invoice")));
    assert_eq!(
        why(Target::Tool("pay")),
        "caveat 0 (tool_allow): tool \"pay\" not in allowed set"
    );
    assert_eq!(
        why(Target::Resource("file:///etc/passwd")),
        "caveat 1 (resource_allow): resource \"file:///etc/passwd\" not under an allowed prefix"
    );
    assert_eq!(
        why(Target::Resource("file:///public/secret/k")),
        "caveat 2 (resource_deny): resource \"file:///public/secret/k\" is forbidden"
    );
    assert_eq!(
        why(Target::Prompt("leak")),
        "caveat 3 (prompt_deny): prompt \"leak\" is forbidden"
    );
    for sneaky in [
        "file:///public/../etc/passwd",
        "file:///public/%2e%2e/etc/passwd",
        "file:///public/%2E%2E%2Fetc",
        "file:///public/.",
        "file:///public\\..\\x",
    ] {
        assert!(
            why(Target::Resource(sneaky)).contains("dot segments or encoded separators"),
            "{sneaky}"
        );
    }
    // Templates: shown when some URIs they yield may be allowed, hidden when all are denied.
    assert!(ok(Target::ResourceTemplate("file:///{path}")));
    assert!(ok(Target::ResourceTemplate("file:///public/{name}")));
    assert!(!ok(Target::ResourceTemplate("s3://{bucket}")));
    assert!(!ok(Target::ResourceTemplate("file:///public/secret/{k}")));
    let p = mint(vec![Caveat::list(kind::PROMPT_ALLOW, ["summarize"])]);
    assert!(
        p.check_target(NOW, "agent-1", Target::Prompt("summarize"))
            .is_ok()
    );
    assert_eq!(
        p.check_target(NOW, "agent-1", Target::Prompt("other"))
            .unwrap_err()
            .to_string(),
        "caveat 0 (prompt_allow): prompt \"other\" not in allowed set"
    );
}

#[test]
fn new_caveat_types_keep_the_go_encoding() {
    // The list rides in `tools`, so the canonical bytes (and the signature chain) follow the
    // Go gateway's rules; a Go verifier denies the unknown type, as it should.
    let c = Caveat::list(kind::RESOURCE_ALLOW, ["file:///a/"]);
    assert_eq!(
        String::from_utf8(c.canonical()).unwrap(),
        r#"{"t":"resource_allow","tools":["file:///a/"]}"#
    );
    let t = mint(vec![c]);
    let back = Token::decode_verified(&t.encode(), &ring()).unwrap();
    assert_eq!(back.caveats[0].kind, "resource_allow");
}

#[test]
fn debug_never_shows_the_signature() {
    let t = mint(vec![]);
    let shown = format!("{t:?}");
    assert!(shown.contains("<redacted>"));
    assert!(!shown.contains(&URL_SAFE_NO_PAD.encode(t.signature())));
}

fn arb_caveat() -> impl Strategy<Value = Caveat> {
    let tools = prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d"]), 0..3);
    prop_oneof![
        (NOW - 5..NOW + 5).prop_map(Caveat::exp),
        prop::sample::select(vec!["ag1", "ag2", ""]).prop_map(Caveat::agent_lock),
        tools.clone().prop_map(Caveat::tool_allow),
        tools.prop_map(Caveat::tool_deny),
        (-1i64..4).prop_map(Caveat::max_calls),
        (-1i64..NOW).prop_map(Caveat::step_up),
        "[a-z_]{1,8}".prop_map(|k| Caveat::of(&k)),
        (
            prop::sample::select(vec![kind::RESOURCE_ALLOW, kind::RESOURCE_DENY]),
            prop::collection::vec(
                prop::sample::select(vec!["f:/a/", "f:/a/b/", "f:/c", "g:"]),
                0..3
            ),
        )
            .prop_map(|(k, v)| Caveat::list(k, v)),
        (
            prop::sample::select(vec![kind::PROMPT_ALLOW, kind::PROMPT_DENY]),
            prop::collection::vec(prop::sample::select(vec!["a", "b", "p"]), 0..3),
        )
            .prop_map(|(k, v)| Caveat::list(k, v)),
    ]
}

fn arb_target() -> impl Strategy<Value = Target<'static>> {
    prop_oneof![
        prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(Target::Tool),
        prop::sample::select(vec![
            "f:/a/x",
            "f:/a/b/y",
            "f:/c",
            "f:/cd",
            "g:z",
            "f:/a/../c",
            "f:/a/%2e%2e/c"
        ])
        .prop_map(Target::Resource),
        prop::sample::select(vec!["f:/{p}", "f:/a/{p}", "f:/a/b/{p}", "g:{x}", "h:{x}"])
            .prop_map(Target::ResourceTemplate),
        prop::sample::select(vec!["a", "b", "p", "q"]).prop_map(Target::Prompt),
        Just(Target::Nothing),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Appending any caveat never widens what a token allows.
    #[test]
    fn attenuation_never_widens(
        base in prop::collection::vec(arb_caveat(), 0..4),
        extra in arb_caveat(),
        now in NOW - 6..NOW + 6,
        agent in prop::sample::select(vec!["ag1", "ag2"]),
        tool in prop::sample::select(vec!["a", "b", "c", "d", "e"]),
    ) {
        let parent = mint(base);
        let child = parent.clone().attenuate(extra).unwrap();
        prop_assert!(child.verify(&ring()).is_ok());
        if child.check(now, agent, tool).is_ok() {
            prop_assert!(parent.check(now, agent, tool).is_ok());
        }
        prop_assert!(child.max_calls().unwrap_or(i64::MAX) <= parent.max_calls().unwrap_or(i64::MAX));
    }

    /// The same for every kind of target: resources, templates, prompts, nothing.
    #[test]
    fn attenuation_never_widens_any_target(
        base in prop::collection::vec(arb_caveat(), 0..4),
        extra in arb_caveat(),
        agent in prop::sample::select(vec!["ag1", "ag2"]),
        target in arb_target(),
    ) {
        let parent = mint(base);
        let child = parent.clone().attenuate(extra).unwrap();
        if child.check_target(NOW, agent, target).is_ok() {
            prop_assert!(parent.check_target(NOW, agent, target).is_ok());
        }
        // A token whose caveats say nothing about resources or prompts lets them pass.
        let nothing_about_it = child.caveats.iter().all(|c| {
            !c.kind.starts_with("resource_") && !c.kind.starts_with("prompt_")
        });
        if nothing_about_it && matches!(target, Target::Resource(_) | Target::Prompt(_)) {
            prop_assert_eq!(
                child.check_target(NOW, agent, target).is_ok(),
                child.check_validity(NOW, agent).is_ok()
            );
        }
    }

    /// Changing any byte of the wire token makes it fail to decode or to verify.
    #[test]
    fn tampering_any_byte_fails(
        caveats in prop::collection::vec(arb_caveat(), 0..3),
        pos in any::<prop::sample::Index>(),
        replacement in prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec()),
    ) {
        let wire = mint(caveats).encode().into_bytes();
        let i = pos.index(wire.len());
        prop_assume!(wire[i] != replacement);
        let mut tampered = wire.clone();
        tampered[i] = replacement;
        let tampered = String::from_utf8(tampered).unwrap();
        prop_assert!(Token::decode_verified(&tampered, &ring()).is_err());
    }

    /// Removing or reordering caveats breaks the chain.
    #[test]
    fn dropping_a_caveat_fails(caveats in prop::collection::vec(arb_caveat(), 1..4), drop in any::<prop::sample::Index>()) {
        let mut t = mint(caveats);
        let i = drop.index(t.caveats.len());
        t.caveats.remove(i);
        prop_assert_eq!(t.verify(&ring()), Err(TokenError::SignatureMismatch));
    }
}
