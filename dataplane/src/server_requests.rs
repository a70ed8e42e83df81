//! The requests an upstream sent to its client (`sampling/createMessage`,
//! `elicitation/create`, `roots/list`, …) that await the client's response, per upstream
//! session. A client may POST a JSON-RPC response only to a request listed here, once:
//! the relay lists each request as it passes (`relay::events`), the response consumes it
//! (`mcp::client_response`). Shared by every core (one mutex, touched only when such a
//! request or response passes), bounded, and each entry expires.
//!
//! Per process: a response must reach the replica that relayed the request. A store shared
//! across replicas is the Redis scale-out's work (COMPATIBILITY.md, "Different on purpose").

use std::collections::{HashMap, VecDeque};
use std::hash::RandomState;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Requests kept at most, all sessions together; past it the oldest is forgotten (its
/// response will be refused as unsolicited).
pub const CAPACITY: usize = 16_384;
/// How long a request waits for its response: a person may be answering an elicitation.
pub const TTL: Duration = Duration::from_secs(15 * 60);
/// Longest method name kept (the protocol's are short).
const MAX_METHOD: usize = 128;
/// Longest request id kept, as JSON text.
const MAX_ID: usize = 256;

/// One pending request: the upstream session it was sent on and its id as JSON text
/// (`7`, `"a"`), so two spellings of one id (`"\u0061"`, `"a"`) are one key.
type Key = (String, String);

/// The pending requests of every upstream session.
#[derive(Debug)]
pub struct ServerRequests {
    inner: Mutex<Inner>,
    capacity: usize,
    ttl: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    /// Key → (method, expiry, insertion number).
    pending: HashMap<Key, (String, Instant, u64), RandomState>,
    /// Insertion order, oldest first (with stale entries of answered requests, skipped).
    order: VecDeque<(Key, u64)>,
    next: u64,
}

impl Default for ServerRequests {
    fn default() -> Self {
        Self::new(CAPACITY, TTL)
    }
}

/// A request id as the key spells it: the JSON text of a string or integer id; `None`
/// for anything else (null, objects, floats: no MCP request carries one).
pub fn id_key(id: &serde_json::Value) -> Option<String> {
    let text = match id {
        serde_json::Value::String(_) => id.to_string(),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => return None,
    };
    (text.len() <= MAX_ID).then_some(text)
}

impl ServerRequests {
    /// An empty store keeping at most `capacity` requests, each for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that the upstream sent request `id` (see [`id_key`]) calling `method` on
    /// `session`. A repeated id replaces the earlier request.
    pub fn record(&self, session: &str, id: String, method: &str, now: Instant) {
        if method.len() > MAX_METHOD || id.len() > MAX_ID {
            return;
        }
        let mut inner = self.lock();
        inner.evict(now, self.capacity.saturating_sub(1));
        let seq = inner.next;
        inner.next += 1;
        let key = (session.to_owned(), id);
        inner
            .pending
            .insert(key.clone(), (method.to_owned(), now + self.ttl, seq));
        inner.order.push_back((key, seq));
        if inner.order.len() > 2 * self.capacity {
            // Answered requests leave their place in the order behind: drop those.
            let Inner { pending, order, .. } = &mut *inner;
            order.retain(|(k, s)| pending.get(k).is_some_and(|(_, _, at)| at == s));
        }
    }

    /// The method of the pending request `id` on `session`, if the upstream sent one that
    /// is still unanswered.
    pub fn method_of(&self, session: &str, id: &str, now: Instant) -> Option<String> {
        let inner = self.lock();
        let (method, expires, _) = inner.pending.get(&(session.to_owned(), id.to_owned()))?;
        (now < *expires).then(|| method.clone())
    }

    /// Consumes the pending request `id` on `session`: its method, or `None` when there is
    /// none (never sent, expired, or already answered).
    pub fn take(&self, session: &str, id: &str, now: Instant) -> Option<String> {
        let mut inner = self.lock();
        let (method, expires, _) = inner.pending.remove(&(session.to_owned(), id.to_owned()))?;
        (now < expires).then_some(method)
    }

    /// Pending requests held (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Forgets expired requests, then the oldest until at most `keep` remain.
    fn evict(&mut self, now: Instant, keep: usize) {
        while let Some((key, seq)) = self.order.front() {
            let current = self.pending.get(key).filter(|(_, _, s)| s == seq);
            match current {
                None => {}
                Some((_, expires, _)) if *expires <= now || self.pending.len() > keep => {
                    self.pending.remove(key);
                }
                Some(_) => break,
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests;
