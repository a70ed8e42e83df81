//! Audit events (schema version 6, COMPATIBILITY.md §8.1), their canonical bytes and the per-tenant
//! hash chain (COMPATIBILITY.md §8.2, §8.3).
//!
//! The canonical form is what Go's `json.Marshal` writes for the event's hash mirror: fixed
//! field order, `omitempty` on all but `ts, event, schema_version, decision, tool,
//! latency_ms`, Go escaping, `arg_values` excluded. A chain written by the Go gateway and one
//! written by us verify with the same code.

pub mod export_line;
mod recorded;
pub mod redaction;

pub use recorded::{Recorded, WireName};

use ring::digest;

use crate::gojson::{self, ObjectWriter};
use crate::timestamp::Timestamp;

/// `event` of every audit record, admin events included.
pub const EVENT_NAME: &str = "intentgate.tool_call";
/// Current schema version.
pub const SCHEMA_VERSION: &str = "6";
/// Chain key of events whose tenant is empty.
pub const DEFAULT_CHAIN: &str = "default";

/// Outcome of a decision point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The call goes ahead.
    Allow,
    /// The call is refused.
    Block,
    /// The call waits for a human.
    Escalate,
}

impl Decision {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Block => "block",
            Self::Escalate => "escalate",
        }
    }
}

/// Pipeline stage that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// Capability token.
    Capability,
    /// Intent extraction.
    Intent,
    /// Rego policy.
    Policy,
    /// Call budget.
    Budget,
    /// Upstream forward.
    Upstream,
}

impl Check {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Capability => "capability",
            Self::Intent => "intent",
            Self::Policy => "policy",
            Self::Budget => "budget",
            Self::Upstream => "upstream",
        }
    }
}

/// One audit record. Text fields hold what is stored, so a row read back from Postgres
/// reproduces the exact canonical bytes it was hashed with.
///
/// Reads (`Deserialize`) the event JSON of [`AuditEvent::to_json`], an export line or a Go
/// gateway's line: the same field names, absent fields empty as `omitempty` left them, other
/// fields (an export's chain columns) ignored. Only `ts` is required.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct AuditEvent {
    /// Event time, microsecond precision.
    pub ts: Timestamp,
    /// Always [`EVENT_NAME`] for events we write; kept as stored for verification.
    #[serde(default)]
    pub event: String,
    /// Always [`SCHEMA_VERSION`] for events we write.
    #[serde(default)]
    pub schema_version: String,
    /// `allow`, `block` or `escalate`.
    #[serde(default)]
    pub decision: Recorded<Decision>,
    /// Stage that decided, or empty.
    #[serde(default)]
    pub check: Recorded<Check>,
    /// Human-readable reason.
    #[serde(default)]
    pub reason: String,
    /// Tenant ("" joins the `default` chain).
    #[serde(default)]
    pub tenant: String,
    /// Agent id (token subject).
    #[serde(default)]
    pub agent_id: String,
    /// Session id.
    #[serde(default)]
    pub session_id: String,
    /// Tool name, or `admin/<action>` for admin events.
    #[serde(default)]
    pub tool: String,
    /// Argument names.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub arg_keys: Vec<String>,
    /// Redacted argument values; outside the hash.
    #[serde(default)]
    pub arg_values: Option<serde_json::Map<String, serde_json::Value>>,
    /// Token `jti`.
    #[serde(default)]
    pub capability_token_id: String,
    /// Token `root_jti`.
    #[serde(default)]
    pub root_capability_token_id: String,
    /// Number of caveats on the token.
    #[serde(default)]
    pub caveat_count: i64,
    /// Approval id.
    #[serde(default)]
    pub pending_id: String,
    /// Approver.
    #[serde(default)]
    pub decided_by: String,
    /// Extracted intent summary.
    #[serde(default)]
    pub intent_summary: String,
    /// Decision latency.
    #[serde(default)]
    pub latency_ms: i64,
    /// Caller address.
    #[serde(default)]
    pub remote_ip: String,
    /// Upstream HTTP status.
    #[serde(default)]
    pub upstream_status: i64,
    /// Policy asked for step-up.
    #[serde(default)]
    pub requires_step_up: bool,
    /// Admin elevation id.
    #[serde(default)]
    pub elevation_id: String,
    /// The spans of a sampled request, for trace export; never stored or hashed.
    #[serde(skip)]
    pub trace: Option<Box<crate::trace::RequestTrace>>,
}

