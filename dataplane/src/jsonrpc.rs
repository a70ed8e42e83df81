//! JSON-RPC 2.0 envelopes for MCP: a borrowed view of the request and the response writers.
//!
//! Bodies are parsed with simd-json into a tape (a flat list of nodes) in a reusable
//! [`Scratch`]; strings borrow from that scratch copy, the raw `id` from the body itself. The
//! `arguments` of a `tools/call` become the policy's input value straight from the tape, so
//! the allow path reads them once.
//!
//! Rejected before any check runs: batches (a peer gateway let batch elements bypass its
//! checks), duplicate keys in the envelope, in `tools/call` params or anywhere in the
//! arguments (two parsers could read different values), and nesting deeper than
//! [`MAX_DEPTH`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use regorus::Value;
use simd_json::{Buffers, ErrorType, INPUT_PADDING, Node, StaticNode, Tape};

use intentgate_shared::gojson;
/// Deepest nesting accepted anywhere in a request.
pub const MAX_DEPTH: usize = 64;

/// Error codes (COMPATIBILITY.md §3).
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

/// Reusable parse buffers: the padded copy of the body simd-json parses in place (the body
/// itself stays untouched for forwarding) and its stage buffers.
pub struct Scratch {
    input: Vec<u8>,
    buffers: Buffers,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("capacity", &self.input.capacity())
            .finish()
    }
}

impl Scratch {
    /// Empty buffers.
    pub fn new() -> Self {
        Self {
            input: Vec::new(),
            buffers: Buffers::with_max_depth(1024, MAX_DEPTH),
        }
    }

    /// Parses `body` into a [`Document`] borrowing this scratch and `body`.
    pub fn parse<'a>(&'a mut self, body: &'a [u8]) -> Result<Document<'a>, simd_json::Error> {
        self.input.clear();
        self.input.extend_from_slice(body);
        self.input.resize(body.len() + INPUT_PADDING, 0);
        let base = self.input.as_ptr() as usize;
        let Self { input, buffers } = self;
        let mut tape = Tape(Vec::with_capacity(16 + body.len() / 16));
        simd_json::fill_tape_padded(input, body.len(), buffers, &mut tape)?;
        let buffers: &'a Buffers = buffers;
        Ok(Document {
            nodes: tape.0,
            structurals: buffers.structural_indexes(),
            body,
            base,
        })
    }
}

/// Keeps a core's scratch buffers for reuse. Each request takes one for as long as it runs
/// (requests on one core interleave at await points, so they cannot share one).
#[derive(Debug, Default)]
pub struct ScratchPool {
    free: RefCell<Vec<Scratch>>,
}

/// Buffers kept per core, and the largest one kept: a 1 MiB body's buffers are dropped.
const POOL_KEEP: usize = 64;
const POOL_KEEP_CAPACITY: usize = 64 * 1024;

impl ScratchPool {
    /// A scratch for one request; it returns to the pool when dropped.
    pub fn take(&self) -> PooledScratch<'_> {
        let scratch = self.free.borrow_mut().pop().unwrap_or_default();
        PooledScratch {
            pool: self,
            scratch: Some(scratch),
        }
    }
}

/// A [`Scratch`] on loan from a [`ScratchPool`].
#[derive(Debug)]
pub struct PooledScratch<'p> {
    pool: &'p ScratchPool,
    scratch: Option<Scratch>,
}

impl Deref for PooledScratch<'_> {
    type Target = Scratch;
    fn deref(&self) -> &Scratch {
        // Always `Some` until drop.
        self.scratch.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for PooledScratch<'_> {
    fn deref_mut(&mut self) -> &mut Scratch {
        self.scratch.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledScratch<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.scratch.take() {
            let mut free = self.pool.free.borrow_mut();
            if free.len() < POOL_KEEP && s.input.capacity() <= POOL_KEEP_CAPACITY {
                free.push(s);
            }
        }
    }
}

/// A parsed JSON document: simd-json's tape plus what locating raw values needs.
#[derive(Debug)]
pub struct Document<'a> {
    nodes: Vec<Node<'a>>,
    /// Byte offsets of the structural characters (and of each value's first byte).
    structurals: &'a [u32],
    body: &'a [u8],
    /// Address of the scratch copy: a string's offset in the body is its address minus this.
    base: usize,
}

