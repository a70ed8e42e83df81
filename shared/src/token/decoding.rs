//! Strict decoding of the token JSON: exact, unescaped, known keys, each at most once, and
//! at most [`MAX_CAVEATS`] caveats read (module docs of [`crate::token`] say why).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Caveat, Claims, MAX_CAVEATS, Token, TokenError, VERSION_3, VERSION_4};

pub(super) const TOO_MANY_CAVEATS: &str = "too many caveats";

#[derive(Default)]
pub(super) struct RawToken {
    v: Option<i64>,
    jti: Option<String>,
    root_jti: Option<String>,
    iss: Option<String>,
    tenant: Option<String>,
    zone: Option<String>,
    sub: Option<String>,
    iat: Option<i64>,
    nbf: Option<i64>,
    cav: Option<Vec<Caveat>>,
    sig: Option<String>,
}

impl RawToken {
    pub(super) fn into_token(self) -> Result<Token, TokenError> {
        let version = self.v.unwrap_or(0);
        if version != VERSION_3 && version != VERSION_4 {
            return Err(TokenError::UnsupportedVersion(version));
        }
        let required = |v: Option<String>, name: &'static str| match v {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(TokenError::Missing(name)),
        };
        let zone = match (version, self.zone) {
            (VERSION_4, zone) => Some(required(zone, "zone")?),
            (_, Some(_)) => return Err(TokenError::UnexpectedZone),
            (_, None) => None,
        };
        let claims = Claims {
            version,
            jti: required(self.jti, "jti")?,
            root_jti: required(self.root_jti, "root_jti")?,
            iss: self.iss.unwrap_or_default(),
            tenant: required(self.tenant, "tenant")?,
            zone,
            sub: required(self.sub, "sub")?,
            iat: self
                .iat
                .filter(|&t| t != 0)
                .ok_or(TokenError::Missing("iat"))?,
            nbf: match self.nbf {
                Some(0) => return Err(TokenError::Json("nbf 0 must be omitted".into())),
                nbf => nbf.unwrap_or(0),
            },
        };
        let sig_text = self.sig.ok_or(TokenError::Missing("sig"))?;
        let sig_bytes = URL_SAFE_NO_PAD
            .decode(sig_text)
            .map_err(|_| TokenError::BadSignatureEncoding)?;
        let sig: [u8; 32] = sig_bytes
            .try_into()
            .map_err(|_| TokenError::BadSignatureEncoding)?;
        if self.cav.as_ref().is_some_and(Vec::is_empty) {
            return Err(TokenError::Json("an empty cav list must be omitted".into()));
        }
        Ok(Token {
            claims,
            caveats: self.cav.unwrap_or_default(),
            sig,
        })
    }
}

/// Stores the value of a key, refusing a second occurrence.
fn set_once<'de, A: MapAccess<'de>, T: de::Deserialize<'de>>(
    slot: &mut Option<T>,
    seen: &mut bool,
    key: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if std::mem::replace(seen, true) {
        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
    }
    // Go treats null as absent; we refuse it, so absent has one spelling.
    *slot = Some(map.next_value::<T>()?);
    Ok(())
}

/// An object key exactly as written: a key with escapes (`"j\u0074i"`) is refused, so each
/// field has one spelling.
struct Key<'de>(&'de str);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key without escapes")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Err(E::custom(format_args!("escaped key {v:?}")))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> de::Deserialize<'de> for RawToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawToken;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawToken, A::Error> {
                let mut t = RawToken::default();
                let mut seen = [false; 11];
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.0 {
                        "v" => set_once(&mut t.v, &mut seen[0], "v", &mut map)?,
                        "jti" => set_once(&mut t.jti, &mut seen[1], "jti", &mut map)?,
                        "root_jti" => {
                            set_once(&mut t.root_jti, &mut seen[2], "root_jti", &mut map)?
                        }
                        "iss" => set_once(&mut t.iss, &mut seen[3], "iss", &mut map)?,
                        "tenant" => set_once(&mut t.tenant, &mut seen[4], "tenant", &mut map)?,
                        "zone" => set_once(&mut t.zone, &mut seen[5], "zone", &mut map)?,
                        "sub" => set_once(&mut t.sub, &mut seen[6], "sub", &mut map)?,
                        "iat" => set_once(&mut t.iat, &mut seen[7], "iat", &mut map)?,
                        "nbf" => set_once(&mut t.nbf, &mut seen[8], "nbf", &mut map)?,
                        "cav" => {
                            let mut list: Option<CaveatList> = None;
                            set_once(&mut list, &mut seen[9], "cav", &mut map)?;
                            t.cav = list.map(|l| l.0);
                        }
                        "sig" => set_once(&mut t.sig, &mut seen[10], "sig", &mut map)?,
                        other => {
                            return Err(de::Error::custom(format_args!("unknown field `{other}`")));
                        }
                    }
                }
                Ok(t)
            }
        }
        d.deserialize_map(V)
    }
}

/// A caveat list that stops reading at [`MAX_CAVEATS`] + 1 entries.
struct CaveatList(Vec<Caveat>);

impl<'de> de::Deserialize<'de> for CaveatList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CaveatList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of caveats")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CaveatList, A::Error> {
                let mut out = Vec::new();
                while let Some(c) = seq.next_element::<Caveat>()? {
                    if out.len() == MAX_CAVEATS {
                        return Err(de::Error::custom(TOO_MANY_CAVEATS));
                    }
                    out.push(c);
                }
                Ok(CaveatList(out))
            }
        }
        d.deserialize_seq(V)
    }
}

impl<'de> de::Deserialize<'de> for Caveat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Caveat;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a caveat object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Caveat, A::Error> {
                let (mut t, mut tools, mut agent, mut exp, mut max_calls, mut step_up_at) =
                    (None, None, None, None, None, None);
                let mut seen = [false; 6];
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.0 {
                        "t" => set_once(&mut t, &mut seen[0], "t", &mut map)?,
                        "tools" => set_once(&mut tools, &mut seen[1], "tools", &mut map)?,
                        "agent" => set_once(&mut agent, &mut seen[2], "agent", &mut map)?,
                        "exp" => set_once(&mut exp, &mut seen[3], "exp", &mut map)?,
                        "max_calls" => {
                            set_once(&mut max_calls, &mut seen[4], "max_calls", &mut map)?
                        }
                        "step_up_at" => {
                            set_once(&mut step_up_at, &mut seen[5], "step_up_at", &mut map)?
                        }
                        other => {
                            let _: IgnoredAny = map.next_value()?;
                            return Err(de::Error::custom(format_args!(
                                "unknown caveat field `{other}`"
                            )));
                        }
                    }
                }
                Ok(Caveat {
                    kind: t.ok_or_else(|| de::Error::custom("caveat is missing `t`"))?,
                    tools: tools.unwrap_or_default(),
                    agent: agent.unwrap_or_default(),
                    exp: exp.unwrap_or_default(),
                    max_calls: max_calls.unwrap_or_default(),
                    step_up_at: step_up_at.unwrap_or_default(),
                })
            }
        }
        d.deserialize_map(V)
    }
}
