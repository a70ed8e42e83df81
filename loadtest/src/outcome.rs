//! What an answer means. A gateway refuses with a JSON-RPC error inside an HTTP 200, so
//! counting 200s would count refusals as successes: every answer is classified by its
//! JSON-RPC outcome. The scan reads only the top-level keys (and `code` inside `error`),
//! without building a document: the client must stay much cheaper than what it measures.

use std::fmt;

/// The outcome of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// A JSON-RPC `result`.
    Result,
    /// A JSON-RPC `error` with this code.
    Error(i64),
    /// An HTTP status other than 200/202 (the body is not looked at).
    Http(u16),
    /// A 200 whose body is not a JSON-RPC response.
    Invalid,
    /// HTTP 202 with no body (an accepted notification).
    Accepted,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Result => f.write_str("result"),
            Self::Error(code) => write!(f, "error {code}"),
            Self::Http(status) => write!(f, "http {status}"),
            Self::Invalid => f.write_str("invalid body"),
            Self::Accepted => f.write_str("accepted"),
        }
    }
}

/// Classifies one answer.
pub fn classify(status: u16, body: &[u8]) -> Outcome {
    match status {
        200 => {}
        202 if body.is_empty() => return Outcome::Accepted,
        other => return Outcome::Http(other),
    }
    let mut scan = Scan { b: body, i: 0 };
    scan.top_level().unwrap_or(Outcome::Invalid)
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// A string's raw bytes (escapes left as they are: keys we look for have none).
    fn string(&mut self) -> Option<&[u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.b.get(self.i)? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return self.b.get(start..self.i - 1);
                }
                _ => self.i += 1,
            }
        }
    }

    /// Skips any value, nesting included.
    fn skip_value(&mut self) -> Option<()> {
        self.ws();
        match self.b.get(self.i)? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.b.get(self.i)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
                {
                    self.i += 1;
                }
                Some(())
            }
        }
    }

    /// Walks an object's members, calling `on` for each key; `on` consumes the value or
    /// returns `Some(None)` to have it skipped. Stops early when `on` yields an answer.
    fn members<T>(
        &mut self,
        mut on: impl FnMut(&mut Self, &[u8]) -> Option<Option<T>>,
    ) -> Option<Option<T>> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(None);
        }
        loop {
            let key = self.string()?.to_vec();
            self.eat(b':')?;
            let before = self.i;
            if let Some(found) = on(self, &key)? {
                return Some(Some(found));
            }
            if self.i == before {
                self.skip_value()?;
            }
            if self.eat(b',').is_none() {
                self.eat(b'}')?;
                return Some(None);
            }
        }
    }

    fn top_level(&mut self) -> Option<Outcome> {
        self.members(|s, key| match key {
            b"result" => Some(Some(Outcome::Result)),
            b"error" => {
                let code = s.members(|s, key| {
                    if key != b"code" {
                        return Some(None);
                    }
                    s.ws();
                    let start = s.i;
                    s.skip_value()?;
                    let text = std::str::from_utf8(s.b.get(start..s.i)?).ok()?;
                    Some(text.trim().parse::<i64>().ok())
                })?;
                Some(Some(code.map_or(Outcome::Invalid, Outcome::Error)))
            }
            _ => Some(None),
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_their_json_rpc_outcome() {
        let c = |s: &str| classify(200, s.as_bytes());
        assert_eq!(
            c(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"text":"\"error\":{"}]}}"#),
            Outcome::Result
        );
        assert_eq!(
            c(r#"{"jsonrpc":"2.0","id":"x","error":{"message":"no","code":-32012,"data":"p"}}"#),
            Outcome::Error(-32012)
        );
        assert_eq!(
            c("{ \"id\" : [1,{\"a\":\"}\"}], \"error\" : { \"code\" : -32010 } }"),
            Outcome::Error(-32010)
        );
        assert_eq!(c(r#"{"jsonrpc":"2.0","id":1}"#), Outcome::Invalid);
        assert_eq!(c(r#"{"error":{"message":"no code"}}"#), Outcome::Invalid);
        assert_eq!(c("not json"), Outcome::Invalid);
        assert_eq!(c(r#"{"result""#), Outcome::Invalid);
        assert_eq!(c(""), Outcome::Invalid);
        assert_eq!(classify(503, b"{\"result\":1}"), Outcome::Http(503));
        assert_eq!(classify(202, b""), Outcome::Accepted);
    }
}