/// `null` reads as no argument names (Go marshals a nil slice so without `omitempty`).
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    <Option<Vec<String>> as serde::Deserialize>::deserialize(d).map(Option::unwrap_or_default)
}

impl Default for Timestamp {
    fn default() -> Self {
        Self::from_unix_micros(0)
    }
}

impl AuditEvent {
    /// A new event of the current schema at `ts`.
    pub fn new(ts: Timestamp, decision: Decision, tool: impl Into<String>) -> Self {
        Self {
            ts,
            event: EVENT_NAME.to_owned(),
            schema_version: SCHEMA_VERSION.to_owned(),
            decision: decision.into(),
            tool: tool.into(),
            ..Self::default()
        }
    }

    /// Sets `check`.
    pub fn with_check(mut self, check: Check) -> Self {
        self.check = check.into();
        self
    }

    /// The chain this event belongs to.
    pub fn chain_key(&self) -> &str {
        chain_key(&self.tenant)
    }

    fn write_fields(&self, w: &mut ObjectWriter<'_>, with_values: bool) {
        let mut ts = String::with_capacity(32);
        self.ts.write_rfc3339_nano(&mut ts);
        w.str("ts", &ts);
        w.str("event", &self.event);
        w.str("schema_version", &self.schema_version);
        w.str("decision", self.decision.as_str());
        w.str_omitempty("check", self.check.as_str());
        w.str_omitempty("reason", &self.reason);
        w.str_omitempty("tenant", &self.tenant);
        w.str_omitempty("agent_id", &self.agent_id);
        w.str_omitempty("session_id", &self.session_id);
        w.str("tool", &self.tool);
        w.str_list_omitempty("arg_keys", &self.arg_keys);
        if let Some(values) = self
            .arg_values
            .as_ref()
            .filter(|v| with_values && !v.is_empty())
        {
            let mut buf = Vec::new();
            gojson::write_object(&mut buf, values);
            w.raw("arg_values", &buf);
        }
        w.str_omitempty("capability_token_id", &self.capability_token_id);
        w.str_omitempty("root_capability_token_id", &self.root_capability_token_id);
        w.int_omitempty("caveat_count", self.caveat_count);
        w.str_omitempty("pending_id", &self.pending_id);
        w.str_omitempty("decided_by", &self.decided_by);
        w.str_omitempty("intent_summary", &self.intent_summary);
        w.int("latency_ms", self.latency_ms);
        w.str_omitempty("remote_ip", &self.remote_ip);
        w.int_omitempty("upstream_status", self.upstream_status);
        w.bool_omitempty("requires_step_up", self.requires_step_up);
        w.str_omitempty("elevation_id", &self.elevation_id);
    }

    /// Appends the canonical bytes that the chain hash covers (COMPATIBILITY.md §8.2).
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        let mut w = ObjectWriter::new(out);
        self.write_fields(&mut w, false);
        w.finish();
    }

    /// Canonical bytes as a new vector.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(384);
        self.write_canonical(&mut out);
        out
    }

    /// The full event JSON as emitted to stdout, webhooks and exports (with `arg_values`).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let mut w = ObjectWriter::new(&mut out);
        self.write_fields(&mut w, true);
        w.finish();
        out
    }

    /// This event's chain hash given the previous event's hash ("" for the first).
    pub fn chain_hash(&self, prev_hash: &str) -> String {
        let mut buf = Vec::with_capacity(64 + 384);
        buf.extend_from_slice(prev_hash.as_bytes());
        self.write_canonical(&mut buf);
        hex_sha256(&buf)
    }
}

/// Chain key for a tenant: "" chains as [`DEFAULT_CHAIN`].
pub fn chain_key(tenant: &str) -> &str {
    if tenant.is_empty() {
        DEFAULT_CHAIN
    } else {
        tenant
    }
}

