//! Signed audit checkpoints: Ed25519 over a chain head (`INTENTGATE_AUDIT_SIGNING_KEY`).
//! The hash chain alone is unkeyed, so whoever can write the database could rebuild a
//! consistent chain; a checkpoint signed with a key the database never sees pins the head
//! at a point in time, and an export can be checked against it offline.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};

use intentgate_shared::audit::{AuditEvent, ChainWalker, ChainedEvent};
use intentgate_shared::key_ring::decode_base64_any;
use intentgate_shared::timestamp::Timestamp;

/// What a checkpoint signs.
pub fn message(chain_key: &str, seq: i64, head_hash: &str, ts: Timestamp) -> Vec<u8> {
    format!(
        "intentgate-audit-checkpoint-v1\n{chain_key}\n{seq}\n{head_hash}\n{}",
        ts.to_rfc3339_nano()
    )
    .into_bytes()
}

/// A key that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not base64 of the expected length.
    #[error("expected a base64 {0}-byte Ed25519 key")]
    Malformed(usize),
}

/// The signing side.
pub struct Signer {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Short id of a public key: the first 8 bytes of its SHA-256, hex.
pub fn key_id(public_key: &[u8]) -> String {
    intentgate_shared::audit::hex_sha256(public_key)[..16].to_owned()
}

impl Signer {
    /// From a base64 32-byte seed.
    pub fn from_seed(seed_b64: &str) -> Result<Self, KeyError> {
        let seed = decode_base64_any(seed_b64)
            .filter(|s| s.len() == 32)
            .ok_or(KeyError::Malformed(32))?;
        let pair =
            Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| KeyError::Malformed(32))?;
        let key_id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, key_id })
    }

    /// A new random seed, base64.
    pub fn generate_seed() -> String {
        let mut seed = [0u8; 32];
        // A failing system RNG must not yield a predictable key.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed).is_err() {
            return String::new();
        }
        STANDARD.encode(seed)
    }

    /// The public key, base64.
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.pair.public_key().as_ref())
    }

    /// The public key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `message`, base64.
    pub fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.pair.sign(message).as_ref())
    }
}

/// Checks a base64 signature against a base64 public key.
pub fn verify(public_key_b64: &str, message: &[u8], signature_b64: &str) -> Result<(), String> {
    let public = decode_base64_any(public_key_b64)
        .filter(|k| k.len() == 32)
        .ok_or("the public key is not base64 of 32 bytes")?;
    let sig = decode_base64_any(signature_b64).ok_or("the signature is not base64")?;
    signature::UnparsedPublicKey::new(&signature::ED25519, public)
        .verify(message, &sig)
        .map_err(|_| "the signature does not verify with this public key".to_owned())
}

/// What [`verify_export`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Chain key of the checkpoint.
    pub chain: String,
    /// Rows of that chain walked (hash-linked, gapless).
    pub verified: u64,
    /// The checkpoint's seq, found in the export with the signed hash.
    pub seq: i64,
    /// The checkpoint's time.
    pub signed_at: String,
}

fn text(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(|x| x.as_str())
        .unwrap_or_default()
        .to_owned()
}

fn int(v: &serde_json::Value, key: &str) -> i64 {
    v.get(key).and_then(serde_json::Value::as_i64).unwrap_or(0)
}

/// Rebuilds a stored row from one NDJSON export line (the event JSON plus `id`, `seq`,
/// `prev_hash`, `hash`).
fn row_from_line(line: &str) -> Result<(i64, Option<i64>, ChainedEvent), String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not a JSON line: {e}"))?;
    let ts = Timestamp::parse_rfc3339(&text(&v, "ts")).map_err(|e| e.to_string())?;
    let event = AuditEvent {
        ts,
        event: text(&v, "event"),
        schema_version: text(&v, "schema_version"),
        decision: text(&v, "decision"),
        check: text(&v, "check"),
        reason: text(&v, "reason"),
        tenant: text(&v, "tenant"),
        agent_id: text(&v, "agent_id"),
        session_id: text(&v, "session_id"),
        tool: text(&v, "tool"),
        arg_keys: v
            .get("arg_keys")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        arg_values: v.get("arg_values").and_then(|a| a.as_object()).cloned(),
        capability_token_id: text(&v, "capability_token_id"),
        root_capability_token_id: text(&v, "root_capability_token_id"),
        caveat_count: int(&v, "caveat_count"),
        pending_id: text(&v, "pending_id"),
        decided_by: text(&v, "decided_by"),
        intent_summary: text(&v, "intent_summary"),
        latency_ms: int(&v, "latency_ms"),
        remote_ip: text(&v, "remote_ip"),
        upstream_status: int(&v, "upstream_status"),
        requires_step_up: v
            .get("requires_step_up")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        elevation_id: text(&v, "elevation_id"),
        trace: None,
    };
    let id = v
        .get("id")
        .and_then(serde_json::Value::as_i64)
        .ok_or("line without the chain columns (export with format=json)")?;
    let seq = v.get("seq").and_then(serde_json::Value::as_i64);
    let row = ChainedEvent {
        event,
        prev_hash: text(&v, "prev_hash"),
        hash: text(&v, "hash"),
    };
    Ok((id, seq, row))
}

