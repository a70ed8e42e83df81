//! What the fuzz targets check, one function per target: each takes the fuzzer's bytes and
//! panics when a property fails, not only when the parser does. `fuzz/fuzz_targets/` wraps
//! them for libFuzzer (`cargo xtask fuzz`); `tests/tests/fuzz_corpus.rs` replays every
//! committed corpus and regression input through them in the normal test run.

#![expect(
    clippy::panic,
    clippy::expect_used,
    reason = "a property check reports a failed property by panicking: that is what libFuzzer catches"
)]

use std::ops::Range;

use intentgate_dataplane::http::{self, BodyFraming, Chunked, Head};
use intentgate_dataplane::jsonrpc::{self, Scratch};
use intentgate_dataplane::sse;
use intentgate_shared::audit::AuditEvent;
use intentgate_shared::key_ring::{KeyRing, MasterKey};
use intentgate_shared::policy::{Input, args_from_json};
use intentgate_shared::token::{Caveat, MintRequest, Target, Token, kind};

/// The body limit the targets parse with.
const MAX_BODY: usize = 1 << 20;
/// The time tokens are minted and checked at.
const NOW: i64 = 1_790_000_000;

/// The key of tokens in the corpus (`fuzz/corpus/token_chain/`).
pub fn fuzz_key() -> MasterKey {
    MasterKey::from_bytes(&[0x42; 32])
}

/// A request head: whatever `parse_head` accepts lies within the bytes it says it used, and
/// re-serialized from what the gateway read it parses to the same reading.
pub fn http_head(data: &[u8]) {
    let Ok(Some((head, len))) = http::parse_head(data, MAX_BODY) else {
        return;
    };
    assert!(len <= data.len(), "head length {len} past the input");
    let first = reading(&head, &data[..len]);
    let again = reserialize(&first);
    let (head2, len2) = match http::parse_head(&again, MAX_BODY) {
        Ok(Some(parsed)) => parsed,
        other => panic!(
            "re-serialized head refused: {other:?}\n{}",
            String::from_utf8_lossy(&again)
        ),
    };
    assert_eq!(len2, again.len());
    assert_eq!(first, reading(&head2, &again));
}

/// What the gateway reads of a head, by value.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    method_name: Vec<u8>,
    target: Vec<u8>,
    path: Vec<u8>,
    http11: bool,
    close: bool,
    headers: Vec<(&'static str, Vec<u8>)>,
    params: Vec<(Vec<u8>, Vec<u8>)>,
    expect_continue: bool,
    content_encoded: bool,
    body: BodyFraming,
}