/// Nodes taken by the value at `i` (itself and everything nested in it).
fn span(nodes: &[Node<'_>], i: usize) -> usize {
    match nodes.get(i) {
        Some(Node::Object { count, .. } | Node::Array { count, .. }) => count + 1,
        _ => 1,
    }
}

impl<'a> Document<'a> {
    /// Whether the top-level value is an object.
    fn is_object_at(&self, i: usize) -> bool {
        matches!(self.nodes.get(i), Some(Node::Object { .. }))
    }

    fn node(&self, i: usize) -> Option<Node<'a>> {
        self.nodes.get(i).copied()
    }

    fn str_at(&self, i: usize) -> Option<&'a str> {
        match self.nodes.get(i) {
            Some(Node::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Finds `names` among the members of the object at `obj`: the tape index of each value,
    /// and the index of each key (for [`Document::raw_after_key`]). A repeated name is an
    /// error naming it; other keys are skipped.
    fn pick<const N: usize>(
        &self,
        obj: usize,
        names: [&str; N],
    ) -> Result<[Option<(usize, usize)>; N], ContentError> {
        let mut found = [None; N];
        let Some(Node::Object { len, .. }) = self.nodes.get(obj) else {
            return Ok(found);
        };
        let mut i = obj + 1;
        for _ in 0..*len {
            let key = self.str_at(i).unwrap_or_default();
            if let Some(slot) = names.iter().position(|n| *n == key)
                && found[slot].replace((i, i + 1)).is_some()
            {
                return Err(ContentError::DuplicateKey(key.to_owned()));
            }
            i += 1 + span(&self.nodes, i + 1);
        }
        Ok(found)
    }

    /// Whether the key node at `key` is written with an escape in the body. simd-json
    /// unescapes a string in place right after its opening quote, so an unescaped name is
    /// one whose raw bytes are its text, free of backslashes, followed by the closing quote
    /// (a quote no backslash precedes ends the string).
    fn key_escaped(&self, key: usize) -> bool {
        let Some(Node::String(k)) = self.node(key) else {
            return false;
        };
        let Some(start) = (k.as_ptr() as usize).checked_sub(self.base) else {
            return true;
        };
        let raw = self.body.get(start..start + k.len());
        let literal = raw.is_some_and(|r| r == k.as_bytes() && !r.contains(&b'\\'))
            && self.body.get(start + k.len()) == Some(&b'"');
        !literal
    }

    /// The spelling rules for the envelope and `params` objects (every method): names
    /// written without escapes, in ASCII, no two equal but for case. What the gateway reads
    /// is then what any upstream parser reads.
    fn check_names(&self, obj: usize) -> Result<(), ContentError> {
        let Some(Node::Object { len, .. }) = self.nodes.get(obj) else {
            return Ok(());
        };
        let mut i = obj + 1;
        let mut bad = None;
        let names = (0..*len).map_while(|_| {
            let at = i;
            i += 1 + span(&self.nodes, i + 1);
            let name = self.str_at(at).unwrap_or_default();
            if !name.is_ascii() {
                bad = Some(ContentError::NonAsciiKey(name.to_owned()));
            } else if self.key_escaped(at) {
                bad = Some(ContentError::EscapedKey(name.to_owned()));
            }
            bad.is_none().then_some(name)
        });
        let pair = case_variants(*len, names);
        if let Some(e) = bad {
            return Err(e);
        }
        match pair {
            Some((a, b)) if a == b => Err(ContentError::DuplicateKey(a.to_owned())),
            Some((a, b)) => Err(ContentError::CaseVariantKeys(a.to_owned(), b.to_owned())),
            None => Ok(()),
        }
    }

    /// The raw bytes of the scalar value that follows the key node at `key`, as the body has
    /// them (`1.50`, `"a\u0062"`): a response must echo an id exactly.
    fn raw_after_key(&self, key: usize) -> Option<&'a [u8]> {
        let Node::String(k) = self.node(key)? else {
            return None;
        };
        // simd-json leaves every string (unescaped in place) right after its opening quote.
        let quote = (k.as_ptr() as usize)
            .checked_sub(self.base)?
            .checked_sub(1)?;
        let at = self
            .structurals
            .binary_search(&u32::try_from(quote).ok()?)
            .ok()?;
        // key, ':', value, then the ',' or '}' that ends it.
        let start = *self.structurals.get(at + 2)? as usize;
        let end = *self.structurals.get(at + 3)? as usize;
        self.body.get(start..end).map(<[u8]>::trim_ascii_end)
    }

    /// The value at `i` as a policy value. Objects with a repeated key are refused; so are
    /// numbers no JSON consumer can represent (the policy engine rejects non-finite ones).
    fn value_at(&self, i: usize) -> Result<Value, ContentError> {
        match self.node(i) {
            Some(Node::String(s)) => Ok(Value::from(s)),
            Some(Node::Static(n)) => match n {
                StaticNode::Null => Ok(Value::Null),
                StaticNode::Bool(b) => Ok(Value::Bool(b)),
                StaticNode::I64(v) => Ok(Value::from(v)),
                StaticNode::U64(v) => Ok(Value::from(v)),
                StaticNode::F64(v) if v.is_finite() => Ok(Value::from(v)),
                StaticNode::F64(_) => Err(ContentError::NumberOutOfRange),
            },
            Some(Node::Array { len, .. }) => {
                let mut items = Vec::with_capacity(len);
                let mut j = i + 1;
                for _ in 0..len {
                    items.push(self.value_at(j)?);
                    j += span(&self.nodes, j);
                }
                Ok(Value::from(items))
            }
            Some(Node::Object { len, .. }) => {
                let mut map = BTreeMap::new();
                let mut j = i + 1;
                for _ in 0..len {
                    let key = self.str_at(j).unwrap_or_default();
                    if map
                        .insert(Value::from(key), self.value_at(j + 1)?)
                        .is_some()
                    {
                        return Err(ContentError::DuplicateArgument(key.to_owned()));
                    }
                    j += 1 + span(&self.nodes, j + 1);
                }
                let names = map
                    .keys()
                    .filter_map(|k| k.as_string().ok())
                    .map(|k| k.as_ref());
                if let Some((a, b)) = case_variants(map.len(), names) {
                    return Err(ContentError::CaseVariantArguments(
                        a.to_owned(),
                        b.to_owned(),
                    ));
                }
                Ok(Value::from(map))
            }
            None => Err(ContentError::Truncated),
        }
    }
}

/// The request envelope. Strings borrow from the scratch, the id from the body.
#[derive(Debug)]
pub struct Request<'a> {
    /// Raw `id` exactly as sent; `None` when absent (a notification). JSON `null` is a
    /// request with id null.
    pub id: Option<&'a [u8]>,
    /// Method name.
    pub method: &'a str,
    /// Tape index of `params`.
    params: Option<usize>,
    doc: Document<'a>,
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
    pub name: &'a str,
    /// The `arguments` object as the policy reads it, if any.
    pub arguments: Option<Value>,
}

