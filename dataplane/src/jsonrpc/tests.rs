use super::*;

fn err_of(body: &str) -> (RpcError, Option<String>) {
    let (e, id) = parse_request(body.as_bytes()).unwrap_err();
    (e, id.map(|i| i.get().to_string()))
}

#[test]
fn parses_a_tools_call_without_copying() {
    let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"x"}}}"#;
    let r = parse_request(body).unwrap();
    assert_eq!(r.id.unwrap().get(), "7");
    assert!(matches!(r.method, Cow::Borrowed("tools/call")));
    let call = parse_tool_call(r.params).unwrap();
    assert!(matches!(call.name, Cow::Borrowed("read_invoice")));
    assert_eq!(call.arguments.unwrap().get(), r#"{"id":"x"}"#);
}

#[test]
fn notifications_and_null_ids() {
    let r = parse_request(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
    assert!(r.is_notification());
    let r = parse_request(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).unwrap();
    assert!(!r.is_notification());
    assert_eq!(r.id.unwrap().get(), "null");
}

#[test]
fn escaped_method_names_still_parse() {
    let r = parse_request(br#"{"jsonrpc":"2.0","id":"a","method":"tools\/call"}"#).unwrap();
    assert_eq!(r.method, "tools/call");
}

#[test]
fn every_malformed_envelope_has_its_error() {
    let deep = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{}{}}}",
        "[".repeat(70),
        "]".repeat(70)
    );
    let cases: Vec<(String, i32, &str, Option<&str>)> = vec![
        (
            "[{\"jsonrpc\":\"2.0\"}]".into(),
            code::INVALID_REQUEST,
            "batch requests are not supported: send one JSON-RPC object per request",
            None,
        ),
        (
            deep,
            code::INVALID_REQUEST,
            "request nests deeper than 64 levels",
            None,
        ),
        ("{not json".into(), code::PARSE, "invalid JSON", None),
        ("".into(), code::PARSE, "invalid JSON", None),
        ("42".into(), code::PARSE, "invalid JSON", None),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"a","method":"tools/call"}"#.into(),
            code::INVALID_REQUEST,
            "invalid request",
            None,
        ),
        (
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#.into(),
            code::INVALID_REQUEST,
            "jsonrpc must be \"2.0\"",
            Some("1"),
        ),
        (
            r#"{"id":"q","method":"ping"}"#.into(),
            code::INVALID_REQUEST,
            "jsonrpc must be \"2.0\"",
            Some("\"q\""),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":""}"#.into(),
            code::INVALID_REQUEST,
            "method is required",
            Some("1"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#.into(),
            code::PARSE,
            "invalid JSON",
            None,
        ),
    ];
    for (body, code, message, id) in cases {
        let (e, got_id) = err_of(&body);
        assert_eq!((e.code, e.message.as_ref()), (code, message), "{body:.80}");
        assert_eq!(got_id.as_deref(), id, "{body:.80}");
    }
    let (e, _) = err_of(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#);
    assert!(
        String::from_utf8(e.data.unwrap())
            .unwrap()
            .contains("duplicate key \\\"id\\\"")
    );
}

#[test]
fn brackets_inside_strings_do_not_count_as_nesting() {
    assert_eq!(nesting_depth(br#"{"a":"[[[[\"]]]]","b":[{}]}"#), 3);
}

#[test]
fn tool_call_params_errors() {
    fn p(s: &'static str) -> &'static RawValue {
        serde_json::from_str(s).unwrap()
    }
    let cases: &[(Option<&'static str>, &str)] = &[
        (None, "params.name is required"),
        (Some(r#"{"arguments":{}}"#), "params.name is required"),
        (Some(r#"{"name":"  "}"#), "params.name is required"),
        (Some(r#"{"name":3}"#), "invalid tools/call params"),
        (Some(r#"[1]"#), "invalid tools/call params"),
        (
            Some(r#"{"name":"a","name":"b"}"#),
            "invalid tools/call params",
        ),
        (
            Some(r#"{"name":"a","arguments":[1]}"#),
            "params.arguments must be an object",
        ),
        (
            Some(r#"{"name":"a","arguments":{"p":"/tmp/x","p":"/etc/passwd"}}"#),
            "invalid tools/call params",
        ),
        (
            Some(r#"{"name":"a","arguments":{"o":[{"k":1,"k":2}]}}"#),
            "invalid tools/call params",
        ),
    ];
    for (params, message) in cases {
        let e = parse_tool_call(params.map(p)).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_ref()),
            (code::INVALID_PARAMS, *message),
            "{params:?}"
        );
    }
    assert!(
        parse_tool_call(Some(p(r#"{"name":"a","arguments":null}"#)))
            .unwrap()
            .arguments
            .is_none()
    );
}

#[test]
fn responses_echo_the_raw_id() {
    let id = serde_json::from_str::<&RawValue>(r#""abc""#).unwrap();
    let mut out = Vec::new();
    write_error(
        &mut out,
        Some(id),
        &RpcError::with_reason(code::POLICY, "policy check failed", "no <rule>"),
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"jsonrpc":"2.0","id":"abc","error":{"code":-32012,"message":"policy check failed","data":"no \u003crule\u003e"}}"#
    );
    let mut out = Vec::new();
    write_result(&mut out, None, b"{}");
    assert_eq!(out, br#"{"jsonrpc":"2.0","id":null,"result":{}}"#);
}
