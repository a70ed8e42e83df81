//! Golden vectors: bytes written by Go's `encoding/json` (tools/govectors) and tokens
//! attenuated by the published Python SDK `intentgate==0.3.0` (tests/python). Our encoder,
//! signer and hasher must reproduce them exactly.

// Test helpers fail the test by panicking; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use intentgate_shared::audit::{AuditEvent, ChainedEvent, chain_key, verify_chain};
use intentgate_shared::gojson;
use intentgate_shared::key_ring::{KeyRing, MasterKey};
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::{Caveat, Claims, Token, TokenError};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default()
}

fn claims_from(p: &Value) -> Claims {
    Claims {
        version: p["v"].as_i64().unwrap(),
        jti: s(&p["jti"]),
        root_jti: s(&p["root_jti"]),
        iss: s(&p["iss"]),
        tenant: s(&p["tenant"]),
        zone: p.get("zone").map(s),
        sub: s(&p["sub"]),
        iat: p["iat"].as_i64().unwrap(),
        nbf: p["nbf"].as_i64().unwrap_or(0),
    }
}

fn caveat_from(c: &Value) -> Caveat {
    Caveat {
        kind: s(&c["t"]),
        tools: strings(&c["tools"]),
        agent: s(&c["agent"]),
        exp: c["exp"].as_i64().unwrap_or(0),
        max_calls: c["max_calls"].as_i64().unwrap_or(0),
        step_up_at: c["step_up_at"].as_i64().unwrap_or(0),
    }
}

#[test]
fn go_tokens_are_reproduced_byte_for_byte() {
    let v = load("go_tokens.json");
    let mut checked = 0;
    for case in v["cases"].as_array().unwrap() {
        let name = s(&case["name"]);
        if let Some(raw) = case.get("invalid_utf8_b64").and_then(Value::as_object) {
            // Rust strings cannot hold invalid UTF-8: check the byte encoder on each raw value.
            let mut canonical = s(&case["payload_json"]);
            for step in case["caveat_steps"].as_array().unwrap() {
                canonical.push_str(&s(&step["canonical_json"]));
            }
            for (path, b64) in raw {
                let mut enc = Vec::new();
                gojson::write_bytes_as_str(&mut enc, &STANDARD.decode(s(b64)).unwrap());
                let enc = String::from_utf8(enc).unwrap();
                assert!(
                    canonical.contains(&enc),
                    "{name} {path}: {enc} not in canonical bytes"
                );
            }
            continue;
        }
        let key = MasterKey::from_bytes(&unhex(&s(&case["master_key_hex"])));
        let claims = claims_from(&case["payload"]);
        let mut payload = Vec::new();
        claims.write_canonical(&mut payload);
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            s(&case["payload_json"]),
            "{name}: payload"
        );
        let mut token = Token::sign(&key, claims);
        assert_eq!(hex(token.signature()), s(&case["sig0_hex"]), "{name}: sig0");
        assert_eq!(
            token.encode(),
            s(&case["wire_no_caveats"]),
            "{name}: wire without caveats"
        );
        for (step, c) in case["caveat_steps"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["caveats"].as_array().unwrap())
        {
            let caveat = caveat_from(c);
            assert_eq!(
                String::from_utf8(caveat.canonical()).unwrap(),
                s(&step["canonical_json"]),
                "{name}: caveat"
            );
            token = token.attenuate(caveat).unwrap();
            assert_eq!(
                hex(token.signature()),
                s(&step["sig_hex"]),
                "{name}: step sig"
            );
            assert_eq!(
                token.encode(),
                s(&step["wire_after"]),
                "{name}: wire after step"
            );
        }
        assert_eq!(token.encode(), s(&case["wire"]), "{name}: final wire");
        match Token::decode_verified(&s(&case["wire"]), &KeyRing::single(key)) {
            Ok(decoded) => assert_eq!(decoded, token, "{name}: decode"),
            // Vectors with empty required claims: Go's verifier refuses them too.
            Err(TokenError::Missing(field)) => {
                let c = &token.claims;
                let empty = [&c.jti, &c.root_jti, &c.tenant, &c.sub]
                    .iter()
                    .any(|f| f.is_empty())
                    || c.iat == 0
                    || c.zone.as_deref() == Some("");
                assert!(
                    empty,
                    "{name}: claims are complete, yet {field} was reported missing"
                );
            }
            Err(TokenError::UnsupportedVersion(v)) => assert_eq!(v, token.claims.version, "{name}"),
            Err(e) => panic!("{name}: {e}"),
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} token vectors checked");
}

