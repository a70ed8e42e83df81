//! What of a tool call's argument values reaches the audit store
//! (`INTENTGATE_AUDIT_PERSIST_ARG_VALUES`, COMPATIBILITY.md §8.6).

use std::str::FromStr;

use serde_json::{Map, Value};

/// Redaction mode for argument values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Redaction {
    /// No values are kept (default).
    #[default]
    Off,
    /// Numbers, booleans and null are kept; every string becomes null; containers recurse.
    Scalars,
    /// Values are kept verbatim.
    Raw,
}

/// An unrecognised mode name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown argument redaction mode {0:?} (accepted: off, scalars, raw)")]
pub struct UnknownRedaction(pub String);

impl FromStr for Redaction {
    type Err = UnknownRedaction;

    /// Accepts the Go gateway's spellings: `off`, `""`, `false`, `0`, `none`; `scalars`,
    /// `scalar`, `numbers`; `raw`, `all`, `values` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "off" | "false" | "0" | "none" => Ok(Self::Off),
            "scalars" | "scalar" | "numbers" => Ok(Self::Scalars),
            "raw" | "all" | "values" => Ok(Self::Raw),
            _ => Err(UnknownRedaction(s.to_owned())),
        }
    }
}

impl Redaction {
    /// The values to store for `args`, or `None` when nothing is kept (mode off, arguments
    /// absent or not an object, or an empty object — stored as SQL NULL).
    pub fn apply(self, args: Option<&Value>) -> Option<Map<String, Value>> {
        let Some(Value::Object(map)) = args else {
            return None;
        };
        let out = match self {
            Self::Off => return None,
            Self::Raw => map.clone(),
            Self::Scalars => map
                .iter()
                .map(|(k, v)| (k.clone(), scalars_only(v)))
                .collect(),
        };
        if out.is_empty() { None } else { Some(out) }
    }
}

fn scalars_only(v: &Value) -> Value {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => v.clone(),
        Value::String(_) => Value::Null,
        Value::Array(items) => Value::Array(items.iter().map(scalars_only).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), scalars_only(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_spelling_and_rejects_others() {
        for (s, want) in [
            ("", Redaction::Off),
            ("OFF", Redaction::Off),
            ("none", Redaction::Off),
            ("false", Redaction::Off),
            ("0", Redaction::Off),
            ("scalars", Redaction::Scalars),
            ("scalar", Redaction::Scalars),
            ("numbers", Redaction::Scalars),
            ("raw", Redaction::Raw),
            ("all", Redaction::Raw),
            ("values", Redaction::Raw),
        ] {
            assert_eq!(s.parse::<Redaction>().unwrap(), want, "{s}");
        }
        let err = "everything".parse::<Redaction>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown argument redaction mode "everything" (accepted: off, scalars, raw)"#
        );
    }

    #[test]
    fn scalars_mode_nulls_strings_recursively() {
        let args = json!({"amount": 12.5, "to": "NL91ABNA", "ok": true, "n": null,
                          "items": [1, "x", {"k": "v", "q": 2}]});
        let got = Redaction::Scalars.apply(Some(&args)).unwrap();
        assert_eq!(
            Value::Object(got),
            json!({"amount": 12.5, "to": null, "ok": true, "n": null, "items": [1, null, {"k": null, "q": 2}]})
        );
    }

    #[test]
    fn raw_keeps_everything_and_off_keeps_nothing() {
        let args = json!({"a": "secret"});
        assert_eq!(
            Value::Object(Redaction::Raw.apply(Some(&args)).unwrap()),
            args
        );
        assert_eq!(Redaction::Off.apply(Some(&args)), None);
        assert_eq!(Redaction::Raw.apply(Some(&json!({}))), None);
        assert_eq!(Redaction::Raw.apply(Some(&json!([1]))), None);
        assert_eq!(Redaction::Raw.apply(None), None);
    }
}
