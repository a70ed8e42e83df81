//! Byte-exact reproduction of Go's `encoding/json` output for the shapes we sign and hash.
//!
//! Token signatures (COMPATIBILITY.md §4.2) and audit hashes (COMPATIBILITY.md §8.2) are computed over the bytes
//! Go's `json.Marshal` writes for a struct. Any difference — one escaped character, one
//! omitted field — breaks verification of tokens and chains produced by the Go gateway, so
//! this module writes JSON by hand instead of going through serde.
//!
//! Escaping rules of Go ≥ 1.22 with HTML escaping on (the default of `json.Marshal`):
//! - `"` and `\` are backslash-escaped; `\n`, `\r`, `\t`, `\b`, `\f` use their short forms;
//!   every other byte below 0x20 becomes `\u00XX` (lowercase hex);
//! - `<`, `>`, `&` become `\u003c`, `\u003e`, `\u0026`;
//! - U+2028 and U+2029 become `\u2028`, `\u2029`;
//! - every byte of invalid UTF-8 becomes the six characters `\ufffd`;
//! - everything else, including DEL and all other non-ASCII, is copied raw.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a Go-encoded JSON string literal, quotes included.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    write_bytes_as_str(out, s.as_bytes());
}

/// Appends arbitrary bytes as a Go-encoded JSON string, replacing invalid UTF-8 the way Go does.
pub fn write_bytes_as_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            let escape: Option<&[u8]> = match b {
                b'"' => Some(b"\\\""),
                b'\\' => Some(b"\\\\"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                b'\t' => Some(b"\\t"),
                0x08 => Some(b"\\b"),
                0x0c => Some(b"\\f"),
                b'<' | b'>' | b'&' | 0x00..=0x1f => None,
                _ => {
                    i += 1;
                    continue;
                }
            };
            out.extend_from_slice(&bytes[start..i]);
            match escape {
                Some(e) => out.extend_from_slice(e),
                None => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
            }
            i += 1;
            start = i;
            continue;
        }
        match utf8_char_len(&bytes[i..]) {
            Some(3)
                if bytes[i] == 0xe2
                    && bytes[i + 1] == 0x80
                    && matches!(bytes[i + 2], 0xa8 | 0xa9) =>
            {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
            }
            Some(len) => i += len,
            None => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\ufffd");
                i += 1;
                start = i;
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Length of the valid UTF-8 sequence at the start of `b`, or `None` when Go's decoder would
/// report `RuneError` with width 1 (bad lead byte, truncated, overlong or surrogate encoding).
fn utf8_char_len(b: &[u8]) -> Option<usize> {
    let len = match b[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    if b.len() < len {
        return None;
    }
    // Second-byte ranges exclude overlong forms, surrogates and code points above U+10FFFF.
    let (lo, hi) = match b[0] {
        0xe0 => (0xa0, 0xbf),
        0xed => (0x80, 0x9f),
        0xf0 => (0x90, 0xbf),
        0xf4 => (0x80, 0x8f),
        _ => (0x80, 0xbf),
    };
    if !(lo..=hi).contains(&b[1]) {
        return None;
    }
    if b[2..len].iter().all(|c| (0x80..=0xbf).contains(c)) {
        Some(len)
    } else {
        None
    }
}

/// Appends a decimal integer as Go writes any integer type.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(v.to_string().as_bytes());
}

/// A writer for one JSON object that tracks commas, mirroring a Go struct with `omitempty` tags.
#[derive(Debug)]
pub struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Opens an object on `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        // Field names are static ASCII identifiers: no escaping needed.
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A string field without `omitempty`.
    pub fn str(&mut self, key: &str, v: &str) {
        let out = self.key(key);
        write_str(out, v);
    }

    /// A string field with `omitempty`.
    pub fn str_omitempty(&mut self, key: &str, v: &str) {
        if !v.is_empty() {
            self.str(key, v);
        }
    }

    /// An integer field without `omitempty`.
    pub fn int(&mut self, key: &str, v: i64) {
        let out = self.key(key);
        write_int(out, v);
    }

    /// An integer field with `omitempty` (zero is omitted).
    pub fn int_omitempty(&mut self, key: &str, v: i64) {
        if v != 0 {
            self.int(key, v);
        }
    }

    /// A boolean field with `omitempty` (false is omitted).
    pub fn bool_omitempty(&mut self, key: &str, v: bool) {
        if v {
            let out = self.key(key);
            out.extend_from_slice(b"true");
        }
    }

    /// A `[]string` field with `omitempty` (nil and empty are omitted).
    pub fn str_list_omitempty<S: AsRef<str>>(&mut self, key: &str, v: &[S]) {
        if v.is_empty() {
            return;
        }
        let out = self.key(key);
        out.push(b'[');
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, s.as_ref());
        }
        out.push(b']');
    }

    /// A field whose value the caller writes itself (already-encoded JSON).
    pub fn raw(&mut self, key: &str, encoded: &[u8]) {
        let out = self.key(key);
        out.extend_from_slice(encoded);
    }

    /// Closes the object.
    pub fn finish(self) {
        self.out.push(b'}');
    }
}

/// Writes a `serde_json::Value` as Go's `json.Marshal` writes the `any` it decoded from the same
/// JSON: object keys sorted, Go string escaping, numbers as they were written.
///
/// Go re-formats numbers decoded into `float64`; we keep the original text, which agrees for
/// every integer below 2^53 and every number the canonical forms hash (none: argument values
/// are outside the audit hash, COMPATIBILITY.md §8.2).
pub fn write_value(out: &mut Vec<u8>, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

/// Writes a JSON object as Go writes a `map[string]any`: keys sorted, values as [`write_value`].
pub fn write_object(out: &mut Vec<u8>, map: &serde_json::Map<String, serde_json::Value>) {
    let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        write_bytes_as_str(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(enc(b"a<b>&c"), r#""a\u003cb\u003e\u0026c""#);
        assert_eq!(enc(b"q\"b\\"), r#""q\"b\\""#);
        assert_eq!(enc(b"\n\r\t\x08\x0c"), r#""\n\r\t\b\f""#);
        assert_eq!(enc(b"\x00\x1f\x7f"), "\"\\u0000\\u001f\x7f\"");
        assert_eq!(enc("é日本🦀".as_bytes()), "\"é日本🦀\"");
        assert_eq!(enc("x\u{2028}y\u{2029}".as_bytes()), r#""x\u2028y\u2029""#);
    }

    #[test]
    fn invalid_utf8_becomes_escaped_replacement_per_byte() {
        assert_eq!(enc(b"a\xffb"), r#""a\ufffdb""#);
        // A truncated 3-byte sequence: each byte is replaced on its own, as Go does.
        assert_eq!(enc(b"\xe6\x97"), r#""\ufffd\ufffd""#);
        // An encoded surrogate (ED A0 80) is invalid in Go too.
        assert_eq!(enc(b"\xed\xa0\x80"), r#""\ufffd\ufffd\ufffd""#);
        // Overlong encoding of '/'.
        assert_eq!(enc(b"\xc0\xaf"), r#""\ufffd\ufffd""#);
    }

    #[test]
    fn object_writer_omits_empty_fields() {
        let mut out = Vec::new();
        let mut w = ObjectWriter::new(&mut out);
        w.str("t", "tool_allow");
        w.str_list_omitempty::<&str>("tools", &[]);
        w.str_omitempty("agent", "");
        w.int_omitempty("exp", 0);
        w.int("max", -3);
        w.bool_omitempty("b", false);
        w.finish();
        assert_eq!(out, br#"{"t":"tool_allow","max":-3}"#);
    }

    #[test]
    fn values_are_written_with_sorted_keys() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b":[1,"<"],"a":{"z":null,"y":true}}"#).unwrap();
        let mut out = Vec::new();
        write_value(&mut out, &v);
        assert_eq!(out, br#"{"a":{"y":true,"z":null},"b":[1,"\u003c"]}"#);
    }
}