#[test]
fn go_decode_leniency_is_narrowed_on_purpose() {
    // Go accepts these spellings (its verifier re-marshals parsed fields); we accept only the
    // forms Go and the SDKs actually write, so every field has one spelling.
    let accept = [
        "canonical",
        "reordered_pretty",
        "escape_variants",
        "surrogate_pair_escape",
    ];
    let reject = [
        "case_insensitive_keys",
        "unknown_keys",
        "duplicate_key_last_wins",
        "duplicate_key_first_real",
        "null_sub",
        "explicit_zero_and_null_fields",
        "invalid_utf8_in_wire_signed_over_fffd",
        "minted_with_invalid_utf8",
        "lone_surrogate_escape",
        "float_iat",
        "string_iat",
        "exponent_iat",
    ];
    let v = load("go_tokens.json");
    let ring = KeyRing::single(MasterKey::from_bytes(&unhex(&s(&v["master_key_hex"]))));
    let mut seen = 0;
    for case in v["decode_cases"].as_array().unwrap() {
        let name = s(&case["name"]);
        let result = Token::decode_verified(&s(&case["wire"]), &ring);
        if accept.contains(&name.as_str()) {
            assert!(
                case["sig_valid"].as_bool().unwrap(),
                "{name}: Go rejects it too"
            );
            result.unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            assert!(
                reject.contains(&name.as_str()),
                "unclassified decode case {name}"
            );
            assert!(result.is_err(), "{name} must be rejected");
        }
        seen += 1;
    }
    assert_eq!(seen, accept.len() + reject.len());
}

#[test]
fn master_key_flavours_from_go_vectors() {
    let v = load("go_tokens.json");
    let want = MasterKey::from_bytes(&unhex(&s(&v["master_key_hex"]))).fingerprint();
    for field in [
        "master_key_b64url",
        "master_key_b64std",
        "master_key_b64std_nopad",
        "master_key_b64url_padded",
    ] {
        assert_eq!(
            MasterKey::parse(&s(&v[field])).unwrap().fingerprint(),
            want,
            "{field}"
        );
    }
}

#[test]
fn sdk_attenuated_tokens_verify_and_check() {
    let v = load("sdk_attenuate_v3.json");
    assert_eq!(s(&v["sdk_version"]), "0.3.0");
    let ring = KeyRing::single(MasterKey::parse(&s(&v["master_key_b64url"])).unwrap());
    let mut positives = 0;
    for case in v["cases"].as_array().unwrap() {
        let name = s(&case["name"]);
        let wire = s(&case["token"]);
        if let Some(expect) = case.get("expect") {
            if name == "unknown_fields_preserved" {
                // The SDK copies unknown keys it finds; Go never writes them. We refuse them
                // (docs/COMPATIBILITY.md) and say which key.
                let err = Token::decode(&wire).unwrap_err();
                assert!(
                    matches!(&err, TokenError::Json(m) if m.contains("unknown")),
                    "{err}"
                );
                continue;
            }
            let token =
                Token::decode_verified(&wire, &ring).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(token.claims.jti, s(&expect["jti"]), "{name}");
            assert_eq!(token.claims.root_jti, s(&expect["root_jti"]), "{name}");
            assert_eq!(token.claims.tenant, s(&expect["tenant"]), "{name}");
            assert_eq!(token.claims.sub, s(&expect["sub"]), "{name}");
            assert_eq!(token.claims.nbf, expect["nbf"].as_i64().unwrap(), "{name}");
            let mut payload = Vec::new();
            token.claims.write_canonical(&mut payload);
            assert_eq!(
                String::from_utf8(payload).unwrap(),
                s(&expect["payload_canonical"]),
                "{name}"
            );
            let canon: Vec<String> = token
                .caveats
                .iter()
                .map(|c| String::from_utf8(c.canonical()).unwrap())
                .collect();
            assert_eq!(canon, strings(&expect["caveats_canonical"]), "{name}");
            assert_eq!(
                URL_SAFE_NO_PAD.encode(token.signature()),
                s(&expect["sig"]),
                "{name}"
            );
            let now = expect["now"].as_i64().unwrap();
            if name == "max_calls_zero_omitted" {
                // The SDK writes max_calls=0 as a bare {"t":"max_calls"}; Go read it as "no
                // limit", we deny (docs/COMPATIBILITY.md).
                let err = token.check(now, &token.claims.sub, "anything").unwrap_err();
                assert!(
                    err.to_string()
                        .ends_with("max_calls caveat missing max_calls value"),
                    "{err}"
                );
                positives += 1;
                continue;
            }
            for tool in strings(&expect["allowed_tools"]) {
                token
                    .check(now, &token.claims.sub, &tool)
                    .unwrap_or_else(|e| panic!("{name}: {tool}: {e}"));
            }
            let reasons: BTreeMap<String, String> =
                serde_json::from_value(expect["denied_reasons"].clone()).unwrap_or_default();
            for tool in strings(&expect["denied_tools"]) {
                let err = token
                    .check(now, &token.claims.sub, &tool)
                    .expect_err(&format!("{name}: {tool} must be denied"));
                if let Some(want) = reasons.get(&tool) {
                    assert_eq!(
                        &err.to_string(),
                        want,
                        "{name}: {tool}: same reason text as the Go gateway"
                    );
                }
            }
            positives += 1;
        } else {
            assert_eq!(s(&case["expect_error"]), "signature", "{name}");
            let ring = match case.get("master_key_b64url_override") {
                Some(k) => KeyRing::single(MasterKey::parse(&s(k)).unwrap()),
                None => ring.clone(),
            };
            assert_eq!(
                Token::decode_verified(&wire, &ring).unwrap_err(),
                TokenError::SignatureMismatch,
                "{name}"
            );
        }
    }
    assert!(positives >= 20, "only {positives} SDK vectors checked");
}

