//! Capability tokens, byte-compatible with IntentGate v3 (and v4) tokens (COMPATIBILITY.md §4).
//!
//! Wire form: `base64url_nopad(JSON)` of `{v, jti, root_jti, iss, tenant, [zone], sub, iat,
//! [nbf], [cav], sig}`. The signature is a Macaroon-style HMAC-SHA256 chain:
//! `sig0 = HMAC(master, payload)`, `sig_{i+1} = HMAC(sig_i, caveat_i)`, where payload and
//! caveats are the bytes Go's `json.Marshal` writes for them ([`crate::gojson`]). Because the
//! chain key of each step is the previous signature, anyone holding a token can append a
//! caveat (attenuate) but nobody can remove one.
//!
//! Decoding is stricter than Go's: keys must match exactly, appear once, and be known. Go
//! accepted `"JTI"`, duplicates and unknown keys; since the signature covers re-encoded
//! fields, that let several different byte strings carry one valid signature. Every token the
//! Go gateway and the SDKs produce uses exact, unique, known keys, so nothing valid is lost.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{hmac, rand::SecureRandom};

use crate::gojson::ObjectWriter;
use crate::key_ring::{KeyRing, MasterKey};

mod decoding;

use decoding::{RawToken, TOO_MANY_CAVEATS};

/// Longest accepted wire token, in bytes; checked before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Most caveats a token may carry; checked before any HMAC.
pub const MAX_CAVEATS: usize = 64;
/// Schema version without zones (IntentGate NG, 0.9+).
pub const VERSION_3: i64 = 3;
/// Schema version with `zone` (IntentGate-app 1.0+).
pub const VERSION_4: i64 = 4;

/// Caveat type names (COMPATIBILITY.md §4.4).
pub mod kind {
    /// Token expires at `exp` (unix seconds).
    pub const EXP: &str = "exp";
    /// Request agent must equal `agent`.
    pub const AGENT_LOCK: &str = "agent_lock";
    /// Tool must be one of `tools`.
    pub const TOOL_ALLOW: &str = "tool_allow";
    /// Tool must not be one of `tools`.
    pub const TOOL_DENY: &str = "tool_deny";
    /// At most `max_calls` calls (enforced by the budget stage).
    pub const MAX_CALLS: &str = "max_calls";
    /// Step-up authentication happened at `step_up_at` (read by policy).
    pub const STEP_UP: &str = "step_up";
    /// Resource URIs must start with one of `tools` (the list rides in the `tools` field so
    /// the canonical encoding stays the Go gateway's; older verifiers deny the unknown type).
    pub const RESOURCE_ALLOW: &str = "resource_allow";
    /// Resource URIs must not start with any of `tools`.
    pub const RESOURCE_DENY: &str = "resource_deny";
    /// Prompt names must be one of `tools`.
    pub const PROMPT_ALLOW: &str = "prompt_allow";
    /// Prompt names must not be one of `tools`.
    pub const PROMPT_DENY: &str = "prompt_deny";
}

