use super::*;

fn err_of(body: &str) -> (RpcError, Option<String>) {
    let mut scratch = Scratch::new();
    let (e, id) = parse_request(&mut scratch, body.as_bytes()).unwrap_err();
    (e, id.map(|i| String::from_utf8(i.to_vec()).unwrap()))
}

fn tool_call_of(body: &str) -> Result<(String, Option<Value>), RpcError> {
    let mut scratch = Scratch::new();
    let req = parse_request(&mut scratch, body.as_bytes()).unwrap();
    req.tool_call().map(|c| (c.name.to_owned(), c.arguments))
}

#[test]
fn parses_a_tools_call_into_policy_values() {
    let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"x","n":[1,-2,2.5,true,null],"o":{"k":18446744073709551615}}}}"#;
    let mut scratch = Scratch::new();
    let r = parse_request(&mut scratch, body).unwrap();
    assert_eq!(r.id, Some(&b"7"[..]));
    assert_eq!(r.method, "tools/call");
    let call = r.tool_call().unwrap();
    assert_eq!(call.name, "read_invoice");
    let expected = Value::from_json_str(
        r#"{"id":"x","n":[1,-2,2.5,true,null],"o":{"k":18446744073709551615}}"#,
    )
    .unwrap();
    assert_eq!(call.arguments.unwrap(), expected);
}