/// Regenerates the SDK vectors with the real SDK and compares them with the committed file.
/// `cargo xtask test` provides the interpreter; without it the committed vectors still run.
#[test]
fn sdk_vectors_regenerate_identically() {
    let Some(python) = std::env::var_os("INTENTGATE_SDK_PYTHON") else {
        eprintln!(
            "note: INTENTGATE_SDK_PYTHON unset; not regenerating SDK vectors (cargo xtask test sets it)"
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/gen_token_vectors.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SDK vectors differ from a fresh run of intentgate 0.3.0:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn event_from(input: &Value) -> AuditEvent {
    let ts = Timestamp::parse_rfc3339(&s(&input["ts"])).unwrap();
    assert_eq!(
        ts.to_rfc3339_nano(),
        s(&input["ts"]),
        "input ts is already normalised"
    );
    AuditEvent {
        ts,
        event: s(&input["event"]),
        schema_version: s(&input["schema_version"]),
        decision: s(&input["decision"]).into(),
        check: s(&input["check"]).into(),
        reason: s(&input["reason"]),
        tenant: s(&input["tenant"]),
        agent_id: s(&input["agent_id"]),
        session_id: s(&input["session_id"]),
        tool: s(&input["tool"]),
        arg_keys: strings(&input["arg_keys"]),
        arg_values: None,
        capability_token_id: s(&input["capability_token_id"]),
        root_capability_token_id: s(&input["root_capability_token_id"]),
        caveat_count: input["caveat_count"].as_i64().unwrap(),
        pending_id: s(&input["pending_id"]),
        decided_by: s(&input["decided_by"]),
        intent_summary: s(&input["intent_summary"]),
        latency_ms: input["latency_ms"].as_i64().unwrap(),
        remote_ip: s(&input["remote_ip"]),
        upstream_status: input["upstream_status"].as_i64().unwrap(),
        requires_step_up: input["requires_step_up"].as_bool().unwrap(),
        elevation_id: s(&input["elevation_id"]),
        trace: None,
    }
}

#[test]
fn go_timestamps_normalise_identically() {
    let v = load("go_audit.json");
    for case in v["timestamp_cases"].as_array().unwrap() {
        let got = Timestamp::parse_rfc3339(&s(&case["input"]))
            .unwrap()
            .to_rfc3339_nano();
        assert_eq!(got, s(&case["normalized"]), "{}", s(&case["description"]));
    }
}

#[test]
fn go_audit_events_hash_identically() {
    let v = load("go_audit.json");
    let mut checked = 0;
    for case in v["events"].as_array().unwrap() {
        let name = s(&case["name"]);
        if let Some(raw) = case.get("invalid_utf8_b64").and_then(Value::as_object) {
            let canonical = s(&case["canonical_json"]);
            for (path, b64) in raw {
                let mut enc = Vec::new();
                gojson::write_bytes_as_str(&mut enc, &STANDARD.decode(s(b64)).unwrap());
                assert!(
                    canonical.contains(std::str::from_utf8(&enc).unwrap()),
                    "{name} {path}"
                );
            }
            continue;
        }
        let e = event_from(&case["input"]);
        assert_eq!(
            String::from_utf8(e.canonical()).unwrap(),
            s(&case["canonical_json"]),
            "{name}"
        );
        assert_eq!(
            e.chain_hash(&s(&case["prev_hash"])),
            s(&case["hash"]),
            "{name}"
        );
        assert_eq!(e.chain_key(), s(&case["chain_key"]), "{name}");
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} audit vectors checked");
}

#[test]
fn go_chains_verify_and_end_at_their_head() {
    let v = load("go_audit.json");
    for chain in v["chains"].as_array().unwrap() {
        let rows: Vec<ChainedEvent> = chain["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| ChainedEvent {
                event: event_from(&c["input"]),
                prev_hash: s(&c["prev_hash"]),
                hash: s(&c["hash"]),
            })
            .collect();
        for r in &rows {
            assert_eq!(chain_key(&r.event.tenant), s(&chain["chain_key"]));
        }
        let walk = verify_chain(&rows);
        assert_eq!(walk.broken, None, "{}", s(&chain["name"]));
        assert_eq!(walk.verified as usize, rows.len());
        assert_eq!(walk.last_hash.unwrap(), s(&chain["head_hash"]));
    }
}
