//! The intent check (COMPATIBILITY.md §5.1): the agent states its purpose in `X-Intent-Prompt`; an
//! extractor service turns it into allowed and forbidden tools; the call's tool must fit.
//!
//! Results are cached per core by SHA-256 of tenant, agent and prompt (the Go gateway keyed by
//! prompt alone, so one tenant's cached intent answered another's). Every extractor failure denies.

use std::collections::HashMap;

use ring::digest;
use serde_json::Value;

use intentgate_shared::policy::IntentInput;

/// Entries per cache generation; two generations approximate LRU without per-hit bookkeeping.
pub const CACHE_ENTRIES: usize = 1024;

/// Largest prompt accepted (bytes).
pub const MAX_PROMPT_BYTES: usize = 4096;

/// Why the intent stage refuses a call (the audit reason and the agent's error data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntentRefusal {
    /// `INTENTGATE_REQUIRE_INTENT` and no prompt.
    #[error("intent prompt required (send X-Intent-Prompt)")]
    PromptRequired,
    /// `INTENTGATE_REQUIRE_INTENT`, a prompt, but nobody to read it.
    #[error("intent prompt provided but no extractor URL is configured")]
    NoExtractor,
    /// The prompt is over [`MAX_PROMPT_BYTES`].
    #[error("intent prompt exceeds {MAX_PROMPT_BYTES} bytes")]
    PromptTooLong,
    /// The prompt is not UTF-8.
    #[error("intent prompt is not valid UTF-8")]
    PromptNotUtf8,
    /// The extractor could not be reached or failed.
    #[error("intent extractor {kind}: {detail} (fail closed)")]
    Extractor {
        /// Failure kind (`timeout`, `transport`, `http`...).
        kind: &'static str,
        /// What happened.
        detail: String,
    },
    /// The extractor's answer is unusable.
    #[error("{0} (fail closed)")]
    Response(#[from] ResponseError),
    /// The stated intent forbids the tool.
    #[error("tool {0:?} is forbidden by the stated intent")]
    Forbidden(String),
    /// The stated intent lists tools, and not this one.
    #[error("tool {0:?} is not among the tools the stated intent allows")]
    NotListed(String),
}

/// What is wrong with an extractor's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Not JSON.
    #[error("intent extractor returned invalid JSON")]
    InvalidJson,
    /// No `intent` object.
    #[error("intent extractor response has no intent object")]
    NoIntent,
    /// A tool list that is not a list of strings.
    #[error("intent.{0} must be a list of strings")]
    NotAList(&'static str),
}

/// A per-core cache of extracted intents.
#[derive(Debug, Default)]
pub struct IntentCache {
    current: HashMap<[u8; 32], IntentInput>,
    previous: HashMap<[u8; 32], IntentInput>,
}

/// Cache key for an agent's prompt within a tenant (the extractor sees the agent id, so its
/// answer may depend on it).
pub fn cache_key(tenant: &str, agent: &str, prompt: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [tenant, agent] {
        ctx.update(part.as_bytes());
        ctx.update(&[0x1e]);
    }
    ctx.update(prompt.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

impl IntentCache {
    /// A cached intent; a hit in the older generation is promoted.
    pub fn get(&mut self, key: &[u8; 32]) -> Option<IntentInput> {
        if let Some(v) = self.current.get(key) {
            return Some(v.clone());
        }
        let v = self.previous.remove(key)?;
        self.insert(*key, v.clone());
        Some(v)
    }

    /// Stores an intent.
    pub fn insert(&mut self, key: [u8; 32], intent: IntentInput) {
        if self.current.len() >= CACHE_ENTRIES {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, intent);
    }
}

/// The extractor request body.
pub fn request_body(prompt: &str, agent_id: &str) -> Vec<u8> {
    let mut doc = serde_json::json!({"prompt": prompt});
    if !agent_id.is_empty() {
        doc["agent_id"] = Value::from(agent_id);
    }
    doc.to_string().into_bytes()
}

/// Parses the extractor's answer `{"intent": {summary, allowed_tools, forbidden_tools, confidence}}`.
pub fn parse_response(body: &[u8]) -> Result<IntentInput, ResponseError> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| ResponseError::InvalidJson)?;
    let intent = doc
        .get("intent")
        .filter(|v| v.is_object())
        .ok_or(ResponseError::NoIntent)?;
    let list = |key: &'static str| -> Result<Vec<String>, ResponseError> {
        match intent.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or(ResponseError::NotAList(key))
                })
                .collect(),
            Some(_) => Err(ResponseError::NotAList(key)),
        }
    };
    Ok(IntentInput {
        summary: intent
            .get("summary")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        allowed_tools: list("allowed_tools")?,
        forbidden_tools: list("forbidden_tools")?,
        confidence: intent
            .get("confidence")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
    })
}

