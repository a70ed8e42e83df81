//! `intentgate token …` end to end: the real binary, as an operator runs it.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking; that is their job"
)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

fn intentgate(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_intentgate"));
    cmd.args(args)
        .env_remove("INTENTGATE_MASTER_KEY")
        .env_remove("INTENTGATE_MASTER_KEY_PREVIOUS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = intentgate(args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn fails(args: &[&str], stdin: Option<&str>) -> String {
    let out = intentgate(args, stdin);
    assert_eq!(out.status.code(), Some(1), "{args:?} must exit 1");
    String::from_utf8(out.stderr).unwrap()
}

fn mint(extra: &[&str]) -> String {
    let mut args = vec![
        "token",
        "mint",
        "--master-key",
        KEY,
        "--subject",
        "agent-1",
        "--tenant",
        "acme",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

#[test]
fn gen_key_prints_a_usable_32_byte_key() {
    let key = ok(&["token", "gen-key"]);
    assert_eq!(key.len(), 43, "{key}");
    let token = ok(&["token", "mint", "--master-key", &key, "--subject", "s"]);
    ok(&["token", "verify", "--master-key", &key, &token]);
    assert_ne!(key, ok(&["token", "gen-key"]));
}

#[test]
fn mint_then_verify_prints_claims() {
    let token = mint(&[
        "--tools",
        "read_invoice, web_search",
        "--forbidden",
        "delete",
        "--max-calls",
        "5",
        "--ttl",
        "10m",
    ]);
    let out: serde_json::Value =
        serde_json::from_str(&ok(&["token", "verify", "--master-key", KEY, &token])).unwrap();
    assert_eq!(out["verified"], true);
    assert_eq!(out["sub"], "agent-1");
    assert_eq!(out["tenant"], "acme");
    let kinds: Vec<&str> = out["caveats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["t"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["agent_lock", "exp", "tool_allow", "tool_deny", "max_calls"]
    );
    assert_eq!(
        out["caveats"][2]["tools"],
        serde_json::json!(["read_invoice", "web_search"])
    );
    ok(&[
        "token",
        "verify",
        "--master-key",
        KEY,
        "--tool",
        "read_invoice",
        &token,
    ]);
    let err = fails(
        &[
            "token",
            "verify",
            "--master-key",
            KEY,
            "--tool",
            "delete",
            &token,
        ],
        None,
    );
    assert!(err.contains("tool \"delete\" not in allowed set"), "{err}");
}

#[test]
fn mint_pretty_and_env_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_intentgate"))
        .args(["token", "mint", "--subject", "a", "--pretty"])
        .env("INTENTGATE_MASTER_KEY", KEY)
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["subject"], "a");
    assert_eq!(doc["tenant"], "default");
    assert!(doc["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(doc["jti"].as_str().unwrap().len(), 22);
}

#[test]
fn decode_needs_no_key_and_reads_stdin() {
    let token = mint(&[]);
    let out = intentgate(&["token", "decode"], Some(&format!("Bearer {token}\n")));
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["v"], 3);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("sig"),
        "decode never prints the signature"
    );
}

#[test]
fn attenuate_narrows_without_the_key() {
    let parent = mint(&["--tools", "a,b"]);
    let child = ok(&[
        "token",
        "attenuate",
        "--tools",
        "a",
        "--max-calls",
        "3",
        &parent,
    ]);
    ok(&[
        "token",
        "verify",
        "--master-key",
        KEY,
        "--tool",
        "a",
        &child,
    ]);
    let err = fails(
        &[
            "token",
            "verify",
            "--master-key",
            KEY,
            "--tool",
            "b",
            &child,
        ],
        None,
    );
    assert!(err.contains("caveat 3 (tool_allow)"), "{err}");
    let err = fails(&["token", "attenuate", &parent], None);
    assert!(err.contains("nothing to add"), "{err}");
    let err = fails(&["token", "attenuate", "--max-calls", "0", &parent], None);
    assert!(err.contains("--max-calls must be positive"), "{err}");
}

#[test]
fn verify_fails_on_every_kind_of_bad_token() {
    let token = mint(&["--ttl", "1h"]);
    let other_key = "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq";
    let err = fails(
        &["token", "verify", "--master-key", other_key, &token],
        None,
    );
    assert!(err.contains("signature mismatch"), "{err}");
    // Rotation: the old key as a previous key verifies.
    ok(&[
        "token",
        "verify",
        "--master-key",
        other_key,
        "--previous-keys",
        KEY,
        &token,
    ]);
    let mut tampered = token.clone().into_bytes();
    tampered[30] = if tampered[30] == b'A' { b'B' } else { b'A' };
    let err = fails(
        &[
            "token",
            "verify",
            "--master-key",
            KEY,
            std::str::from_utf8(&tampered).unwrap(),
        ],
        None,
    );
    assert!(err.contains("token is not valid"), "{err}");
    let err = fails(
        &[
            "token",
            "verify",
            "--master-key",
            KEY,
            "--at",
            "2099-01-01T00:00:00Z",
            &token,
        ],
        None,
    );
    assert!(err.contains("expired"), "{err}");
    let err = fails(
        &["token", "verify", "--master-key", KEY, "not-a-token!"],
        None,
    );
    assert!(err.contains("not valid unpadded base64url"), "{err}");
    let err = fails(&["token", "verify", "--master-key", KEY], Some(""));
    assert!(err.contains("no token given"), "{err}");
}

#[test]
fn bad_flags_get_precise_errors() {
    let err = fails(
        &["token", "mint", "--master-key", "c2hvcnQ", "--subject", "s"],
        None,
    );
    assert!(err.contains("at least 16"), "{err}");
    let err = fails(
        &[
            "token",
            "mint",
            "--master-key",
            KEY,
            "--subject",
            "s",
            "--ttl",
            "soon",
        ],
        None,
    );
    assert!(err.contains("invalid ttl"), "{err}");
    let err = fails(
        &[
            "token",
            "mint",
            "--master-key",
            KEY,
            "--subject",
            "s",
            "--max-calls=-1",
        ],
        None,
    );
    assert!(err.contains("must not be negative"), "{err}");
    let err = fails(
        &["token", "mint", "--master-key", KEY, "--subject", " "],
        None,
    );
    assert!(err.contains("subject is required"), "{err}");
    let err = fails(
        &[
            "token",
            "verify",
            "--master-key",
            KEY,
            "--at",
            "tomorrow",
            &mint(&[]),
        ],
        None,
    );
    assert!(err.contains("invalid RFC 3339 timestamp"), "{err}");
    let out = intentgate(&["token", "mint", "--subject", "s"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --master-key is a usage error"
    );
}

#[test]
fn ttl_accepts_seconds_and_go_durations() {
    for (ttl, secs) in [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("2d", 172_800),
    ] {
        let doc: serde_json::Value =
            serde_json::from_str(&ok(&["token", "decode", &mint(&["--ttl", ttl])])).unwrap();
        let exp = doc["caveats"][1]["exp"].as_i64().unwrap();
        let iat = doc["iat"].as_i64().unwrap();
        assert!((exp - iat - secs).abs() <= 1, "{ttl}: {}", exp - iat);
    }
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&["token", "decode", &mint(&["--ttl", "0"])])).unwrap();
    assert_eq!(
        doc["caveats"].as_array().unwrap().len(),
        1,
        "ttl 0: no exp caveat"
    );
}

#[test]
fn sdk_attenuated_tokens_verify_from_the_shell() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/tests/vectors/sdk_attenuate_v3.json"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let key = v["master_key_b64url"].as_str().unwrap();
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "allow_single")
        .unwrap();
    let token = case["token"].as_str().unwrap();
    let at = "2026-01-01T01:00:00Z";
    let tool = case["expect"]["allowed_tools"][0].as_str().unwrap();
    ok(&[
        "token",
        "verify",
        "--master-key",
        key,
        "--at",
        at,
        "--tool",
        tool,
        token,
    ]);
}
