//! `decision` and `check` as a chain recorded them. Events this build writes carry a value of
//! [`Decision`] or [`Check`]; a row read back from an older or foreign chain may carry text
//! this build never writes, and the check of an event that no stage decided is empty. Both
//! are kept as stored, so the row re-hashes to the bytes it was hashed with.

use std::fmt;

use super::{Check, Decision};

/// A closed set of wire names ([`Decision`], [`Check`]).
pub trait WireName: Copy + Eq + 'static {
    /// Every value, to map stored text back to one.
    const ALL: &'static [Self];

    /// The text written for this value.
    fn wire_name(self) -> &'static str;
}

impl WireName for Decision {
    const ALL: &'static [Self] = &[Self::Allow, Self::Block, Self::Escalate];

    fn wire_name(self) -> &'static str {
        self.as_str()
    }
}

impl WireName for Check {
    const ALL: &'static [Self] = &[
        Self::Capability,
        Self::Intent,
        Self::Policy,
        Self::Budget,
        Self::Upstream,
    ];

    fn wire_name(self) -> &'static str {
        self.as_str()
    }
}

/// A value of `T` as recorded: one this build knows, or the stored text otherwise.
///
/// Equality and hashing go by the text, so `Known(Block)` equals a stored `"block"` however
/// it was built. The default is the empty text (an event no stage decided).
#[derive(Debug, Clone)]
pub enum Recorded<T> {
    /// A value this build writes.
    Known(T),
    /// Text this build does not write (an older or foreign chain), or "".
    Other(String),
}

impl<T: WireName> Recorded<T> {
    /// The value for stored `text`: `Known` when it is the wire name of one.
    pub fn parse(text: &str) -> Self {
        match T::ALL.iter().find(|v| v.wire_name() == text) {
            Some(v) => Self::Known(*v),
            None => Self::Other(text.to_owned()),
        }
    }

    /// [`Recorded::parse`] keeping the allocation of text it does not know.
    pub fn from_text(text: String) -> Self {
        match T::ALL.iter().find(|v| v.wire_name() == text) {
            Some(v) => Self::Known(*v),
            None => Self::Other(text),
        }
    }

    /// The recorded text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(v) => v.wire_name(),
            Self::Other(text) => text,
        }
    }

    /// The value, when it is one this build knows.
    pub fn known(&self) -> Option<T> {
        match self {
            Self::Known(v) => Some(*v),
            Self::Other(_) => None,
        }
    }

    /// Whether nothing was recorded (the check of an event no stage decided).
    pub fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }
}

impl<T> Default for Recorded<T> {
    fn default() -> Self {
        Self::Other(String::new())
    }
}

impl<T: WireName> From<T> for Recorded<T> {
    fn from(v: T) -> Self {
        Self::Known(v)
    }
}

impl<T: WireName> From<&str> for Recorded<T> {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

impl<T: WireName> From<String> for Recorded<T> {
    fn from(text: String) -> Self {
        Self::from_text(text)
    }
}

impl<T: WireName> PartialEq for Recorded<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<T: WireName> Eq for Recorded<T> {}

impl<T: WireName> std::hash::Hash for Recorded<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl<T: WireName> PartialEq<str> for Recorded<T> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<T: WireName> PartialEq<&str> for Recorded<T> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<Decision> for Recorded<Decision> {
    fn eq(&self, other: &Decision) -> bool {
        self.known() == Some(*other)
    }
}

impl PartialEq<Check> for Recorded<Check> {
    fn eq(&self, other: &Check) -> bool {
        self.known() == Some(*other)
    }
}

impl<T: WireName> fmt::Display for Recorded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As its text (the JSON of webhooks, dry runs and error bodies).
impl<T: WireName> serde::Serialize for Recorded<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de, T: WireName> serde::Deserialize<'de> for Recorded<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(deserializer).map(Self::from_text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_text_parses_and_unknown_text_is_kept() {
        let block = Recorded::<Decision>::parse("block");
        assert_eq!(block.known(), Some(Decision::Block));
        assert_eq!(block, Decision::Block);
        assert_eq!(block, "block");
        assert_eq!(block, Recorded::Other("block".into()));
        let deny = Recorded::<Decision>::from_text("deny".into());
        assert_eq!((deny.known(), deny.as_str()), (None, "deny"));
        let none = Recorded::<Check>::from("");
        assert!(none.is_empty() && none == Recorded::default() && none.known().is_none());
        assert_eq!(Recorded::from(Check::Budget).to_string(), "budget");
        let json = serde_json::to_string(&Recorded::from(Check::Intent)).unwrap();
        assert_eq!(json, "\"intent\"");
        let back: Recorded<Check> = serde_json::from_str("\"legacy\"").unwrap();
        assert_eq!(back.as_str(), "legacy");
    }
}
