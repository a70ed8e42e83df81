//! Signed audit checkpoints: Ed25519 over a chain head (`INTENTGATE_AUDIT_SIGNING_KEY`).
//! The hash chain alone is unkeyed, so whoever can write the database could rebuild a
//! consistent chain; a checkpoint signed with a key the database never sees pins the head
//! at a point in time, and an export can be checked against it offline. The message and the
//! signer live in [`crate::chain_anchor`], which the store uses as well.

use ring::signature;

use intentgate_shared::audit::ChainWalker;
pub use intentgate_shared::audit::export_line::{LineError, row_from_line};
use intentgate_shared::key_ring::decode_base64_any;
use intentgate_shared::timestamp::{Timestamp, TimestampError};

use crate::chain_anchor::REBASELINE_TOOL;
pub use crate::chain_anchor::{KeyError, Signer, key_id, message};

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The public key is unusable.
    #[error("the public key is not base64 of 32 bytes")]
    PublicKey,
    /// The signature is not base64.
    #[error("the signature is not base64")]
    Encoding,
    /// Well-formed, but not this key's signature of this message.
    #[error("the signature does not verify with this public key")]
    Mismatch,
}

/// Checks a base64 signature against a base64 public key.
pub fn verify(
    public_key_b64: &str,
    message: &[u8],
    signature_b64: &str,
) -> Result<(), SignatureError> {
    let public = decode_base64_any(public_key_b64)
        .filter(|k| k.len() == 32)
        .ok_or(SignatureError::PublicKey)?;
    let sig = decode_base64_any(signature_b64).ok_or(SignatureError::Encoding)?;
    signature::UnparsedPublicKey::new(&signature::ED25519, public)
        .verify(message, &sig)
        .map_err(|_| SignatureError::Mismatch)
}

/// Why an export does not verify against a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The checkpoint has no `seq`.
    #[error("checkpoint without seq")]
    CheckpointSeq,
    /// The checkpoint's `ts` is not RFC 3339.
    #[error("checkpoint ts: {0}")]
    CheckpointTs(#[source] TimestampError),
    /// The checkpoint's signature does not hold.
    #[error("checkpoint: {0}")]
    CheckpointSignature(#[source] SignatureError),
    /// A line of the export is unreadable (`line` counts from 1).
    #[error("line {line}: {error}")]
    Line {
        /// Line number.
        line: usize,
        /// What was wrong with it.
        #[source]
        error: LineError,
    },
    /// The chain breaks at a row.
    #[error("row {id}: {reason}")]
    ChainBroken {
        /// Row id.
        id: i64,
        /// Which rule failed (`audit::BROKEN_LINK`, …).
        reason: &'static str,
    },
    /// The row at the signed seq has another hash.
    #[error(
        "row {id} (seq {seq}) does not carry the signed head hash: the export differs from what was signed"
    )]
    HeadDiffers {
        /// Row id.
        id: i64,
        /// The checkpoint's seq.
        seq: i64,
    },
    /// No row of the chain has the signed seq.
    #[error(
        "the export holds no row of chain {chain:?} with seq {seq}: export a window that includes the checkpoint"
    )]
    HeadMissing {
        /// Chain key.
        chain: String,
        /// The checkpoint's seq.
        seq: i64,
    },
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

/// Verifies an NDJSON export against a signed checkpoint without the database: the
/// checkpoint's signature, then the checkpoint's chain in the export (hash links, gapless
/// seq, in id order), which must contain the signed head (same seq, same hash).
pub fn verify_export(
    ndjson: &str,
    checkpoint: &serde_json::Value,
    public_key_b64: &str,
) -> Result<ExportReport, ExportError> {
    let chain = text(checkpoint, "tenant");
    let seq = checkpoint
        .get("seq")
        .and_then(serde_json::Value::as_i64)
        .ok_or(ExportError::CheckpointSeq)?;
    let head_hash = text(checkpoint, "head_hash");
    let signed_at = text(checkpoint, "ts");
    let ts = Timestamp::parse_rfc3339(&signed_at).map_err(ExportError::CheckpointTs)?;
    verify(
        public_key_b64,
        &message(&chain, seq, &head_hash, ts),
        &text(checkpoint, "signature"),
    )
    .map_err(ExportError::CheckpointSignature)?;
    let mut rows = Vec::new();
    for (n, line) in ndjson.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("{\"truncated\"") {
            continue;
        }
        let (id, row_seq, row) =
            row_from_line(line).map_err(|error| ExportError::Line { line: n + 1, error })?;
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
        if row.event.tool == REBASELINE_TOOL && row.prev_hash.is_empty() {
            verified += std::mem::take(&mut walker).finish().verified;
        }
        if !walker.step(row, *row_seq) {
            let reason = walker.finish().broken.map_or("broken", |b| b.reason);
            return Err(ExportError::ChainBroken { id: *id, reason });
        }
        if *row_seq == Some(seq) {
            if row.hash != head_hash {
                return Err(ExportError::HeadDiffers { id: *id, seq });
            }
            found = true;
        }
    }
    if !found {
        return Err(ExportError::HeadMissing { chain, seq });
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
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

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

    #[test]
    fn bad_export_lines_say_which_line_and_what() {
        let signer = Signer::from_seed(&STANDARD.encode([7u8; 32])).unwrap();
        let ts = Timestamp::from_unix_micros(1_790_000_000_000_000);
        let checkpoint = serde_json::json!({
            "tenant": "default", "seq": 1, "head_hash": "ab", "ts": ts.to_rfc3339_nano(),
            "signature": signer.sign(&message("default", 1, "ab", ts)),
        });
        let err = |export: &str| {
            verify_export(export, &checkpoint, &signer.public_key())
                .unwrap_err()
                .to_string()
        };
        assert!(err("\n{oops").starts_with("line 2: not a JSON line: "));
        let bad_ts = err(r#"{"ts":"yesterday","id":1}"#);
        assert!(
            bad_ts.starts_with("line 1: invalid RFC 3339 timestamp \"yesterday\""),
            "{bad_ts}"
        );
        // The caller numbers the lines; serde's "at line 1 column N" of the one-line
        // document is not repeated.
        assert!(
            bad_ts.ends_with("(example: 2026-05-14T10:11:12Z)"),
            "{bad_ts}"
        );
        assert_eq!(
            err(r#"{"ts":"2026-05-14T10:11:12Z","tool":"t"}"#),
            "line 1: line without the chain columns (export with format=json)"
        );
        assert_eq!(
            err(""),
            "the export holds no row of chain \"default\" with seq 1: export a window that includes the checkpoint"
        );
        let unsigned = serde_json::json!({
            "tenant": "default", "seq": 1, "ts": "2026-05-14T10:11:12Z", "signature": "%%",
        });
        let e = verify_export("", &unsigned, &signer.public_key()).unwrap_err();
        assert_eq!(e.to_string(), "checkpoint: the signature is not base64");
    }
}
