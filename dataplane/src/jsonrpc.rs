//! JSON-RPC 2.0 envelopes for MCP: a borrowed view of the request (no copy of `id`, `params`
//! or `arguments`: they stay slices of the request body) and the response writers.
//!
//! Rejected before any check runs: batches (a peer gateway let batch elements bypass its
//! checks), duplicate keys in the envelope or in `tools/call` params (two parsers could read
//! different values), and nesting deeper than [`MAX_DEPTH`].

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use intentgate_shared::gojson;

/// Deepest nesting accepted anywhere in a request.
pub const MAX_DEPTH: usize = 64;

/// Error codes (compat §3).
pub mod code {
    /// Parse error.
    pub const PARSE: i32 = -32700;
    /// Invalid request.
    pub const INVALID_REQUEST: i32 = -32600;
    /// Method not found.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// Invalid params.
    pub const INVALID_PARAMS: i32 = -32602;
    /// Internal or upstream failure.
    pub const INTERNAL: i32 = -32603;
    /// Capability check failed.
    pub const CAPABILITY: i32 = -32010;
    /// Intent check failed.
    pub const INTENT: i32 = -32011;
    /// Policy check failed.
    pub const POLICY: i32 = -32012;
    /// Budget check failed.
    pub const BUDGET: i32 = -32013;
}

/// A JSON-RPC error to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// Code.
    pub code: i32,
    /// Message.
    pub message: Cow<'static, str>,
    /// `data`: already-encoded JSON (a string or an object), if any.
    pub data: Option<Vec<u8>>,
}

impl RpcError {
    /// An error without data.
    pub fn new(code: i32, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// An error whose `data` is a reason string.
    pub fn with_reason(code: i32, message: impl Into<Cow<'static, str>>, reason: &str) -> Self {
        let mut data = Vec::with_capacity(reason.len() + 2);
        gojson::write_str(&mut data, reason);
        Self {
            code,
            message: message.into(),
            data: Some(data),
        }
    }
}

/// The request envelope, borrowing from the body.
#[derive(Debug)]
pub struct Request<'a> {
    /// Raw `id`; `None` when absent (a notification). JSON `null` is a request with id null.
    pub id: Option<&'a RawValue>,
    /// Method name.
    pub method: Cow<'a, str>,
    /// Raw `params`.
    pub params: Option<&'a RawValue>,
}

impl Request<'_> {
    /// No `id`: the caller expects no response body.
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }
}

/// `tools/call` params.
#[derive(Debug)]
pub struct ToolCall<'a> {
    /// Tool name.
    pub name: Cow<'a, str>,
    /// Raw `arguments` object, if any.
    pub arguments: Option<&'a RawValue>,
}

/// Deepest `[`/`{` nesting in `body`, ignoring brackets inside strings. Runs before the parser
/// so a hostile body cannot make it recurse deeply.
pub fn nesting_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

const DUPLICATE: &str = "duplicate key";

/// Parses one request. Errors carry the request id when it was readable.
pub fn parse_request(body: &[u8]) -> Result<Request<'_>, (RpcError, Option<&RawValue>)> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let e = RpcError::new(
            code::INVALID_REQUEST,
            "batch requests are not supported: send one JSON-RPC object per request",
        );
        return Err((e, None));
    }
    if nesting_depth(body) > MAX_DEPTH {
        return Err((
            RpcError::new(
                code::INVALID_REQUEST,
                format!("request nests deeper than {MAX_DEPTH} levels"),
            ),
            None,
        ));
    }
    let raw: RawRequest<'_> = serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let err = if text.starts_with(DUPLICATE) {
            RpcError::with_reason(code::INVALID_REQUEST, "invalid request", &text)
        } else {
            RpcError::with_reason(code::PARSE, "invalid JSON", &text)
        };
        (err, None)
    })?;
    if raw.jsonrpc.as_ref().map(|v| v.0.as_ref()) != Some("2.0") {
        return Err((
            RpcError::new(code::INVALID_REQUEST, "jsonrpc must be \"2.0\""),
            raw.id,
        ));
    }
    let method = match raw.method {
        Some(CowStr(m)) if !m.is_empty() => m,
        _ => {
            return Err((
                RpcError::new(code::INVALID_REQUEST, "method is required"),
                raw.id,
            ));
        }
    };
    Ok(Request {
        id: raw.id,
        method,
        params: raw.params,
    })
}