/// What a request that cannot be parsed is answered with, and the id to answer it under.
pub type Rejection<'a> = (RpcError, Option<&'a [u8]>);

/// A JSON-RPC response a client POSTs: its answer to a request the server sent it
/// (`sampling/createMessage`, `elicitation/create`, `roots/list`, …).
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// Raw `id` exactly as sent (a string or a number).
    pub id: &'a [u8],
    /// An `error` rather than a `result`.
    pub is_error: bool,
}

/// One POSTed message: a request (or notification), or a response.
#[derive(Debug)]
pub enum Message<'a> {
    /// Has a `method`.
    Request(Request<'a>),
    /// Has no `method`, and a `result` or an `error`.
    Response(Response<'a>),
}

/// Parses one request; a response is refused as a request without a method. Errors carry
/// the request id when it was readable.
pub fn parse_request<'a>(
    scratch: &'a mut Scratch,
    body: &'a [u8],
) -> Result<Request<'a>, Rejection<'a>> {
    match parse_message(scratch, body)? {
        Message::Request(r) => Ok(r),
        Message::Response(r) => Err((
            RpcError::new(code::INVALID_REQUEST, "method is required"),
            Some(r.id),
        )),
    }
}

/// Parses one message: a request, or a client's response. Errors carry the id when it was
/// readable.
pub fn parse_message<'a>(
    scratch: &'a mut Scratch,
    body: &'a [u8],
) -> Result<Message<'a>, Rejection<'a>> {
    let invalid = |msg: Cow<'static, str>| (RpcError::new(code::INVALID_REQUEST, msg), None);
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(invalid(
            "batch requests are not supported: send one JSON-RPC object per request".into(),
        ));
    }
    let doc = scratch.parse(body).map_err(|e| {
        if matches!(e.error(), ErrorType::DepthLimitExceeded) {
            invalid(format!("request nests deeper than {MAX_DEPTH} levels").into())
        } else {
            let err = RpcError::with_reason(code::PARSE, "invalid JSON", &e.to_string());
            (err, None)
        }
    })?;
    if !doc.is_object_at(0) {
        return Err(invalid("a request must be a JSON object".into()));
    }
    doc.check_names(0).map_err(|e| {
        let err = RpcError::with_reason(code::INVALID_REQUEST, "invalid request", &e.to_string());
        (err, None)
    })?;
    let [jsonrpc, id, method, params, result, error] = doc
        .pick(0, ["jsonrpc", "id", "method", "params", "result", "error"])
        .map_err(|dup| {
            let err =
                RpcError::with_reason(code::INVALID_REQUEST, "invalid request", &dup.to_string());
            (err, None)
        })?;
    let id = match id {
        None => None,
        Some((key, value)) => match doc.node(value) {
            Some(Node::String(_) | Node::Static(StaticNode::Null)) => doc.raw_after_key(key),
            Some(Node::Static(StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_))) => {
                doc.raw_after_key(key)
            }
            _ => return Err(invalid("id must be a string, a number or null".into())),
        }
        .map(Some)
        .ok_or_else(|| invalid("id could not be located in the body".into()))?,
    };
    if jsonrpc.and_then(|(_, v)| doc.str_at(v)) != Some("2.0") {
        return Err((
            RpcError::new(code::INVALID_REQUEST, "jsonrpc must be \"2.0\""),
            id,
        ));
    }
    if method.is_none() && (result.is_some() || error.is_some()) {
        let kinds = [result, error].map(|m| m.and_then(|(_, v)| doc.node(v)));
        return response_of(id, params.is_some(), kinds).map(Message::Response);
    }
    let method = match method.and_then(|(_, v)| doc.str_at(v)) {
        Some(m) if !m.is_empty() => m,
        _ => {
            return Err((
                RpcError::new(code::INVALID_REQUEST, "method is required"),
                id,
            ));
        }
    };
    let params = params.map(|(_, v)| v);
    if let Some(p) = params {
        doc.check_names(p).map_err(|e| {
            let message = if method == "tools/call" {
                "invalid tools/call params"
            } else {
                "invalid params"
            };
            let err = RpcError::with_reason(code::INVALID_PARAMS, message, &e.to_string());
            (err, id)
        })?;
    }
    Ok(Message::Request(Request {
        id,
        method,
        params,
        doc,
    }))
}