fn reading(head: &Head, buf: &[u8]) -> Reading {
    let at = |r: &Range<usize>| -> Vec<u8> {
        assert!(r.end <= buf.len(), "range {r:?} past the head");
        buf[r.clone()].to_vec()
    };
    let slots: [(&'static str, &Option<Range<usize>>); 12] = [
        ("Authorization", &head.authorization),
        ("X-Intent-Prompt", &head.intent_prompt),
        ("Origin", &head.origin),
        ("X-Forwarded-For", &head.forwarded_for),
        ("X-IntentGate-Elevation-Id", &head.elevation_id),
        ("traceparent", &head.traceparent),
        ("Mcp-Session-Id", &head.mcp_session_id),
        ("MCP-Protocol-Version", &head.mcp_protocol_version),
        ("Mcp-Method", &head.mcp_method),
        ("Mcp-Name", &head.mcp_name),
        ("Last-Event-ID", &head.last_event_id),
        ("Content-Type", &head.content_type),
    ];
    Reading {
        method_name: at(&head.method_name),
        target: at(&head.target),
        path: at(&head.path),
        http11: head.http11,
        close: head.close,
        headers: slots
            .iter()
            .filter_map(|(name, r)| r.as_ref().map(|r| (*name, at(r))))
            .collect(),
        params: head
            .mcp_params
            .iter()
            .map(|(n, v)| (at(n), at(v)))
            .collect(),
        expect_continue: head.expect_continue,
        content_encoded: head.content_encoded,
        body: head.body,
    }
}

fn reserialize(r: &Reading) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&r.method_name);
    out.push(b' ');
    out.extend_from_slice(&r.target);
    out.extend_from_slice(if r.http11 {
        b" HTTP/1.1\r\n"
    } else {
        b" HTTP/1.0\r\n"
    });
    let mut header = |name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    for (name, value) in &r.headers {
        header(name.as_bytes(), value);
    }
    for (name, value) in &r.params {
        header(name, value);
    }
    if r.expect_continue {
        header(b"Expect", b"100-continue");
    }
    if r.content_encoded {
        header(b"Content-Encoding", b"gzip");
    }
    match (r.close, r.http11) {
        (true, true) => header(b"Connection", b"close"),
        (false, false) => header(b"Connection", b"keep-alive"),
        _ => {}
    }
    match r.body {
        BodyFraming::Empty => {}
        BodyFraming::Length(n) => header(b"Content-Length", n.to_string().as_bytes()),
        BodyFraming::Chunked => header(b"Transfer-Encoding", b"chunked"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A chunked body: decoding it as it trickles in (split where the first byte says) gives
/// what decoding it whole gives, and never more than the limit.
pub fn chunked_body(data: &[u8]) {
    let Some((&limit, body)) = data.split_first() else {
        return;
    };
    let max = usize::from(limit) * 16;
    let mut whole = Vec::new();
    let once = http::decode_chunked(body, max, &mut whole);
    let mut parts = Chunked::default();
    let cut = body.len() / 2;
    let mut stepwise = parts.decode(&body[..cut], max);
    if matches!(stepwise, Ok(None)) {
        stepwise = parts.decode(body, max);
    }
    match (&once, &stepwise) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            if a.is_some() {
                assert_eq!(whole, parts.body);
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("whole {once:?} but stepwise {stepwise:?}"),
    }
    assert!(whole.len() <= max && parts.body.len() <= max);
}

/// A JSON-RPC envelope: what the gateway accepts, serde_json accepts with the same values;
/// no object the gateway reads holds two names equal but for case.
pub fn jsonrpc_envelope(data: &[u8]) {
    let mut scratch = Scratch::new();
    let Ok(req) = jsonrpc::parse_request(&mut scratch, data) else {
        return;
    };
    let v: serde_json::Value = match serde_json::from_slice(data) {
        Ok(v) => v,
        Err(e) => panic!("accepted, but serde_json refuses it: {e}"),
    };
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["method"], req.method);
    match req.id {
        None => assert!(v.get("id").is_none()),
        Some(raw) => {
            let id: serde_json::Value = serde_json::from_slice(raw).expect("the id's bytes");
            assert_eq!(id, v["id"]);
        }
    }
    assert_case_unique(&v);
    assert_case_unique(&v["params"]);
    if req.method == "tools/call"
        && let Ok(call) = req.tool_call()
    {
        assert_eq!(v["params"]["name"], call.name);
        if let Some(args) = &call.arguments {
            same_shape(args, &v["params"]["arguments"]);
        }
    }
    if let Ok(Some(params)) = req.params_value() {
        same_shape(&params, &v["params"]);
    }
}

fn assert_case_unique(v: &serde_json::Value) {
    let Some(o) = v.as_object() else {
        return;
    };
    let mut folded: Vec<String> = o.keys().map(|k| k.to_ascii_lowercase()).collect();
    folded.sort();
    let n = folded.len();
    folded.dedup();
    assert_eq!(n, folded.len(), "case-variant names accepted: {v}");
}

/// The policy's reading of a JSON value has the structure serde_json sees.
fn same_shape(ours: &regorus::Value, theirs: &serde_json::Value) {
    use regorus::Value as R;
    use serde_json::Value as S;
    match (ours, theirs) {
        (R::Null, S::Null) | (R::Number(_), S::Number(_)) => {}
        (R::Bool(a), S::Bool(b)) => assert_eq!(a, b),
        (R::String(a), S::String(b)) => assert_eq!(a.as_ref(), b.as_str()),
        (R::Array(a), S::Array(b)) => {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                same_shape(x, y);
            }
        }
        (R::Object(a), S::Object(b)) => {
            assert_eq!(a.len(), b.len(), "member counts differ");
            for (k, x) in a.iter() {
                let key = k.as_string().expect("object keys are strings");
                let y = b.get(key.as_ref()).expect("the same member names");
                same_shape(x, y);
            }
        }
        (a, b) => panic!("{a:?} read where serde_json reads {b}"),
    }
}

/// A token: a decoded token re-encodes to bytes that decode to the same token; one that
/// verifies under the fuzz key never allows, once attenuated, what it did not allow. The
/// bytes also describe a caveat chain that is minted, attenuated and checked the same way.
pub fn token_chain(data: &[u8]) {
    let ring = KeyRing::single(fuzz_key());
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(t) = Token::decode(text.trim())
    {
        let wire = t.encode();
        let again = Token::decode(&wire).expect("an encoded token decodes");
        assert_eq!(again.encode(), wire, "encoding is not stable");
        if t.verify(&ring).is_ok() {
            never_widens(&t, data, &ring);
        }
    }
    let req = MintRequest {
        subject: "agent".into(),
        tenant: "t".into(),
        caveats: caveats_from(data),
        ..MintRequest::default()
    };
    if let Ok(parent) = Token::mint(&fuzz_key(), req, NOW) {
        assert!(parent.verify(&ring).is_ok());
        never_widens(&parent, data, &ring);
    }
}

/// Targets every caveat kind governs, and some it does not.
const TARGETS: [Target<'static>; 9] = [
    Target::Tool("a"),
    Target::Tool("b"),
    Target::Prompt("a"),
    Target::Prompt("p"),
    Target::Resource("f:/a/x"),
    Target::Resource("f:/b"),
    Target::Resource("f:/a/../b"),
    Target::ResourceTemplate("f:/a/{x}"),
    Target::Nothing,
];

