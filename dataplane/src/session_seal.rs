//! The MCP session ids clients see: the gateway's own, sealed (XChaCha20-Poly1305) around
//! the upstream's session id, the tenant and root token id of the token that opened the
//! session, and an expiry. Any replica holding the master key opens any replica's ids, so
//! no sticky routing is needed; a client can neither read nor forge one, nor use the
//! upstream's raw id, nor carry one over to another tenant or token.
//!
//! The keys are derived once at startup from the master key ring (HKDF-SHA256, one
//! purpose label): new ids are sealed with the current key, ids sealed with a previous key
//! still open, so session keys rotate with the master key. Nothing here runs a key
//! derivation per request.
//!
//! Wire form (base64url, unpadded: visible ASCII as the transport requires):
//! `version (1) ‖ nonce (24) ‖ AEAD(plaintext, aad = version)`, the plaintext being
//! `expires_at (i64 BE) ‖ tenant (u8 length ‖ bytes) ‖ root jti (same) ‖ upstream id`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use ring::rand::{SecureRandom, SystemRandom};

use intentgate_shared::key_ring::{KeyError, KeyRing};

/// The HKDF `info` of the session-id key: a new purpose gets a new label, never this one.
const KEY_PURPOSE: &[u8] = b"intentgate mcp session id v1";
/// First byte of every sealed id, authenticated with it.
const VERSION: u8 = 1;
const NONCE: usize = 24;
const TAG: usize = 16;
/// Expiry and the two length prefixes.
const FIXED_PLAINTEXT: usize = 8 + 1 + 1;
/// Longest upstream session id sealed (the SDKs use UUIDs; this leaves room).
pub const MAX_UPSTREAM_ID: usize = 1024;
/// Longest sealed id opened: anything longer was not issued here, and is not decoded.
const MAX_SEALED: usize =
    (1 + NONCE + FIXED_PLAINTEXT + 2 * 255 + MAX_UPSTREAM_ID + TAG) * 4 / 3 + 4;

/// Why a sealed id could not be made. Never carries key material or the ids.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Deriving the key from the master key failed.
    #[error("session key derivation: {0}")]
    Key(#[from] KeyError),
    /// The system random generator failed (a nonce, or a per-process key).
    #[error("system random number generator failed")]
    Random,
    /// The upstream's session id is empty, too long or not visible ASCII.
    #[error(
        "upstream session id is empty, longer than {MAX_UPSTREAM_ID} bytes or not visible ASCII"
    )]
    UpstreamId,
    /// A tenant or token id longer than 255 bytes.
    #[error("tenant or token id longer than 255 bytes")]
    Binding,
    /// The cipher refused (it never does for these lengths).
    #[error("session id encryption failed")]
    Cipher,
}

/// Why a client's `Mcp-Session-Id` is refused. The client sees one answer for all of
/// them (404, unknown session: the transport's signal to start a new one); the audit
/// record says which. The texts never contain the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefusal {
    /// Not base64url, the wrong length or version: an upstream's raw id, or garbage.
    #[error("Mcp-Session-Id is not a session id this gateway issued")]
    NotIssued,
    /// Well-formed, but no current or previous key opens it: tampered, or sealed under a
    /// master key this gateway does not hold.
    #[error("Mcp-Session-Id does not verify (tampered, or sealed under another master key)")]
    Forged,
    /// Past its lifetime or its token's expiry.
    #[error("session expired")]
    Expired,
    /// Opened with a token of another tenant.
    #[error("session belongs to another tenant")]
    OtherTenant,
    /// Opened with another root token of the same tenant.
    #[error("session belongs to another root capability token")]
    OtherToken,
    /// Opened with a token; this request carries none.
    #[error("session was opened with a capability token; this request carries none")]
    TokenMissing,
    /// Opened without a token; this request carries one.
    #[error("session was opened without a capability token; this request carries one")]
    TokenAdded,
    /// The token (or its root) is revoked: its sessions end with it.
    #[error("session's capability token is revoked")]
    Revoked,
}

/// Who a session belongs to: the tenant and root token id of the token that opened it
/// (both empty without a token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner<'a> {
    /// The token's tenant.
    pub tenant: &'a str,
    /// The token's `root_jti` (empty: no token).
    pub root: &'a str,
}

/// A sealed id, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The upstream's own session id: the only one the upstream ever receives.
    pub upstream: String,
    /// The tenant the session belongs to.
    pub tenant: String,
    /// The root token id it belongs to (empty: opened without a token).
    pub root: String,
    /// Unix seconds after which it no longer opens.
    pub expires_at: i64,
}

impl Opened {
    /// Whether the session belongs to `caller` (the request's verified token, or the
    /// token-less owner).
    pub fn belongs_to(&self, caller: Owner<'_>) -> Result<(), SessionRefusal> {
        match (self.root.is_empty(), caller.root.is_empty()) {
            (false, true) => Err(SessionRefusal::TokenMissing),
            (true, false) => Err(SessionRefusal::TokenAdded),
            _ if self.tenant != caller.tenant => Err(SessionRefusal::OtherTenant),
            _ if self.root != caller.root => Err(SessionRefusal::OtherToken),
            _ => Ok(()),
        }
    }
}

