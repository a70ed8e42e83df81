use super::*;

fn err_of(body: &str) -> (RpcError, Option<String>) {
    let mut scratch = Scratch::new();
    let (e, id) = parse_request(&mut scratch, body.as_bytes()).unwrap_err();
    (e, id.map(|i| String::from_utf8(i.to_vec()).unwrap()))
}

/// A `tools/call`'s name and arguments, or its refusal (params are checked while the
/// envelope is parsed, arguments while the call is read).
fn tool_call_of(body: &str) -> Result<(String, Option<Value>), RpcError> {
    let mut scratch = Scratch::new();
    let req = parse_request(&mut scratch, body.as_bytes()).map_err(|(e, _)| e)?;
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
    // Values and argument names may be escaped; the envelope's and params' names may not
    // (`names_another_parser_could_read_differently_are_refused_…`).
    let body = br#"{"jsonrpc":"2.0","id":"a\u0062\"c" ,"method":"tools\/call","params":{"name":"x\ny","arguments":{"k\u00e9":"\ud83d\ude00"}}}"#;
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
        ] {
            let mut scratch = Scratch::new();
            let r = parse_request(&mut scratch, body.as_bytes()).unwrap();
            assert_eq!(r.id, Some(id.as_bytes()), "{body}");
        }
        // An escaped `id` name is refused, not read (another parser might not unescape it).
        let escaped = format!(r#"{{"jsonrpc":"2.0","method":"ping","\u0069d":{id}}}"#);
        assert_eq!(err_of(&escaped).0.code, -32600, "{escaped}");
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

/// The reason (`error.data`) of a refusal.
fn reason_of(e: &RpcError) -> String {
    serde_json::from_slice(e.data.as_deref().unwrap_or(b"\"\"")).unwrap()
}

#[test]
fn names_another_parser_could_read_differently_are_refused_in_every_object_that_matters() {
    let refused = [
        // The envelope (-32600): Go's encoding/json matches names case-insensitively.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call"}"#,
            -32600,
            r#"keys "method" and "Method" differ only in case"#,
        ),
        (
            r#"{"jsonrpc":"2.0","ID":2,"id":1,"method":"ping"}"#,
            -32600,
            r#"keys "ID" and "id" differ only in case"#,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"m\u0065thod":"tools/call","method":"ping"}"#,
            -32600,
            r#"key "method" is written with escapes: spell the names of the envelope and params literally"#,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","ſ":1}"#,
            -32600,
            r#"key "ſ" is not ASCII: the envelope and params take the protocol's names only"#,
        ),
        // params, for every method (-32602).
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","Name":"forbidden"}}"#,
            -32602,
            r#"keys "name" and "Name" differ only in case"#,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a","URI":"file:///etc/passwd"}}"#,
            -32602,
            r#"keys "uri" and "URI" differ only in case"#,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"x"}}"#,
            -32602,
            r#"key "name" is written with escapes: spell the names of the envelope and params literally"#,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"a","ARGUMENTS":{},"arguments":{}}}"#,
            -32602,
            r#"keys "ARGUMENTS" and "arguments" differ only in case"#,
        ),
    ];
    for (body, code, reason) in refused {
        let (e, _) = err_of(body);
        assert_eq!((e.code, reason_of(&e).as_str()), (code, reason), "{body}");
    }
    // params refusals answer under the request's id.
    let (_, id) = err_of(refused[4].0);
    assert_eq!(id.as_deref(), Some("1"));
}