/// Parses `tools/call` params.
pub fn parse_tool_call<'a>(params: Option<&'a RawValue>) -> Result<ToolCall<'a>, RpcError> {
    let params =
        params.ok_or_else(|| RpcError::new(code::INVALID_PARAMS, "params.name is required"))?;
    let raw: RawToolCall<'a> = serde_json::from_str(params.get()).map_err(|e| {
        let text = e.to_string();
        RpcError::with_reason(code::INVALID_PARAMS, "invalid tools/call params", &text)
    })?;
    let name = match raw.name {
        Some(CowStr(n)) if !n.trim().is_empty() => n,
        _ => {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                "params.name is required",
            ));
        }
    };
    let arguments = match raw.arguments {
        Some(a) if a.get().starts_with('{') => {
            // The policy reads the last of two equal keys, an upstream may read the first:
            // refuse the ambiguity anywhere inside the arguments.
            serde_json::from_str::<NoDuplicateKeys>(a.get()).map_err(|e| {
                RpcError::with_reason(
                    code::INVALID_PARAMS,
                    "invalid tools/call params",
                    &e.to_string(),
                )
            })?;
            Some(a)
        }
        Some(a) if a.get() == "null" => None,
        None => None,
        Some(_) => {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                "params.arguments must be an object",
            ));
        }
    };
    Ok(ToolCall { name, arguments })
}

/// A string that borrows from the input when it has no escapes (serde's own `Cow` impl
/// always allocates).
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> de::Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Walks a JSON value and fails on the first object with a repeated key.
struct NoDuplicateKeys;

impl<'de> de::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NoDuplicateKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
                Ok(NoDuplicateKeys)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut keys = std::collections::HashSet::new();
                while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
                    if !keys.insert(key.clone()) {
                        return Err(de::Error::custom(format_args!(
                            "{DUPLICATE} {key:?} in arguments"
                        )));
                    }
                    map.next_value::<NoDuplicateKeys>()?;
                }
                Ok(NoDuplicateKeys)
            }
        }
        d.deserialize_any(V)
    }
}

struct RawRequest<'a> {
    jsonrpc: Option<CowStr<'a>>,
    id: Option<&'a RawValue>,
    method: Option<CowStr<'a>>,
    params: Option<&'a RawValue>,
}

struct RawToolCall<'a> {
    name: Option<CowStr<'a>>,
    arguments: Option<&'a RawValue>,
}

fn once<'de, A: MapAccess<'de>, T: de::Deserialize<'de>>(
    slot: &mut Option<T>,
    seen: &mut bool,
    key: &str,
    map: &mut A,
) -> Result<(), A::Error> {
    if std::mem::replace(seen, true) {
        return Err(de::Error::custom(format_args!("{DUPLICATE} {key:?}")));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de: 'a, 'a> de::Deserialize<'de> for RawRequest<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRequest<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC request object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut r = RawRequest {
                    jsonrpc: None,
                    id: None,
                    method: None,
                    params: None,
                };
                let mut seen = [false; 4];
                while let Some(key) = map.next_key::<CowStr<'de>>()? {
                    match key.0.as_ref() {
                        "jsonrpc" => once(&mut r.jsonrpc, &mut seen[0], "jsonrpc", &mut map)?,
                        "id" => once(&mut r.id, &mut seen[1], "id", &mut map)?,
                        "method" => once(&mut r.method, &mut seen[2], "method", &mut map)?,
                        "params" => once(&mut r.params, &mut seen[3], "params", &mut map)?,
                        _ => {
                            let _: IgnoredAny = map.next_value()?;
                        }
                    }
                }
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de: 'a, 'a> de::Deserialize<'de> for RawToolCall<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawToolCall<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with name and arguments")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut r = RawToolCall {
                    name: None,
                    arguments: None,
                };
                let mut seen = [false; 2];
                while let Some(key) = map.next_key::<CowStr<'de>>()? {
                    match key.0.as_ref() {
                        "name" => once(&mut r.name, &mut seen[0], "name", &mut map)?,
                        "arguments" => once(&mut r.arguments, &mut seen[1], "arguments", &mut map)?,
                        _ => {
                            let _: IgnoredAny = map.next_value()?;
                        }
                    }
                }
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

fn write_id(out: &mut Vec<u8>, id: Option<&RawValue>) {
    out.extend_from_slice(id.map_or("null", RawValue::get).as_bytes());
}

/// Appends an error response.
pub fn write_error(out: &mut Vec<u8>, id: Option<&RawValue>, err: &RpcError) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    write_id(out, id);
    out.extend_from_slice(b",\"error\":{\"code\":");
    out.extend_from_slice(err.code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    gojson::write_str(out, &err.message);
    if let Some(data) = &err.data {
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data);
    }
    out.extend_from_slice(b"}}");
}

/// Appends a result response; `result` is encoded JSON.
pub fn write_result(out: &mut Vec<u8>, id: Option<&RawValue>, result: &[u8]) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    write_id(out, id);
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result);
    out.push(b'}');
}

/// The `_intentgate` block added to allowed results: `{decision, reason, latency_ms}`.
pub fn intentgate_block(reason: &str, latency_ms: u64) -> serde_json::Value {
    serde_json::json!({"decision": "allow", "reason": reason, "latency_ms": latency_ms})
}

#[cfg(test)]
mod tests;