/// What a request asks for, as the caveats see it: each caveat type governs one kind of
/// target and lets the others pass (a `tool_allow` token may still read resources; COMPATIBILITY.md
/// "Different on purpose").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A tool (`tools/call`, a `tools/list` entry).
    Tool(&'a str),
    /// A resource URI (`resources/read`, `resources/subscribe`, a `resources/list` entry).
    Resource(&'a str),
    /// A resource template (`resources/templates/list` entry): its literal part before the
    /// first `{` is compared with the prefixes.
    ResourceTemplate(&'a str),
    /// A prompt (`prompts/get`, a `prompts/list` entry).
    Prompt(&'a str),
    /// A request that names none of them (`initialize`, `ping`, list requests...).
    Nothing,
}

/// Why a token could not be decoded or verified. Messages never contain token material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is empty.
    #[error("token is empty")]
    Empty,
    /// The token is longer than [`MAX_TOKEN_BYTES`].
    #[error("token is {len} bytes; the limit is {max}")]
    TooLong {
        /// Length seen.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The token is not unpadded base64url.
    #[error("token is not valid unpadded base64url")]
    NotBase64,
    /// The decoded token is not the expected JSON object.
    #[error("token JSON is malformed: {0}")]
    Json(String),
    /// `v` names a schema we do not verify.
    #[error("unknown token schema version {0}")]
    UnsupportedVersion(i64),
    /// A required claim is missing or empty.
    #[error("token {} is required", missing_label(.0))]
    Missing(&'static str),
    /// `zone` was present in a v3 token.
    #[error("zone is only allowed in v4 tokens")]
    UnexpectedZone,
    /// More than [`MAX_CAVEATS`] caveats.
    #[error("token has {count} caveats; the limit is {max}")]
    TooManyCaveats {
        /// Count seen.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// `sig` is not 32 bytes of unpadded base64url.
    #[error("signature is not valid base64url")]
    BadSignatureEncoding,
    /// The HMAC chain does not match under any key of the ring.
    #[error("signature mismatch")]
    SignatureMismatch,
    /// Minting needs a subject.
    #[error("subject is required")]
    MissingSubject,
    /// The system random generator failed.
    #[error("system random number generator failed")]
    Random,
}

/// Go's wording for a missing claim, so error texts stay familiar to operators.
fn missing_label(field: &str) -> &str {
    match field {
        "jti" => "id (jti)",
        "root_jti" => "root id (root_jti)",
        "sub" => "subject (sub)",
        "iat" => "issued-at (iat)",
        "sig" => "signature (sig)",
        other => other,
    }
}

/// Why a verified token does not allow a call (COMPATIBILITY.md §4.4). Each renders as the reason the
/// gateway returns in JSON-RPC `data` and writes to the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// `nbf` lies in the future.
    #[error("token not yet valid (nbf in future)")]
    NotYetValid,
    /// Caveat number `index` (0-based) of type `kind` failed.
    #[error("caveat {index} ({kind}): {reason}")]
    Caveat {
        /// Position in the chain.
        index: usize,
        /// The caveat's `t`.
        kind: String,
        /// What failed.
        reason: CaveatFailure,
    },
}

/// The failure inside one caveat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaveatFailure {
    /// `exp` caveat with no `exp`.
    #[error("expiry caveat missing exp value")]
    MissingExp,
    /// now ≥ exp.
    #[error("expired")]
    Expired,
    /// `agent_lock` caveat with no agent.
    #[error("agent_lock caveat missing agent value")]
    MissingAgent,
    /// The calling agent differs.
    #[error("token bound to {expected:?}, request from {actual:?}")]
    AgentMismatch {
        /// Agent the caveat locks to.
        expected: String,
        /// Agent of the call.
        actual: String,
    },
    /// Tool not in the allow list.
    #[error("tool {0:?} not in allowed set")]
    ToolNotAllowed(String),
    /// Tool in the deny list.
    #[error("tool {0:?} is forbidden")]
    ToolDenied(String),
    /// Resource URI under none of the allowed prefixes.
    #[error("resource {0:?} not under an allowed prefix")]
    ResourceNotAllowed(String),
    /// Resource URI under a denied prefix.
    #[error("resource {0:?} is forbidden")]
    ResourceDenied(String),
    /// A resource URI with dot segments or percent-encoded dots or slashes: a prefix
    /// comparison cannot tell where it leads, so resource caveats refuse it.
    #[error("resource {0:?} has dot segments or encoded separators; prefix caveats refuse it")]
    AmbiguousResource(String),
    /// Prompt not in the allow list.
    #[error("prompt {0:?} not in allowed set")]
    PromptNotAllowed(String),
    /// Prompt in the deny list.
    #[error("prompt {0:?} is forbidden")]
    PromptDenied(String),
    /// `step_up_at` is negative.
    #[error("step_up caveat has negative step_up_at value")]
    NegativeStepUp,
    /// `max_calls` caveat without a limit.
    #[error("max_calls caveat missing max_calls value")]
    MissingMaxCalls,
    /// `max_calls` is negative.
    #[error("max_calls caveat has negative max_calls value")]
    NegativeMaxCalls,
    /// A caveat type this gateway does not know.
    #[error("unknown caveat type {0:?} (deny by default)")]
    UnknownType(String),
}

/// One caveat. Unknown types are kept (they are signed) and deny at check time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caveat {
    /// The type, `t` on the wire.
    pub kind: String,
    /// Tool names for `tool_allow` / `tool_deny`; URI prefixes for `resource_allow` /
    /// `resource_deny`; prompt names for `prompt_allow` / `prompt_deny`.
    pub tools: Vec<String>,
    /// Agent for `agent_lock`.
    pub agent: String,
    /// Expiry for `exp`, unix seconds.
    pub exp: i64,
    /// Call limit for `max_calls`.
    pub max_calls: i64,
    /// Step-up time for `step_up`, unix seconds.
    pub step_up_at: i64,
}

impl Caveat {
    fn of(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            ..Self::default()
        }
    }
    /// `exp` caveat.
    pub fn exp(at: i64) -> Self {
        Self {
            exp: at,
            ..Self::of(kind::EXP)
        }
    }
    /// `agent_lock` caveat.
    pub fn agent_lock(agent: &str) -> Self {
        Self {
            agent: agent.to_owned(),
            ..Self::of(kind::AGENT_LOCK)
        }
    }
    /// `tool_allow` caveat.
    pub fn tool_allow<S: Into<String>>(tools: impl IntoIterator<Item = S>) -> Self {
        Self {
            tools: tools.into_iter().map(Into::into).collect(),
            ..Self::of(kind::TOOL_ALLOW)
        }
    }
    /// `tool_deny` caveat.
    pub fn tool_deny<S: Into<String>>(tools: impl IntoIterator<Item = S>) -> Self {
        Self {
            tools: tools.into_iter().map(Into::into).collect(),
            ..Self::of(kind::TOOL_DENY)
        }
    }
    /// A list caveat of `kind` (`resource_allow`, `prompt_deny`...).
    pub fn list<S: Into<String>>(kind: &str, values: impl IntoIterator<Item = S>) -> Self {
        Self {
            tools: values.into_iter().map(Into::into).collect(),
            ..Self::of(kind)
        }
    }
    /// `max_calls` caveat.
    pub fn max_calls(limit: i64) -> Self {
        Self {
            max_calls: limit,
            ..Self::of(kind::MAX_CALLS)
        }
    }
    /// `step_up` caveat.
    pub fn step_up(at: i64) -> Self {
        Self {
            step_up_at: at,
            ..Self::of(kind::STEP_UP)
        }
    }

    /// Appends the canonical bytes the signature chain covers: Go field order
    /// `t, tools, agent, exp, max_calls, step_up_at`, all but `t` omitted when empty.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        let mut w = ObjectWriter::new(out);
        w.str("t", &self.kind);
        w.str_list_omitempty("tools", &self.tools);
        w.str_omitempty("agent", &self.agent);
        w.int_omitempty("exp", self.exp);
        w.int_omitempty("max_calls", self.max_calls);
        w.int_omitempty("step_up_at", self.step_up_at);
        w.finish();
    }

    /// Canonical bytes as a new vector.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write_canonical(&mut out);
        out
    }

    /// Evaluates this caveat for `target` at `now`; list caveats of another target kind pass.
    fn check(&self, now: i64, agent: &str, target: Target<'_>) -> Result<(), CaveatFailure> {
        match self.kind.as_str() {
            kind::EXP if self.exp == 0 => Err(CaveatFailure::MissingExp),
            kind::EXP if now >= self.exp => Err(CaveatFailure::Expired),
            kind::AGENT_LOCK if self.agent.is_empty() => Err(CaveatFailure::MissingAgent),
            kind::AGENT_LOCK if self.agent != agent => Err(CaveatFailure::AgentMismatch {
                expected: self.agent.clone(),
                actual: agent.to_owned(),
            }),
            kind::STEP_UP if self.step_up_at < 0 => Err(CaveatFailure::NegativeStepUp),
            kind::MAX_CALLS if self.max_calls < 0 => Err(CaveatFailure::NegativeMaxCalls),
            // Go skipped a zero (omitted) limit, so "zero calls" meant "no limit": deny instead.
            kind::MAX_CALLS if self.max_calls == 0 => Err(CaveatFailure::MissingMaxCalls),
            kind::EXP | kind::AGENT_LOCK | kind::STEP_UP | kind::MAX_CALLS => Ok(()),
            kind::TOOL_ALLOW | kind::TOOL_DENY => self.check_listed(
                match target {
                    Target::Tool(t) => Some(t),
                    _ => None,
                },
                CaveatFailure::ToolNotAllowed,
                CaveatFailure::ToolDenied,
            ),
            kind::PROMPT_ALLOW | kind::PROMPT_DENY => self.check_listed(
                match target {
                    Target::Prompt(p) => Some(p),
                    _ => None,
                },
                CaveatFailure::PromptNotAllowed,
                CaveatFailure::PromptDenied,
            ),
            kind::RESOURCE_ALLOW | kind::RESOURCE_DENY => self.check_resource(target),
            other => Err(CaveatFailure::UnknownType(other.to_owned())),
        }
    }

    fn listed(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t == name)
    }

    /// A name list caveat (`*_allow` / `*_deny`) on the name of its own kind of target
    /// (`None`: the request names none, and the caveat passes).
    fn check_listed(
        &self,
        name: Option<&str>,
        not_allowed: fn(String) -> CaveatFailure,
        denied: fn(String) -> CaveatFailure,
    ) -> Result<(), CaveatFailure> {
        let Some(name) = name else {
            return Ok(());
        };
        let allow = self.kind.ends_with("_allow");
        match (allow, self.listed(name)) {
            (true, false) => Err(not_allowed(name.to_owned())),
            (false, true) => Err(denied(name.to_owned())),
            _ => Ok(()),
        }
    }

    fn check_resource(&self, target: Target<'_>) -> Result<(), CaveatFailure> {
        let allow = self.kind == kind::RESOURCE_ALLOW;
        let (uri, permitted) = match target {
            Target::Resource(uri) => {
                if ambiguous_uri(uri) {
                    return Err(CaveatFailure::AmbiguousResource(uri.to_owned()));
                }
                let under = self.tools.iter().any(|p| uri.starts_with(p.as_str()));
                (uri, under == allow)
            }
            Target::ResourceTemplate(template) => {
                // The URIs a template yields all start with its literal part: it is shown
                // when some of them may be allowed, hidden when all of them are denied.
                let literal = template.split('{').next().unwrap_or("");
                if ambiguous_uri(literal) {
                    return Err(CaveatFailure::AmbiguousResource(template.to_owned()));
                }
                let permitted = if allow {
                    self.tools
                        .iter()
                        .any(|p| literal.starts_with(p.as_str()) || p.starts_with(literal))
                } else {
                    !self.tools.iter().any(|p| literal.starts_with(p.as_str()))
                };
                (template, permitted)
            }
            _ => return Ok(()),
        };
        match (permitted, allow) {
            (true, _) => Ok(()),
            (false, true) => Err(CaveatFailure::ResourceNotAllowed(uri.to_owned())),
            (false, false) => Err(CaveatFailure::ResourceDenied(uri.to_owned())),
        }
    }
}