#[test]
fn arguments_may_not_hold_names_equal_but_for_case_at_any_depth() {
    let bad = [
        (r#"{"id":"a","ID":"b"}"#, ("id", "ID")),
        (r#"{"o":{"k":1,"\u212a":2}}"#, ("k", "\u{212a}")),
        (
            r#"{"l":[{"scope":1,"\u017fcope":2}]}"#,
            ("scope", "\u{17f}cope"),
        ),
    ];
    for (args, (a, b)) in bad {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{args}}}}}"#
        );
        let e = tool_call_of(&body).unwrap_err();
        assert_eq!(e.code, -32602, "{args}");
        let reason = reason_of(&e);
        assert!(
            reason.ends_with("in arguments differ only in case")
                && reason.contains(&format!("{a:?}"))
                && reason.contains(&format!("{b:?}")),
            "{args}: {reason}"
        );
    }
    // Escapes inside arguments are data, not protocol names: they stay allowed.
    let (_, args) = tool_call_of(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"\u00e9t\u00e9":1,"Id":2,"idx":3}}}"#,
    )
    .unwrap();
    assert_eq!(args.unwrap().as_object().unwrap().len(), 3);
    // The legacy endpoint's body follows the envelope's rules.
    let mut scratch = Scratch::new();
    let e = parse_tool_call_body(&mut scratch, br#"{"tool":"a","Tool":"b"}"#).unwrap_err();
    assert_eq!(
        (e.error, e.detail.as_str()),
        (
            "invalid_json",
            r#"keys "tool" and "Tool" differ only in case"#
        )
    );
}