fn never_widens(parent: &Token, data: &[u8], ring: &KeyRing) {
    let extra = caveats_from(data.get(data.len() / 2..).unwrap_or_default());
    let Some(caveat) = extra.into_iter().next() else {
        return;
    };
    let Ok(child) = parent.clone().attenuate(caveat) else {
        return;
    };
    assert!(
        child.verify(ring).is_ok(),
        "an attenuated token must verify"
    );
    for now in [NOW - 1, NOW, NOW + 5] {
        for agent in ["agent", "other"] {
            for target in TARGETS {
                if child.check_target(now, agent, target).is_ok() {
                    assert!(
                        parent.check_target(now, agent, target).is_ok(),
                        "attenuation widened {target:?} at {now} for {agent}"
                    );
                }
            }
        }
    }
    assert!(child.max_calls().unwrap_or(i64::MAX) <= parent.max_calls().unwrap_or(i64::MAX));
}

/// Caveats described by bytes, three per caveat: kind, then two parameters.
fn caveats_from(data: &[u8]) -> Vec<Caveat> {
    const NAMES: [&str; 4] = ["a", "b", "p", "q"];
    const PREFIXES: [&str; 4] = ["f:/a/", "f:/", "g:", "f:/b"];
    let pick = |set: &[&'static str], bits: u8| -> Vec<&'static str> {
        set.iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, s)| *s)
            .collect()
    };
    data.chunks_exact(3)
        .take(8)
        .map(|c| {
            let (k, x, y) = (c[0], c[1], c[2]);
            match k % 11 {
                0 => Caveat::exp(NOW - 2 + i64::from(x % 8)),
                1 => Caveat::agent_lock(if x % 2 == 0 { "agent" } else { "other" }),
                2 => Caveat::tool_allow(pick(&NAMES, x)),
                3 => Caveat::tool_deny(pick(&NAMES, x)),
                4 => Caveat::max_calls(i64::from(x % 4) - 1),
                5 => Caveat::step_up(i64::from(y)),
                6 => Caveat::list(kind::RESOURCE_ALLOW, pick(&PREFIXES, x)),
                7 => Caveat::list(kind::RESOURCE_DENY, pick(&PREFIXES, x)),
                8 => Caveat::list(kind::PROMPT_ALLOW, pick(&NAMES, x)),
                9 => Caveat::list(kind::PROMPT_DENY, pick(&NAMES, x)),
                _ => Caveat::list("unknown_kind", pick(&NAMES, y)),
            }
        })
        .collect()
}

/// An audit event line: its canonical bytes (what the chain hash covers) are stable under
/// re-parsing the event as the gateway writes it.
pub fn audit_canonical(data: &[u8]) {
    let Ok(first) = serde_json::from_slice::<AuditEvent>(data) else {
        return;
    };
    let written = first.to_json();
    let second: AuditEvent = match serde_json::from_slice(&written) {
        Ok(e) => e,
        Err(e) => panic!(
            "the gateway's own line does not parse: {e}\n{}",
            String::from_utf8_lossy(&written)
        ),
    };
    assert_eq!(first.canonical(), second.canonical());
    assert_eq!(first.chain_hash("prev"), second.chain_hash("prev"));
    assert_eq!(written, second.to_json());
}

/// An export line (`audit verify-file`): a row that parses re-parses to the same canonical
/// bytes.
pub fn export_lines(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        if let Ok((_, _, row)) = intentgate_shared::audit::export_line::row_from_line(line) {
            audit_canonical(&row.event.to_json());
        }
    }
}

/// An event stream: fed in two parts it yields the events it yields whole; each event
/// written back parses to itself; no event exceeds the limit.
pub fn sse_events(data: &[u8]) {
    const MAX: usize = 256;
    let whole = sse::Parser::new(MAX).push(data);
    let cut = data
        .first()
        .map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let mut p = sse::Parser::new(MAX);
    let split = p.push(&data[..cut]).and_then(|mut a| {
        p.push(&data[cut..]).map(|b| {
            a.extend(b);
            a
        })
    });
    let (Ok(whole), Ok(split)) = (whole, split) else {
        return;
    };
    assert_eq!(whole, split);
    for e in &whole {
        assert!(e.data.len() <= MAX, "an event past the limit was passed");
        let mut out = Vec::new();
        sse::write_event(&mut out, e);
        let back = sse::Parser::new(MAX.max(out.len())).push(&out);
        assert_eq!(back.as_deref(), Ok(std::slice::from_ref(e)), "{e:?}");
    }
}

/// Tool arguments as the policy reads them: the input document carries them unchanged.
pub fn policy_input(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(args) = args_from_json(text) else {
        return;
    };
    let input = Input {
        tool: "t",
        method: "tools/call",
        phase: "call",
        args: Some(args.clone()),
        ..Input::default()
    }
    .to_value();
    assert_eq!(input["args"], args);
    assert_eq!(input["method"], regorus::Value::from("tools/call"));
}
