//! Master keys for capability tokens and the ring that lets them rotate.
//!
//! The old gateway had exactly one key, so rotating it invalidated every token at once, and
//! when none was configured it generated one and logged it in clear (COMPATIBILITY.md §13.11). Here a
//! [`KeyRing`] holds the current key (used to mint) and any number of previous keys (still
//! accepted when verifying), and no key material is ever printed: `Debug` shows fingerprints.

use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hkdf::Hkdf;
use ring::{digest, hmac, rand::SecureRandom};
use sha2::Sha256;

/// Shortest master key accepted, in bytes (COMPATIBILITY.md §4.1).
pub const MIN_KEY_BYTES: usize = 16;
/// Length of generated keys, in bytes.
pub const GENERATED_KEY_BYTES: usize = 32;

/// Why a master key could not be used. The messages never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The value is not base64 in any of the four accepted flavours.
    #[error("master key is not base64 (accepted: raw-url, url, std, raw-std)")]
    NotBase64,
    /// The key decodes, but to fewer than [`MIN_KEY_BYTES`] bytes.
    #[error("master key decodes to {len} bytes; at least {min} are required")]
    TooShort {
        /// Decoded length.
        len: usize,
        /// Required minimum.
        min: usize,
    },
    /// An entry of the previous-keys list is empty (e.g. a doubled comma).
    #[error("previous master key #{index} is empty")]
    EmptyPrevious {
        /// 1-based position in the comma-separated list.
        index: usize,
    },
    /// An entry of the previous-keys list is invalid.
    #[error("previous master key #{index}: {source}")]
    Previous {
        /// 1-based position in the comma-separated list.
        index: usize,
        /// What is wrong with it.
        source: Box<KeyError>,
    },
    /// The system random generator failed.
    #[error("system random number generator failed")]
    Random,
    /// HKDF refused the requested output length (never for [`DERIVED_KEY_BYTES`]).
    #[error("key derivation failed")]
    Derivation,
}

/// Length of the keys [`MasterKey::derive_key`] derives, in bytes.
pub const DERIVED_KEY_BYTES: usize = 32;

/// HKDF salt of every key derived from a master key: fixed, so every replica holding the
/// master key derives the same keys; each use is told apart by its `info` label.
const DERIVATION_SALT: &[u8] = b"intentgate master key derivation v1";

/// One HMAC-SHA256 master key, pre-keyed so each use skips the key schedule, with its
/// HKDF-SHA256 pseudorandom key for the keys other features derive from it (the raw bytes
/// are not kept).
#[derive(Clone)]
pub struct MasterKey {
    key: hmac::Key,
    derivation: Hkdf<Sha256>,
    fingerprint: [u8; 8],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

fn lenient(padding: DecodePaddingMode) -> GeneralPurposeConfig {
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(padding)
}

impl MasterKey {
    /// Parses a base64 master key, trying raw-url, url, std and raw-std in that order as the
    /// Go gateway does, and requires at least [`MIN_KEY_BYTES`] decoded bytes.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = decode_base64_any(text).ok_or(KeyError::NotBase64)?;
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                len: bytes.len(),
                min: MIN_KEY_BYTES,
            });
        }
        Ok(Self::from_bytes(&bytes))
    }

    /// Builds a key from raw bytes (no length check: callers parse or generate).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let hash = digest::digest(&digest::SHA256, bytes);
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&hash.as_ref()[..8]);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            derivation: Hkdf::new(Some(DERIVATION_SALT), bytes),
            fingerprint,
        }
    }

    /// A key for one purpose, derived with HKDF-SHA256 (RFC 5869) from this key: `info`
    /// names the purpose, so keys for different purposes are independent, and a feature's
    /// keys rotate with the master key. Callers derive once at startup, never per request.
    pub fn derive_key(&self, info: &[u8]) -> Result<[u8; DERIVED_KEY_BYTES], KeyError> {
        let mut out = [0u8; DERIVED_KEY_BYTES];
        self.derivation
            .expand(info, &mut out)
            .map_err(|_| KeyError::Derivation)?;
        Ok(out)
    }

    /// Generates a fresh random key and returns it with its raw-url base64 text, which the
    /// caller may show to the operator once (e.g. `intentgate token gen-key`) but never logs.
    pub fn generate() -> Result<(Self, String), KeyError> {
        let mut bytes = [0u8; GENERATED_KEY_BYTES];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyError::Random)?;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Ok((Self::from_bytes(&bytes), text))
    }

    /// The pre-keyed HMAC key.
    pub fn hmac_key(&self) -> &hmac::Key {
        &self.key
    }

    /// First 8 bytes of SHA-256 of the key, hex: safe to log, identifies which key is which.
    pub fn fingerprint(&self) -> String {
        self.fingerprint
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Decodes key material in any of the four base64 flavours the Go gateway accepts (url or
/// standard alphabet, padded or not; trailing bits are tolerated as Go does for keys).
pub fn decode_base64_any(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let flavours = [
        GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            lenient(DecodePaddingMode::RequireNone),
        ),
        GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            lenient(DecodePaddingMode::RequireCanonical),
        ),
        GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            lenient(DecodePaddingMode::RequireCanonical),
        ),
        GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            lenient(DecodePaddingMode::RequireNone),
        ),
    ];
    flavours.iter().find_map(|engine| engine.decode(text).ok())
}