/// A URI whose meaning a byte-prefix comparison cannot pin down: dot segments, or
/// percent-encoded dots, slashes or backslashes (an upstream may decode them after the
/// gateway compared), or a backslash.
pub fn ambiguous_uri(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "\\"]
        .iter()
        .any(|p| lower.contains(p))
    {
        return true;
    }
    let path = lower.split(['?', '#']).next().unwrap_or("");
    path.split('/').any(|seg| seg == "." || seg == "..")
}

/// The signed claims (everything but caveats and signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Schema version, [`VERSION_3`] or [`VERSION_4`].
    pub version: i64,
    /// Token id.
    pub jti: String,
    /// Id of the root token of the delegation chain (equal to `jti`: attenuation keeps both).
    pub root_jti: String,
    /// Issuer (free text).
    pub iss: String,
    /// Tenant.
    pub tenant: String,
    /// Zone, v4 only.
    pub zone: Option<String>,
    /// Subject: the agent id.
    pub sub: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Not before, unix seconds (0 = none).
    pub nbf: i64,
}

impl Claims {
    /// Appends the canonical payload bytes (COMPATIBILITY.md §4.2).
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        let mut w = ObjectWriter::new(out);
        self.write_fields(&mut w);
        w.finish();
    }

    fn write_fields(&self, w: &mut ObjectWriter<'_>) {
        w.int("v", self.version);
        w.str("jti", &self.jti);
        w.str("root_jti", &self.root_jti);
        w.str("iss", &self.iss);
        w.str("tenant", &self.tenant);
        if let Some(zone) = &self.zone {
            w.str("zone", zone);
        }
        w.str("sub", &self.sub);
        w.int("iat", self.iat);
        w.int_omitempty("nbf", self.nbf);
    }
}