/// The session-id keys (current first) and the longest a session may live.
#[derive(Clone)]
pub struct SessionSeal {
    keys: Vec<XChaCha20Poly1305>,
    lifetime_s: i64,
    random: SystemRandom,
}

impl std::fmt::Debug for SessionSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSeal")
            .field("keys", &self.keys.len())
            .field("lifetime_s", &self.lifetime_s)
            .finish_non_exhaustive()
    }
}

impl SessionSeal {
    /// Keys derived from every key of the master key ring (the current one seals).
    pub fn from_ring(ring: &KeyRing, lifetime: Duration) -> Result<Self, SealError> {
        let keys = ring
            .keys()
            .map(|k| Ok(cipher(&k.derive_key(KEY_PURPOSE)?)))
            .collect::<Result<Vec<_>, SealError>>()?;
        Ok(Self::with_keys(keys, lifetime))
    }

    /// A random key for this process alone: its ids open on no other process (embedded
    /// use and tests; the gateway derives its keys from the master key).
    pub fn random(lifetime: Duration) -> Result<Self, SealError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| SealError::Random)?;
        Ok(Self::with_keys(vec![cipher(&key)], lifetime))
    }

    fn with_keys(keys: Vec<XChaCha20Poly1305>, lifetime: Duration) -> Self {
        Self {
            keys,
            lifetime_s: i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
            random: SystemRandom::new(),
        }
    }

    /// The id a client gets for the upstream session `upstream`, owned by `owner`, valid
    /// until the configured lifetime from `now` or the token's expiry, whichever is first.
    pub fn seal(
        &self,
        upstream: &str,
        owner: Owner<'_>,
        token_expires_at: Option<i64>,
        now: i64,
    ) -> Result<String, SealError> {
        let bytes = upstream.as_bytes();
        if bytes.is_empty()
            || bytes.len() > MAX_UPSTREAM_ID
            || !bytes.iter().all(|b| (0x21..=0x7e).contains(b))
        {
            return Err(SealError::UpstreamId);
        }
        let (tenant, root) = (owner.tenant.as_bytes(), owner.root.as_bytes());
        let (Ok(tenant_len), Ok(root_len)) = (u8::try_from(tenant.len()), u8::try_from(root.len()))
        else {
            return Err(SealError::Binding);
        };
        let expires_at = now
            .saturating_add(self.lifetime_s)
            .min(token_expires_at.unwrap_or(i64::MAX))
            .max(0);
        let mut plain =
            Vec::with_capacity(FIXED_PLAINTEXT + tenant.len() + root.len() + bytes.len());
        plain.extend_from_slice(&expires_at.to_be_bytes());
        plain.push(tenant_len);
        plain.extend_from_slice(tenant);
        plain.push(root_len);
        plain.extend_from_slice(root);
        plain.extend_from_slice(bytes);
        let mut nonce = [0u8; NONCE];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let key = self.keys.first().ok_or(SealError::Cipher)?;
        let sealed = key
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: &plain,
                    aad: &[VERSION],
                },
            )
            .map_err(|_| SealError::Cipher)?;
        let mut wire = Vec::with_capacity(1 + NONCE + sealed.len());
        wire.push(VERSION);
        wire.extend_from_slice(&nonce);
        wire.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(wire))
    }

    /// Opens a client's `Mcp-Session-Id` at `now`: the upstream's id and the owner, or why
    /// not. Whether the owner is the caller is [`Opened::belongs_to`]'s question.
    pub fn open(&self, sealed: &[u8], now: i64) -> Result<Opened, SessionRefusal> {
        if sealed.len() > MAX_SEALED {
            return Err(SessionRefusal::NotIssued);
        }
        let wire = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SessionRefusal::NotIssued)?;
        if wire.len() < 1 + NONCE + FIXED_PLAINTEXT + 1 + TAG || wire[0] != VERSION {
            return Err(SessionRefusal::NotIssued);
        }
        let (nonce, body) = wire[1..].split_at(NONCE);
        let nonce: &[u8; NONCE] = nonce.try_into().map_err(|_| SessionRefusal::NotIssued)?;
        let plain = self
            .keys
            .iter()
            .find_map(|k| {
                k.decrypt(
                    nonce.into(),
                    Payload {
                        msg: body,
                        aad: &[VERSION],
                    },
                )
                .ok()
            })
            .ok_or(SessionRefusal::Forged)?;
        // Authentic, so written by `seal`: a layout error here is a format change, refused
        // all the same.
        let opened = parse_plaintext(&plain).ok_or(SessionRefusal::NotIssued)?;
        if now >= opened.expires_at {
            return Err(SessionRefusal::Expired);
        }
        Ok(opened)
    }
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.into())
}

/// The plaintext `seal` wrote.
fn parse_plaintext(plain: &[u8]) -> Option<Opened> {
    let (expires, rest) = plain.split_first_chunk::<8>()?;
    let (tenant, rest) = length_prefixed(rest)?;
    let (root, upstream) = length_prefixed(rest)?;
    Some(Opened {
        upstream: String::from_utf8(upstream.to_vec()).ok()?,
        tenant: String::from_utf8(tenant.to_vec()).ok()?,
        root: String::from_utf8(root.to_vec()).ok()?,
        expires_at: i64::from_be_bytes(*expires),
    })
}

fn length_prefixed(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = b.split_first()?;
    let len = usize::from(*len);
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests;