/// Whether `tool` fits the intent: not forbidden, and listed when a list exists.
pub fn check(intent: &IntentInput, tool: &str) -> Result<(), IntentRefusal> {
    if intent.forbidden_tools.iter().any(|t| t == tool) {
        return Err(IntentRefusal::Forbidden(tool.to_owned()));
    }
    if !intent.allowed_tools.is_empty() && !intent.allowed_tools.iter().any(|t| t == tool) {
        return Err(IntentRefusal::NotListed(tool.to_owned()));
    }
    Ok(())
}

/// Asks the extractor what `prompt` means, through the per-core cache.
pub async fn consult(
    extractor: &crate::upstream::Upstream,
    cache: &std::cell::RefCell<IntentCache>,
    prompt: &[u8],
    tenant: &str,
    agent: &str,
) -> Result<IntentInput, IntentRefusal> {
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(IntentRefusal::PromptTooLong);
    }
    let prompt = std::str::from_utf8(prompt).map_err(|_| IntentRefusal::PromptNotUtf8)?;
    let key = cache_key(tenant, agent, prompt);
    if let Some(hit) = cache.borrow_mut().get(&key) {
        return Ok(hit);
    }
    let reply = extractor
        .post(&request_body(prompt, agent))
        .await
        .map_err(|e| IntentRefusal::Extractor {
            kind: e.kind(),
            detail: e.detail(),
        })?;
    let intent = parse_response(&reply.body)?;
    cache.borrow_mut().insert(key, intent.clone());
    Ok(intent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(allowed: &[&str], forbidden: &[&str]) -> IntentInput {
        IntentInput {
            allowed_tools: allowed.iter().map(|s| s.to_string()).collect(),
            forbidden_tools: forbidden.iter().map(|s| s.to_string()).collect(),
            ..IntentInput::default()
        }
    }

    #[test]
    fn forbidden_wins_and_an_empty_allow_list_allows() {
        assert!(check(&intent(&[], &[]), "x").is_ok());
        assert!(check(&intent(&["x"], &[]), "x").is_ok());
        assert_eq!(
            check(&intent(&["y"], &[]), "x").unwrap_err().to_string(),
            "tool \"x\" is not among the tools the stated intent allows"
        );
        assert_eq!(
            check(&intent(&["x"], &["x"]), "x").unwrap_err().to_string(),
            "tool \"x\" is forbidden by the stated intent"
        );
    }

    #[test]
    fn responses_parse_or_fail_precisely() {
        let i = parse_response(
            br#"{"intent":{"summary":"pay","allowed_tools":["a"],"confidence":0.9},"model":"m"}"#,
        )
        .unwrap();
        assert_eq!(
            (i.summary.as_str(), i.allowed_tools.len(), i.confidence),
            ("pay", 1, 0.9)
        );
        assert_eq!(
            parse_response(b"nope").unwrap_err().to_string(),
            "intent extractor returned invalid JSON"
        );
        assert_eq!(
            parse_response(b"{}").unwrap_err().to_string(),
            "intent extractor response has no intent object"
        );
        assert_eq!(
            parse_response(br#"{"intent":{"allowed_tools":"a"}}"#)
                .unwrap_err()
                .to_string(),
            "intent.allowed_tools must be a list of strings"
        );
    }

    #[test]
    fn cache_is_keyed_by_tenant_and_prompt_and_bounded() {
        let mut c = IntentCache::default();
        c.insert(cache_key("acme", "a", "p"), intent(&["a"], &[]));
        assert!(c.get(&cache_key("acme", "a", "p")).is_some());
        assert!(c.get(&cache_key("globex", "a", "p")).is_none());
        for i in 0..CACHE_ENTRIES * 2 {
            c.insert(cache_key("t", "a", &i.to_string()), IntentInput::default());
        }
        assert!(c.current.len() + c.previous.len() <= CACHE_ENTRIES * 2);
        assert!(
            c.get(&cache_key("t", "a", &(CACHE_ENTRIES * 2 - 1).to_string()))
                .is_some()
        );
        assert_eq!(request_body("p", ""), br#"{"prompt":"p"}"#);
    }
}