/// A decoded capability token. Its signature is the bearer secret: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Signed claims.
    pub claims: Claims,
    /// Caveats in chain order.
    pub caveats: Vec<Caveat>,
    sig: [u8; 32],
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("claims", &self.claims)
            .field("caveats", &self.caveats)
            .field("sig", &"<redacted>")
            .finish()
    }
}

/// What to put in a new token.
#[derive(Debug, Clone, Default)]
pub struct MintRequest {
    /// Agent id (required).
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Tenant.
    pub tenant: String,
    /// Zone: `Some` mints a v4 token.
    pub zone: Option<String>,
    /// Not-before, unix seconds (0 = none).
    pub not_before: i64,
    /// Caveats, in order.
    pub caveats: Vec<Caveat>,
}

fn chain_step(key: &hmac::Key, msg: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(key, msg);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// A fresh token id: 4-byte big-endian unix seconds then 12 random bytes, base64url (22 chars).
pub fn new_jti(now: i64) -> Result<String, TokenError> {
    let mut bytes = [0u8; 16];
    // Truncation to 32 bits is the format (it wraps in 2106).
    bytes[..4].copy_from_slice(&(now as u32).to_be_bytes());
    ring::rand::SystemRandom::new()
        .fill(&mut bytes[4..])
        .map_err(|_| TokenError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl Token {
    /// Mints a token signed with `key` at time `now` (unix seconds).
    pub fn mint(key: &MasterKey, req: MintRequest, now: i64) -> Result<Self, TokenError> {
        if req.subject.trim().is_empty() {
            return Err(TokenError::MissingSubject);
        }
        if req.caveats.len() > MAX_CAVEATS {
            return Err(TokenError::TooManyCaveats {
                count: req.caveats.len(),
                max: MAX_CAVEATS,
            });
        }
        let jti = new_jti(now)?;
        let claims = Claims {
            version: if req.zone.is_some() {
                VERSION_4
            } else {
                VERSION_3
            },
            root_jti: jti.clone(),
            jti,
            iss: req.issuer,
            tenant: req.tenant,
            zone: req.zone,
            sub: req.subject,
            iat: now,
            nbf: req.not_before,
        };
        let mut token = Self::sign(key, claims);
        for caveat in req.caveats {
            token = token.attenuate(caveat)?;
        }
        Ok(token)
    }

    /// Signs `claims` as given, with no caveats (minting with chosen ids: migrations, fixtures).
    pub fn sign(key: &MasterKey, claims: Claims) -> Self {
        let mut payload = Vec::with_capacity(160);
        claims.write_canonical(&mut payload);
        let sig = chain_step(key.hmac_key(), &payload);
        Self {
            claims,
            caveats: Vec::new(),
            sig,
        }
    }

    /// Appends a caveat without the master key (holder-side attenuation, COMPATIBILITY.md §4.3). The
    /// child keeps `jti` and `root_jti`: they are inside the signed payload.
    pub fn attenuate(mut self, caveat: Caveat) -> Result<Self, TokenError> {
        if self.caveats.len() >= MAX_CAVEATS {
            return Err(TokenError::TooManyCaveats {
                count: self.caveats.len() + 1,
                max: MAX_CAVEATS,
            });
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.sig);
        self.sig = chain_step(&key, &caveat.canonical());
        self.caveats.push(caveat);
        Ok(self)
    }

    /// Decodes the wire form and checks structure (no signature check: see [`Token::verify`]).
    pub fn decode(wire: &str) -> Result<Self, TokenError> {
        let wire = wire.as_bytes();
        if wire.is_empty() {
            return Err(TokenError::Empty);
        }
        if wire.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong {
                len: wire.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        let json = URL_SAFE_NO_PAD
            .decode(wire)
            .map_err(|_| TokenError::NotBase64)?;
        let raw: RawToken = serde_json::from_slice(&json).map_err(|e| match e.to_string() {
            m if m.starts_with(TOO_MANY_CAVEATS) => TokenError::TooManyCaveats {
                count: MAX_CAVEATS + 1,
                max: MAX_CAVEATS,
            },
            m => TokenError::Json(m),
        })?;
        raw.into_token()
    }

    /// Decodes and verifies against every key of the ring.
    pub fn decode_verified(wire: &str, keys: &KeyRing) -> Result<Self, TokenError> {
        let token = Self::decode(wire)?;
        token.verify(keys)?;
        Ok(token)
    }

    /// Recomputes the HMAC chain under each key of the ring; the final comparison is constant
    /// time. Caveat bytes are computed once, whatever the number of keys.
    pub fn verify(&self, keys: &KeyRing) -> Result<(), TokenError> {
        let mut payload = Vec::with_capacity(160);
        self.claims.write_canonical(&mut payload);
        let mut caveat_bytes: Vec<Vec<u8>> = self.caveats.iter().map(Caveat::canonical).collect();
        let last = caveat_bytes.pop();
        for key in keys.keys() {
            let ok = match &last {
                None => hmac::verify(key.hmac_key(), &payload, &self.sig).is_ok(),
                Some(last) => {
                    let mut sig = chain_step(key.hmac_key(), &payload);
                    for bytes in &caveat_bytes {
                        sig = chain_step(&hmac::Key::new(hmac::HMAC_SHA256, &sig), bytes);
                    }
                    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &sig), last, &self.sig).is_ok()
                }
            };
            if ok {
                return Ok(());
            }
        }
        Err(TokenError::SignatureMismatch)
    }

    /// Evaluates `nbf` and every caveat in chain order at `now` for a call of `tool` by
    /// `agent`; the first failure is returned (COMPATIBILITY.md §4.4).
    pub fn check(&self, now: i64, agent: &str, tool: &str) -> Result<(), Denial> {
        self.check_target(now, agent, Target::Tool(tool))
    }

    /// Like [`Token::check`] for a call that names no tool (`initialize`, `tools/list`):
    /// `nbf`, expiry, agent lock and unknown caveats apply; tool lists do not.
    pub fn check_validity(&self, now: i64, agent: &str) -> Result<(), Denial> {
        self.check_target(now, agent, Target::Nothing)
    }

    /// Evaluates `nbf` and every caveat in chain order for a request of `target`; the list
    /// caveats of other target kinds pass.
    pub fn check_target(&self, now: i64, agent: &str, target: Target<'_>) -> Result<(), Denial> {
        if self.claims.nbf != 0 && now < self.claims.nbf {
            return Err(Denial::NotYetValid);
        }
        for (index, caveat) in self.caveats.iter().enumerate() {
            caveat
                .check(now, agent, target)
                .map_err(|reason| Denial::Caveat {
                    index,
                    kind: caveat.kind.clone(),
                    reason,
                })?;
        }
        Ok(())
    }

    /// The tightest positive `max_calls` limit, if any (enforced by the budget stage).
    pub fn max_calls(&self) -> Option<i64> {
        self.caveats
            .iter()
            .filter(|c| c.kind == kind::MAX_CALLS && c.max_calls > 0)
            .map(|c| c.max_calls)
            .min()
    }

    /// The latest `step_up_at` among `step_up` caveats, if any (copied into the policy input).
    pub fn step_up_at(&self) -> Option<i64> {
        self.caveats
            .iter()
            .filter(|c| c.kind == kind::STEP_UP && c.step_up_at > 0)
            .map(|c| c.step_up_at)
            .max()
    }

    /// The earliest `exp`, if any.
    pub fn expires_at(&self) -> Option<i64> {
        self.caveats
            .iter()
            .filter(|c| c.kind == kind::EXP && c.exp > 0)
            .map(|c| c.exp)
            .min()
    }

    /// The raw 32-byte signature. It is the bearer secret: never log it.
    pub fn signature(&self) -> &[u8; 32] {
        &self.sig
    }

    /// Encodes the wire form exactly as the Go gateway does.
    pub fn encode(&self) -> String {
        let mut json = Vec::with_capacity(256 + 64 * self.caveats.len());
        let mut w = ObjectWriter::new(&mut json);
        self.claims.write_fields(&mut w);
        if !self.caveats.is_empty() {
            let mut list = vec![b'['];
            for (i, c) in self.caveats.iter().enumerate() {
                if i > 0 {
                    list.push(b',');
                }
                c.write_canonical(&mut list);
            }
            list.push(b']');
            w.raw("cav", &list);
        }
        w.str("sig", &URL_SAFE_NO_PAD.encode(self.sig));
        w.finish();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// The decoded JSON as a pretty, human-readable document (for `intentgate token decode`);
    /// the signature is shown only as its length.
    pub fn to_display_json(&self) -> serde_json::Value {
        let caveats: Vec<serde_json::Value> = self
            .caveats
            .iter()
            .map(|c| serde_json::from_slice(&c.canonical()).unwrap_or(serde_json::Value::Null))
            .collect();
        let mut doc = serde_json::json!({
            "v": self.claims.version,
            "jti": self.claims.jti,
            "root_jti": self.claims.root_jti,
            "iss": self.claims.iss,
            "tenant": self.claims.tenant,
            "sub": self.claims.sub,
            "iat": self.claims.iat,
            "caveats": caveats,
        });
        if let Some(obj) = doc.as_object_mut() {
            if let Some(zone) = &self.claims.zone {
                obj.insert("zone".into(), zone.clone().into());
            }
            if self.claims.nbf != 0 {
                obj.insert("nbf".into(), self.claims.nbf.into());
            }
        }
        doc
    }
}

#[cfg(test)]
mod tests;