/// `lowercase_hex(SHA-256(prev_hash_ascii || canonical))` over already-joined bytes.
pub fn hex_sha256(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = digest::digest(&digest::SHA256, bytes);
    let mut s = String::with_capacity(64);
    for b in d.as_ref() {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// Where a chain walk found a break (COMPATIBILITY.md §8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// Index of the offending event in the walked slice.
    pub index: usize,
    /// Hash stored on that event.
    pub stored_hash: String,
    /// What it should have been (previous hash for a broken link, recomputed hash otherwise).
    pub expected_hash: String,
    /// Which rule failed.
    pub reason: &'static str,
}

/// Reason for a broken link.
pub const BROKEN_LINK: &str = "prev_hash mismatch (chain link broken — row inserted/deleted)";
/// Reason for a modified row.
pub const TAMPERED_ROW: &str = "hash mismatch (row body tampered)";

/// One stored row as the verifier sees it: the event, its `prev_hash` and `hash` columns.
#[derive(Debug, Clone)]
pub struct ChainedEvent {
    /// Event body.
    pub event: AuditEvent,
    /// Stored `prev_hash` ("" for NULL).
    pub prev_hash: String,
    /// Stored `hash` ("" for pre-chain rows).
    pub hash: String,
}

/// Outcome of walking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainWalk {
    /// Rows whose link and hash checked out.
    pub verified: u64,
    /// Rows with an empty hash (written before chaining existed).
    pub skipped: u64,
    /// First break, if any; the walk stops there.
    pub broken: Option<ChainBreak>,
    /// Hash of the last verified row.
    pub last_hash: Option<String>,
}

/// Reason for rows missing in the middle of a chain (a gap in `seq`).
pub const DELETED_ROWS: &str = "row deleted (gap in seq before this row)";
/// Reason for rows out of chain order (`seq` not increasing in id order).
pub const REORDERED_ROWS: &str = "rows reordered (seq does not increase with id)";
/// Reason for a chain whose newest rows are gone.
pub const TRUNCATED: &str =
    "chain truncated (the chain head is beyond the last row: newest rows deleted)";
/// Reason for rows written after the recorded head.
pub const BEYOND_HEAD: &str = "rows beyond the chain head (appended outside the writer)";
/// Reason for a last row that is not the recorded head.
pub const HEAD_MISMATCH: &str = "the last row does not match the chain head";

/// Walks a chain one row at a time (rows in id order), so a verifier can stream a table.
/// Compat §8.4 rules: rows with an empty hash are skipped; from the second verified row on,
/// `prev_hash` must equal the previous hash; every hash must recompute. The first row trusts
/// its own `prev_hash` (a window may start mid-chain). Beyond compat, rows that carry a `seq`
/// must follow each other without gaps or reordering.
#[derive(Debug, Default)]
pub struct ChainWalker {
    walk: ChainWalk,
    last_seq: Option<i64>,
    index: usize,
}

impl ChainWalker {
    /// Checks the next row; `false` once the chain is broken (the walk stops there).
    pub fn step(&mut self, row: &ChainedEvent, seq: Option<i64>) -> bool {
        if self.walk.broken.is_some() {
            return false;
        }
        let index = self.index;
        self.index += 1;
        if row.hash.is_empty() {
            self.walk.skipped += 1;
            return true;
        }
        let brk = |expected_hash: String, reason| ChainBreak {
            index,
            stored_hash: row.hash.clone(),
            expected_hash,
            reason,
        };
        let expected_prev = self.walk.last_hash.clone().unwrap_or_default();
        if let (Some(last), Some(seq)) = (self.last_seq, seq) {
            let reason = match seq.cmp(&(last + 1)) {
                std::cmp::Ordering::Less => Some(REORDERED_ROWS),
                std::cmp::Ordering::Greater => Some(DELETED_ROWS),
                std::cmp::Ordering::Equal => None,
            };
            if let Some(reason) = reason {
                self.walk.broken = Some(brk(expected_prev, reason));
                return false;
            }
        }
        if self.walk.last_hash.is_some() && expected_prev != row.prev_hash {
            self.walk.broken = Some(brk(expected_prev, BROKEN_LINK));
            return false;
        }
        let recomputed = row.event.chain_hash(&row.prev_hash);
        if recomputed != row.hash {
            self.walk.broken = Some(brk(recomputed, TAMPERED_ROW));
            return false;
        }
        self.walk.verified += 1;
        self.walk.last_hash = Some(recomputed);
        self.last_seq = seq;
        true
    }

    /// `seq` of the last verified row, if it carried one.
    pub fn last_seq(&self) -> Option<i64> {
        self.last_seq
    }

    /// The walk so far.
    pub fn finish(self) -> ChainWalk {
        self.walk
    }
}

/// Walks rows in insertion order (see [`ChainWalker`]; rows here carry no `seq`).
pub fn verify_chain<'a>(rows: impl IntoIterator<Item = &'a ChainedEvent>) -> ChainWalk {
    let mut walker = ChainWalker::default();
    for row in rows {
        if !walker.step(row, None) {
            break;
        }
    }
    walker.finish()
}

#[cfg(test)]
mod tests;