/// A response's envelope: an id that is not null (it names the request answered), no
/// `params`, and exactly one of `result` and `error`, an object.
fn response_of<'a>(
    id: Option<&'a [u8]>,
    has_params: bool,
    [result, error]: [Option<Node<'a>>; 2],
) -> Result<Response<'a>, Rejection<'a>> {
    let invalid = |msg: &'static str| (RpcError::new(code::INVALID_REQUEST, msg), None);
    let Some(id) = id.filter(|i| *i != b"null") else {
        return Err(invalid(
            "a response must carry the id of the request it answers",
        ));
    };
    let fail = |msg: &'static str| Err((RpcError::new(code::INVALID_REQUEST, msg), Some(id)));
    if has_params {
        return fail("a response has no params");
    }
    match (result, error) {
        (Some(Node::Object { .. }), None) => Ok(Response {
            id,
            is_error: false,
        }),
        (None, Some(Node::Object { .. })) => Ok(Response { id, is_error: true }),
        (Some(_), Some(_)) => fail("a response carries a result or an error, not both"),
        _ => fail("a response's result or error must be an object"),
    }
}

impl<'a> Request<'a> {
    /// A string member of `params` (`name`, `uri`), if present.
    pub fn param_str(&self, key: &str) -> Option<&'a str> {
        let params = self.params?;
        if !self.doc.is_object_at(params) {
            return None;
        }
        let [v] = self.doc.pick(params, [key]).ok()?;
        v.and_then(|(_, at)| self.doc.str_at(at))
    }

    /// `params` of a method other than `tools/call`, as the policy reads it
    /// (`input.params`): None when absent or null, else an object held to the same rules as
    /// tool arguments (no duplicate or case-variant keys at any depth).
    pub fn params_value(&self) -> Result<Option<Value>, RpcError> {
        self.doc.arguments(self.params).map_err(|e| match e {
            Arguments::NotAnObject => {
                RpcError::new(code::INVALID_PARAMS, "params must be an object")
            }
            Arguments::Invalid(reason) => {
                RpcError::with_reason(code::INVALID_PARAMS, "invalid params", &reason.to_string())
            }
        })
    }

    /// Parses `tools/call` params.
    pub fn tool_call(&self) -> Result<ToolCall<'a>, RpcError> {
        let bad = |reason: &str| {
            RpcError::with_reason(code::INVALID_PARAMS, "invalid tools/call params", reason)
        };
        let params = self
            .params
            .ok_or_else(|| RpcError::new(code::INVALID_PARAMS, "params.name is required"))?;
        if !self.doc.is_object_at(params) {
            return Err(bad("params must be an object"));
        }
        let [name, arguments] = self
            .doc
            .pick(params, ["name", "arguments"])
            .map_err(|dup| bad(&dup.to_string()))?;
        let name = match name.and_then(|(_, v)| self.doc.str_at(v)) {
            Some(n) if !n.trim().is_empty() => n,
            _ => {
                return Err(RpcError::new(
                    code::INVALID_PARAMS,
                    "params.name is required",
                ));
            }
        };
        let arguments = self
            .doc
            .arguments(arguments.map(|(_, v)| v))
            .map_err(|e| match e {
                Arguments::NotAnObject => {
                    RpcError::new(code::INVALID_PARAMS, "params.arguments must be an object")
                }
                Arguments::Invalid(reason) => bad(&reason.to_string()),
            })?;
        Ok(ToolCall { name, arguments })
    }
}