/// The current key (mints and verifies) and previous keys (verify only).
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: MasterKey,
    previous: Vec<MasterKey>,
    ephemeral: bool,
}

impl KeyRing {
    /// A ring with a single key.
    pub fn single(current: MasterKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
            ephemeral: false,
        }
    }

    /// Builds the ring from `INTENTGATE_MASTER_KEY` and `INTENTGATE_MASTER_KEY_PREVIOUS`
    /// (comma-separated). Without a current key a random ephemeral one is generated; it is
    /// never logged, and tokens minted with it die with the process.
    pub fn from_config(current: Option<&str>, previous: Option<&str>) -> Result<Self, KeyError> {
        let mut ring = match current.map(str::trim).filter(|s| !s.is_empty()) {
            Some(text) => Self::single(MasterKey::parse(text)?),
            None => Self {
                ephemeral: true,
                ..Self::single(MasterKey::generate()?.0)
            },
        };
        if let Some(list) = previous.map(str::trim).filter(|s| !s.is_empty()) {
            for (i, part) in list.split(',').enumerate() {
                let index = i + 1;
                let part = part.trim();
                if part.is_empty() {
                    return Err(KeyError::EmptyPrevious { index });
                }
                let key = MasterKey::parse(part).map_err(|e| KeyError::Previous {
                    index,
                    source: Box::new(e),
                })?;
                ring.previous.push(key);
            }
        }
        Ok(ring)
    }

    /// Adds a verify-only key.
    pub fn with_previous(mut self, key: MasterKey) -> Self {
        self.previous.push(key);
        self
    }

    /// The key new tokens are signed with.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// Every key a token may be signed with, current first.
    pub fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }

    /// True when no key was configured and a random one was generated.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_BYTES: [u8; 20] = [0xfb; 20];

    #[test]
    fn parses_all_four_flavours() {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let want = MasterKey::from_bytes(&KEY_BYTES).fingerprint();
        for text in [
            URL_SAFE_NO_PAD.encode(KEY_BYTES),
            URL_SAFE.encode(KEY_BYTES),
            STANDARD.encode(KEY_BYTES),
            STANDARD_NO_PAD.encode(KEY_BYTES),
        ] {
            assert_eq!(
                MasterKey::parse(&text).unwrap().fingerprint(),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_short_and_garbage_keys() {
        assert_eq!(
            MasterKey::parse("c2hvcnQ").unwrap_err(),
            KeyError::TooShort { len: 5, min: 16 }
        );
        assert_eq!(
            MasterKey::parse("not base64 at all!").unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(
            MasterKey::parse("").unwrap_err(),
            KeyError::TooShort { len: 0, min: 16 }
        );
    }

    #[test]
    fn previous_keys_are_parsed_and_errors_name_their_position() {
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 32]);
        let ring = KeyRing::from_config(Some(&k), Some(&format!("{k}, {k}"))).unwrap();
        assert_eq!(ring.keys().count(), 3);
        assert!(!ring.is_ephemeral());
        let err = KeyRing::from_config(Some(&k), Some(&format!("{k},,{k}"))).unwrap_err();
        assert_eq!(err, KeyError::EmptyPrevious { index: 2 });
        let err = KeyRing::from_config(Some(&k), Some("abc")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "previous master key #1: master key decodes to 2 bytes; at least 16 are required"
        );
    }

    #[test]
    fn derived_keys_are_hkdf_sha256_per_purpose_and_per_master_key() {
        // RFC 5869 computed independently: HKDF-SHA256(salt, IKM = KEY_BYTES, info).
        let key = MasterKey::from_bytes(&KEY_BYTES);
        let a = key.derive_key(b"purpose a").unwrap();
        let prk = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, DERIVATION_SALT),
            &KEY_BYTES,
        );
        let okm = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()),
            b"purpose a\x01",
        );
        assert_eq!(&a[..], okm.as_ref());
        assert_eq!(key.clone().derive_key(b"purpose a").unwrap(), a);
        assert_ne!(key.derive_key(b"purpose b").unwrap(), a);
        assert_ne!(
            MasterKey::from_bytes(&[0xfc; 20])
                .derive_key(b"purpose a")
                .unwrap(),
            a
        );
        assert!(!format!("{key:?}").contains("derivation"));
    }

    #[test]
    fn missing_key_is_ephemeral_and_debug_never_shows_key_bytes() {
        let ring = KeyRing::from_config(None, None).unwrap();
        assert!(ring.is_ephemeral());
        let shown = format!("{ring:?}");
        assert!(shown.contains("fingerprint"));
        let (key, text) = MasterKey::generate().unwrap();
        assert!(!format!("{key:?}").contains(&text));
        assert_eq!(
            MasterKey::parse(&text).unwrap().fingerprint(),
            key.fingerprint()
        );
    }
}