#[test]
fn wide_objects_are_checked_without_quadratic_work_and_still_caught() {
    let wide: Vec<String> = (0..500).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let ok = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{{{}}}}}}}"#,
        wide.join(",")
    );
    assert!(tool_call_of(&ok).is_ok());
    let bad = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{{{},"K499":0}}}}}}"#,
        wide.join(",")
    );
    assert_eq!(tool_call_of(&bad).unwrap_err().code, -32602);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Casings of `name` other than itself.
    fn variant_of(name: &'static str) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<bool>(), name.len())
            .prop_map(move |upper| {
                name.chars()
                    .zip(upper)
                    .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                    .collect::<String>()
            })
            .prop_filter("a different spelling", move |v| v != name)
    }

    /// `\uXXXX` for one character of `name`.
    fn escaped(name: &str, at: usize) -> String {
        name.chars()
            .enumerate()
            .map(|(i, c)| {
                if i == at % name.len() {
                    format!("\\u{:04x}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect()
    }

    fn envelope(members: &[String]) -> String {
        format!("{{{}}}", members.join(","))
    }

    proptest! {
        #[test]
        fn a_case_variant_of_an_envelope_name_anywhere_is_refused(
            which in 0usize..4,
            casing in any::<u64>(),
            at in 0usize..5,
        ) {
            let names = ["jsonrpc", "id", "method", "params"];
            let name = names[which];
            let variant: String = name
                .chars()
                .enumerate()
                .map(|(i, c)| if casing >> i & 1 == 1 { c.to_ascii_uppercase() } else { c })
                .collect();
            prop_assume!(variant != name);
            let mut members = vec![
                r#""jsonrpc":"2.0""#.to_owned(),
                r#""id":1"#.to_owned(),
                r#""method":"ping""#.to_owned(),
                r#""params":{}"#.to_owned(),
            ];
            members.insert(at.min(members.len()), format!(r#""{variant}":"tools/call""#));
            let (e, _) = err_of(&envelope(&members));
            prop_assert_eq!(e.code, code::INVALID_REQUEST);
            prop_assert!(reason_of(&e).contains("differ only in case"));
        }

        #[test]
        fn a_case_variant_or_an_escape_in_params_is_refused_for_every_method(
            method in prop::sample::select(vec![
                "tools/call", "resources/read", "prompts/get", "completion/complete",
                "logging/setLevel", "tasks/get", "unknown/method",
            ]),
            variant in variant_of("name"),
            escape_at in any::<usize>(),
            escape in any::<bool>(),
        ) {
            let second = if escape { escaped("name", escape_at) } else { variant };
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":3,"method":"{method}","params":{{"name":"ok","{second}":"other"}}}}"#
            );
            let (e, id) = err_of(&body);
            prop_assert_eq!(e.code, code::INVALID_PARAMS);
            prop_assert_eq!(id.as_deref(), Some("3"));
        }

        /// What the envelope parser accepts, a parser that folds case (as Go's does) reads
        /// with the same members: no two names of the envelope or params fold together.
        #[test]
        fn accepted_envelopes_mean_one_thing_to_a_case_folding_parser(
            extra in proptest::collection::vec(("[a-zA-Z_]{1,8}", 0u32..100), 0..6),
            params in proptest::collection::vec(("[a-zA-Z_]{1,8}", 0u32..100), 0..6),
        ) {
            let mut members = vec![
                r#""jsonrpc":"2.0""#.to_owned(),
                r#""id":1"#.to_owned(),
                r#""method":"ping""#.to_owned(),
            ];
            members.extend(extra.iter().map(|(k, v)| format!(r#""{k}":{v}"#)));
            let p: Vec<String> = params.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
            members.push(format!(r#""params":{{{}}}"#, p.join(",")));
            let body = envelope(&members);
            let mut scratch = Scratch::new();
            if parse_request(&mut scratch, body.as_bytes()).is_ok() {
                let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
                for obj in [&doc, &doc["params"]] {
                    let keys: Vec<String> = obj
                        .as_object()
                        .unwrap()
                        .keys()
                        .map(|k| k.to_ascii_lowercase())
                        .collect();
                    let mut unique = keys.clone();
                    unique.sort();
                    unique.dedup();
                    prop_assert_eq!(unique.len(), keys.len(), "{}", body);
                }
                // serde_json (last duplicate wins) agrees with what we read.
                prop_assert_eq!(doc["method"].as_str(), Some("ping"));
            }
        }
    }
}

#[test]
fn a_client_response_is_told_from_a_request_and_its_envelope_is_checked() {
    let mut scratch = Scratch::new();
    for (body, id, is_error) in [
        (
            r#"{"jsonrpc":"2.0","id":0,"result":{"role":"assistant"}}"#,
            "0",
            false,
        ),
        (
            r#"{"jsonrpc":"2.0","id":"r-1","error":{"code":-1,"message":"no"}}"#,
            r#""r-1""#,
            true,
        ),
    ] {
        match parse_message(&mut scratch, body.as_bytes()) {
            Ok(Message::Response(r)) => {
                assert_eq!((r.id, r.is_error), (id.as_bytes(), is_error), "{body}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    let cases: [(&str, &str, Option<&str>); 7] = [
        (
            r#"{"jsonrpc":"2.0","result":{}}"#,
            "a response must carry the id of the request it answers",
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}}"#,
            "a response must carry the id of the request it answers",
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}"#,
            "a response carries a result or an error, not both",
            Some("1"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":[1]}"#,
            "a response's result or error must be an object",
            Some("1"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"error":"bad"}"#,
            "a response's result or error must be an object",
            Some("1"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"params":{},"result":{}}"#,
            "a response has no params",
            Some("1"),
        ),
        (
            r#"{"id":1,"result":{}}"#,
            "jsonrpc must be \"2.0\"",
            Some("1"),
        ),
    ];
    for (body, message, id) in cases {
        let Err((e, got)) = parse_message(&mut scratch, body.as_bytes()) else {
            panic!("{body} parsed");
        };
        assert_eq!(
            (e.code, e.message.as_ref()),
            (code::INVALID_REQUEST, message),
            "{body}"
        );
        assert_eq!(
            got.map(|i| String::from_utf8_lossy(i).into_owned())
                .as_deref(),
            id
        );
    }
    // The request parser refuses a response as a request without a method.
    let (e, id) = err_of(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
    assert_eq!(
        (e.message.as_ref(), id.as_deref()),
        ("method is required", Some("3"))
    );
    // A repeated member is refused as in requests.
    let (e, _) = err_of(r#"{"jsonrpc":"2.0","id":3,"result":{},"result":{}}"#);
    assert_eq!(e.code, code::INVALID_REQUEST);
}