/// Why an arguments value was refused.
#[derive(Debug)]
enum Arguments {
    NotAnObject,
    Invalid(ContentError),
}

/// What is wrong inside a well-formed JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// A member the envelope reads appears twice in one object.
    #[error("duplicate key {0:?}")]
    DuplicateKey(String),
    /// An object inside the arguments repeats a key.
    #[error("duplicate key {0:?} in arguments")]
    DuplicateArgument(String),
    /// A number no JSON consumer can represent (the policy engine rejects non-finite ones).
    #[error("a number in arguments is out of range")]
    NumberOutOfRange,
    /// The parser's tape ended early.
    #[error("truncated document")]
    Truncated,
    /// A member name of the envelope or `params` written with escapes: a parser that does
    /// not unescape names would read another name than the one authorized.
    #[error(
        "key {0:?} is written with escapes: spell the names of the envelope and params literally"
    )]
    EscapedKey(String),
    /// A member name of the envelope or `params` outside ASCII (the protocol's names are
    /// ASCII; Unicode case folding would let one stand for another).
    #[error("key {0:?} is not ASCII: the envelope and params take the protocol's names only")]
    NonAsciiKey(String),
    /// Two member names of one object equal but for case: a parser that matches names
    /// case-insensitively (Go's `encoding/json`) may read either.
    #[error("keys {0:?} and {1:?} differ only in case")]
    CaseVariantKeys(String, String),
    /// The same in the arguments, at any depth (Unicode case folding).
    #[error("keys {0:?} and {1:?} in arguments differ only in case")]
    CaseVariantArguments(String, String),
}

/// Whether `a` and `b` are one name to a parser that ignores case: ASCII case, or Unicode
/// case folding (`ſ` is `s`, the Kelvin sign is `k`). Over-folding (`ß` → `ss`) only refuses
/// more.
fn same_but_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    fold_case(a) == fold_case(b)
}