#[test]
fn strings_with_escapes_are_unescaped_and_ids_echo_raw() {
    let body = br#"{"jsonrpc":"2.0","id":"a\u0062\"c" ,"method":"tools\/call","params":{"\u006eame":"x\ny","arguments":{"k\u00e9":"\ud83d\ude00"}}}"#;
    let mut scratch = Scratch::new();
    let r = parse_request(&mut scratch, body).unwrap();
    assert_eq!(r.id, Some(&br#""a\u0062\"c""#[..]));
    assert_eq!(r.method, "tools/call");
    let call = r.tool_call().unwrap();
    assert_eq!(call.name, "x\ny");
    assert_eq!(
        call.arguments.unwrap(),
        Value::from_json_str(r#"{"ké":"😀"}"#).unwrap()
    );
}

#[test]
fn ids_of_every_scalar_kind_echo_exactly() {
    for id in [
        "1",
        "-0",
        "1.50",
        "1e3",
        "null",
        "\"\"",
        "18446744073709551616",
    ] {
        for body in [
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#),
            format!(r#"{{"id" : {id} ,"jsonrpc":"2.0","method":"ping"}}"#),
            format!("{{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\n\"id\"\t:\n{id}\n}}"),
            format!(r#"{{"jsonrpc":"2.0","method":"ping","\u0069d":{id}}}"#),
        ] {
            let mut scratch = Scratch::new();
            let r = parse_request(&mut scratch, body.as_bytes()).unwrap();
            assert_eq!(r.id, Some(id.as_bytes()), "{body}");
        }
    }
}

#[test]
fn notifications_and_null_ids() {
    let mut scratch = Scratch::new();
    let r = parse_request(
        &mut scratch,
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .unwrap();
    assert!(r.is_notification());
    drop(r);
    let r = parse_request(
        &mut scratch,
        br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
    )
    .unwrap();
    assert!(!r.is_notification());
    assert_eq!(r.id, Some(&b"null"[..]));
}

#[test]
fn a_reused_scratch_parses_each_body_alone() {
    let mut scratch = Scratch::new();
    let long = format!(
        r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#,
        "x".repeat(5000)
    );
    assert!(parse_request(&mut scratch, long.as_bytes()).is_ok());
    let r = parse_request(&mut scratch, br#"{"jsonrpc":"2.0","id":2,"method":"a"}"#).unwrap();
    assert_eq!((r.id, r.method), (Some(&b"2"[..]), "a"));
}

#[test]
fn nesting_is_limited_at_exactly_64_levels() {
    let nested = |levels: usize| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{}{}}}"#,
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    let mut scratch = Scratch::new();
    assert!(parse_request(&mut scratch, nested(MAX_DEPTH).as_bytes()).is_ok());
    let (e, _) = err_of(&nested(MAX_DEPTH + 1));
    assert_eq!(e.message, "request nests deeper than 64 levels");
    // Brackets inside strings are text, not nesting.
    let text = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"{}"}}"#,
        "[".repeat(200)
    );
    assert!(parse_request(&mut scratch, text.as_bytes()).is_ok());
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
            " \n[".into(),
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
        ("{\"a\":1} x".into(), code::PARSE, "invalid JSON", None),
        (
            "{\"a\":\"\u{1}\"}".into(),
            code::PARSE,
            "invalid JSON",
            None,
        ),
        (
            "42".into(),
            code::INVALID_REQUEST,
            "a request must be a JSON object",
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"a","method":"tools/call"}"#.into(),
            code::INVALID_REQUEST,
            "invalid request",
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#.into(),
            code::INVALID_REQUEST,
            "id must be a string, a number or null",
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#.into(),
            code::INVALID_REQUEST,
            "id must be a string, a number or null",
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
            code::INVALID_REQUEST,
            "method is required",
            Some("1"),
        ),
    ];
    for (body, code, message, id) in cases {
        let (e, got_id) = err_of(&body);
        assert_eq!((e.code, e.message.as_ref()), (code, message), "{body:.80}");
        assert_eq!(got_id.as_deref(), id, "{body:.80}");
    }
    let (e, _) = err_of(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#);
    assert_eq!(e.data.unwrap(), br#""duplicate key \"id\"""#);
}

#[test]
fn tool_call_params_errors() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("", "params.name is required", None),
        (
            r#","params":{"arguments":{}}"#,
            "params.name is required",
            None,
        ),
        (
            r#","params":{"name":"  "}"#,
            "params.name is required",
            None,
        ),
        (r#","params":{"name":3}"#, "params.name is required", None),
        (
            r#","params":[1]"#,
            "invalid tools/call params",
            Some("params must be an object"),
        ),
        (
            r#","params":{"name":"a","name":"b"}"#,
            "invalid tools/call params",
            Some(r#"duplicate key "name""#),
        ),
        (
            r#","params":{"name":"a","arguments":[1]}"#,
            "params.arguments must be an object",
            None,
        ),
        (
            r#","params":{"name":"a","arguments":"x"}"#,
            "params.arguments must be an object",
            None,
        ),
        (
            r#","params":{"name":"a","arguments":{"p":"/tmp/x","p":"/etc/passwd"}}"#,
            "invalid tools/call params",
            Some(r#"duplicate key "p" in arguments"#),
        ),
        (
            r#","params":{"name":"a","arguments":{"o":[{"k":1,"k":2}]}}"#,
            "invalid tools/call params",
            Some(r#"duplicate key "k" in arguments"#),
        ),
        (
            r#","params":{"name":"a","arguments":{"\u0070":1,"p":2}}"#,
            "invalid tools/call params",
            Some(r#"duplicate key "p" in arguments"#),
        ),
    ];
    for (params, message, reason) in cases {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call"{params}}}"#);
        let e = tool_call_of(&body).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_ref()),
            (code::INVALID_PARAMS, *message),
            "{params}"
        );
        let data = e
            .data
            .map(|d| serde_json::from_slice::<String>(&d).unwrap());
        assert_eq!(data.as_deref(), *reason, "{params}");
    }
    let (_, args) = tool_call_of(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":null}}"#,
    )
    .unwrap();
    assert!(args.is_none());
}

#[test]
fn tool_call_bodies() {
    let parse = |body: &str| {
        let mut scratch = Scratch::new();
        parse_tool_call_body(&mut scratch, body.as_bytes()).map(|b| (b.tool.to_owned(), b.args))
    };
    let (tool, args) = parse(r#"{"tool":"t","args":{"a":1},"agent_id":"x"}"#).unwrap();
    assert_eq!(
        (tool.as_str(), args),
        ("t", Some(Value::from_json_str(r#"{"a":1}"#).unwrap()))
    );
    let cases = [
        ("{", "invalid_json"),
        ("[]", "invalid_json"),
        (r#"{"tool":1}"#, "invalid_json"),
        (r#"{"tool":"t","tool":"u"}"#, "invalid_json"),
        (r#"{"args":{}}"#, "missing_tool"),
        (r#"{"tool":null}"#, "missing_tool"),
        (r#"{"tool":" "}"#, "missing_tool"),
        (r#"{"tool":"t","args":[1]}"#, "invalid_args"),
        (r#"{"tool":"t","args":{"a":1,"a":2}}"#, "invalid_args"),
    ];
    for (body, error) in cases {
        assert_eq!(parse(body).unwrap_err().error, error, "{body}");
    }
}

#[test]
fn responses_echo_the_raw_id() {
    let mut out = Vec::new();
    write_error(
        &mut out,
        Some(br#""abc""#),
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

#[test]
fn out_of_range_numbers_in_arguments_are_refused() {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":1e400}}}"#;
    let mut scratch = Scratch::new();
    match parse_request(&mut scratch, body.as_bytes()) {
        // Either the parser refuses the literal, or the conversion does.
        Err((e, _)) => assert_eq!(e.code, code::PARSE),
        Ok(r) => {
            let e = r.tool_call().unwrap_err();
            assert_eq!(e.code, code::INVALID_PARAMS);
        }
    }
}