/// Verifies an NDJSON export against a signed checkpoint without the database: the
/// checkpoint's signature, then the checkpoint's chain in the export (hash links, gapless
/// seq, in id order), which must contain the signed head (same seq, same hash).
pub fn verify_export(
    ndjson: &str,
    checkpoint: &serde_json::Value,
    public_key_b64: &str,
) -> Result<ExportReport, String> {
    let chain = text(checkpoint, "tenant");
    let seq = checkpoint
        .get("seq")
        .and_then(serde_json::Value::as_i64)
        .ok_or("checkpoint without seq")?;
    let head_hash = text(checkpoint, "head_hash");
    let signed_at = text(checkpoint, "ts");
    let ts = Timestamp::parse_rfc3339(&signed_at).map_err(|e| format!("checkpoint ts: {e}"))?;
    verify(
        public_key_b64,
        &message(&chain, seq, &head_hash, ts),
        &text(checkpoint, "signature"),
    )
    .map_err(|e| format!("checkpoint: {e}"))?;
    let mut rows = Vec::new();
    for (n, line) in ndjson.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("{\"truncated\"") {
            continue;
        }
        let (id, row_seq, row) = row_from_line(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if intentgate_shared::audit::chain_key(&row.event.tenant) == chain {
            rows.push((id, row_seq, row));
        }
    }
    rows.sort_by_key(|(id, _, _)| *id);
    let mut walker = ChainWalker::default();
    let mut found = false;
    let mut verified = 0;
    for (id, row_seq, row) in &rows {
        // A re-baseline marker starts a new segment (docs/OPERATIONS.md).
        if row.event.tool == crate::store::audit::REBASELINE_TOOL && row.prev_hash.is_empty() {
            verified += std::mem::take(&mut walker).finish().verified;
        }
        if !walker.step(row, *row_seq) {
            let b = walker.finish().broken.map(|b| b.reason).unwrap_or("broken");
            return Err(format!("row {id}: {b}"));
        }
        if *row_seq == Some(seq) {
            if row.hash != head_hash {
                return Err(format!(
                    "row {id} (seq {seq}) does not carry the signed head hash: the export differs from what was signed"
                ));
            }
            found = true;
        }
    }
    if !found {
        return Err(format!(
            "the export holds no row of chain {chain:?} with seq {seq}: export a window that includes the checkpoint"
        ));
    }
    Ok(ExportReport {
        chain,
        verified: verified + walker.finish().verified,
        seq,
        signed_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let signer = Signer::from_seed(&STANDARD.encode([7u8; 32])).unwrap();
        let ts = Timestamp::from_unix_micros(1_790_000_000_000_000);
        let msg = message("acme", 42, "ab12", ts);
        let sig = signer.sign(&msg);
        assert_eq!(verify(&signer.public_key(), &msg, &sig), Ok(()));
        let other = message("acme", 43, "ab12", ts);
        assert!(verify(&signer.public_key(), &other, &sig).is_err());
        let stranger = Signer::from_seed(&Signer::generate_seed()).unwrap();
        assert!(verify(&stranger.public_key(), &msg, &sig).is_err());
        assert_eq!(signer.key_id().len(), 16);
        assert!(Signer::from_seed("c2hvcnQ").is_err());
        assert!(verify("bad", &msg, &sig).is_err());
        assert!(format!("{signer:?}").contains(signer.key_id()));
    }
}