/// `s` with Unicode case folded (upper, then lower: `ſ` and `S` both become `s`).
fn fold_case(s: &str) -> String {
    s.chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

/// The first pair of `names` (`len` of them) that differ only in case. Up to a few dozen
/// names are compared pairwise from a stack array (no allocation on the request path);
/// wider objects by their folded form through a set, so they cost no quadratic time.
fn case_variants<'n>(
    len: usize,
    names: impl Iterator<Item = &'n str>,
) -> Option<(&'n str, &'n str)> {
    const PAIRWISE_UP_TO: usize = 32;
    if len <= PAIRWISE_UP_TO {
        let mut seen: [&str; PAIRWISE_UP_TO] = [""; PAIRWISE_UP_TO];
        for (i, name) in names.take(PAIRWISE_UP_TO).enumerate() {
            if let Some(first) = seen[..i].iter().find(|s| same_but_case(s, name)) {
                return Some((first, name));
            }
            seen[i] = name;
        }
        return None;
    }
    let mut seen: std::collections::HashMap<String, &'n str> = std::collections::HashMap::new();
    for name in names {
        if let Some(first) = seen.insert(fold_case(name), name) {
            return Some((first, name));
        }
    }
    None
}

impl Document<'_> {
    /// An optional arguments object (absent or `null`: none).
    fn arguments(&self, at: Option<usize>) -> Result<Option<Value>, Arguments> {
        match at.and_then(|i| self.node(i).map(|n| (i, n))) {
            None | Some((_, Node::Static(StaticNode::Null))) => Ok(None),
            Some((i, Node::Object { .. })) => {
                self.value_at(i).map(Some).map_err(Arguments::Invalid)
            }
            Some(_) => Err(Arguments::NotAnObject),
        }
    }
}

/// A `POST /v1/tool-call` body: `{tool, args, ...}` (other keys are ignored, as before).
#[derive(Debug)]
pub struct ToolCallBody<'a> {
    /// Tool name (non-blank).
    pub tool: &'a str,
    /// `args`, when an object.
    pub args: Option<Value>,
}

/// Why a `/v1/tool-call` body was refused: the compat error name and a detail.
#[derive(Debug, PartialEq, Eq)]
pub struct BodyError {
    /// `invalid_json`, `missing_tool` or `invalid_args`.
    pub error: &'static str,
    /// What exactly is wrong.
    pub detail: String,
}

/// Parses a `POST /v1/tool-call` body with the same parser and refusals as `/v1/mcp`.
pub fn parse_tool_call_body<'a>(
    scratch: &'a mut Scratch,
    body: &'a [u8],
) -> Result<ToolCallBody<'a>, BodyError> {
    let fail = |error, detail: String| BodyError { error, detail };
    let doc = scratch.parse(body).map_err(|e| {
        let detail = if matches!(e.error(), ErrorType::DepthLimitExceeded) {
            format!("body nests deeper than {MAX_DEPTH} levels")
        } else {
            e.to_string()
        };
        fail("invalid_json", detail)
    })?;
    if !doc.is_object_at(0) {
        return Err(fail("invalid_json", "body must be a JSON object".into()));
    }
    doc.check_names(0)
        .map_err(|e| fail("invalid_json", e.to_string()))?;
    let [tool, args] = doc
        .pick(0, ["tool", "args"])
        .map_err(|dup| fail("invalid_json", dup.to_string()))?;
    let tool = match tool.map(|(_, v)| (v, doc.str_at(v))) {
        Some((_, Some(t))) if !t.trim().is_empty() => t,
        Some((v, None)) if !matches!(doc.node(v), Some(Node::Static(StaticNode::Null))) => {
            return Err(fail("invalid_json", "tool must be a string".into()));
        }
        _ => return Err(fail("missing_tool", "tool is required".into())),
    };
    let args = doc.arguments(args.map(|(_, v)| v)).map_err(|e| match e {
        Arguments::NotAnObject => fail("invalid_args", "args must be an object".into()),
        Arguments::Invalid(reason) => fail("invalid_args", reason.to_string()),
    })?;
    Ok(ToolCallBody { tool, args })
}

fn write_id(out: &mut Vec<u8>, id: Option<&[u8]>) {
    out.extend_from_slice(id.unwrap_or(b"null"));
}

/// Appends an error response.
pub fn write_error(out: &mut Vec<u8>, id: Option<&[u8]>, err: &RpcError) {
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
pub fn write_result(out: &mut Vec<u8>, id: Option<&[u8]>, result: &[u8]) {
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
