//! What anchors a segment of the audit chain, used by both the store (which writes anchors)
//! and the offline checkpoint verifier (which reads them), so neither imports the other: the
//! re-baseline marker a segment starts from, and the Ed25519 checkpoint that pins a head
//! (the message it signs and the key that signs it, `INTENTGATE_AUDIT_SIGNING_KEY`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use intentgate_shared::key_ring::decode_base64_any;
use intentgate_shared::timestamp::Timestamp;

/// `tool` of a re-baseline marker event: with an empty `prev_hash` it starts a new segment
/// (docs/OPERATIONS.md, "Re-baseline").
pub const REBASELINE_TOOL: &str = "admin/rebaseline_chain";

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
