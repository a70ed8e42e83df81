//! Server-sent events (the `text/event-stream` answers of MCP Streamable HTTP), sans-IO:
//! bytes in, complete events out, as the WHATWG event-stream rules frame them (lines end in
//! LF, CRLF or CR; a blank line ends an event; `data` lines join with LF; comments and
//! unknown fields are skipped).

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// `event:` (None: the default `message`).
    pub event: Option<String>,
    /// `id:`.
    pub id: Option<String>,
    /// `retry:` in milliseconds.
    pub retry: Option<u64>,
    /// The `data:` lines joined with LF.
    pub data: String,
}

/// An SSE stream that could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event grew past the limit.
    #[error("an upstream event exceeds {0} bytes")]
    TooLarge(usize),
    /// Not UTF-8.
    #[error("the upstream event stream is not UTF-8")]
    NotUtf8,
}

/// Incremental parser: feed bytes as they arrive, take the events they complete.
#[derive(Debug)]
pub struct Parser {
    pending: Vec<u8>,
    current: Event,
    has_data: bool,
    max_event: usize,
}

impl Parser {
    /// A parser refusing events larger than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            pending: Vec::new(),
            current: Event::default(),
            has_data: false,
            max_event,
        }
    }

    /// Consumes `bytes`; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, SseError> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n' || *b == b'\r') {
            // A CR at the very end may be the first half of CRLF: wait for the next byte.
            if self.pending[end] == b'\r' && end + 1 == self.pending.len() {
                break;
            }
            let skip = if self.pending[end] == b'\r' && self.pending.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.pending.drain(..end + skip).take(end).collect();
            let line = std::str::from_utf8(&line).map_err(|_| SseError::NotUtf8)?;
            if let Some(e) = self.line(line) {
                events.push(e);
            }
            // Checked per line, not only per push: one read may hold a whole oversized event.
            if self.current.data.len() > self.max_event {
                return Err(SseError::TooLarge(self.max_event));
            }
        }
        if self.pending.len() + self.current.data.len() > self.max_event {
            return Err(SseError::TooLarge(self.max_event));
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            if !self.has_data {
                self.current = Event {
                    id: self.current.id.take(),
                    ..Event::default()
                };
                return None;
            }
            self.has_data = false;
            return Some(std::mem::take(&mut self.current));
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.current.id = Some(value.to_owned()),
            "retry" => self.current.retry = value.parse().ok(),
            _ => {}
        }
        None
    }

    /// Whether bytes of an unfinished event are held (a stream that ends here was cut).
    pub fn mid_event(&self) -> bool {
        self.has_data || !self.pending.is_empty()
    }
}

/// Writes `e` in the event-stream format.
pub fn write_event(out: &mut Vec<u8>, e: &Event) {
    if let Some(id) = &e.id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    if let Some(event) = &e.event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.push(b'\n');
    }
    if let Some(retry) = e.retry {
        out.extend_from_slice(format!("retry: {retry}\n").as_bytes());
    }
    for line in e.data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_frame_across_any_split_and_line_ending() {
        let stream = b": keep-alive\r\nid: 1\r\nevent: message\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nretry: 500\ndata: two\n\nid\rdata: three\r\r\n";
        for split in 0..stream.len() {
            let mut p = Parser::new(1 << 20);
            let mut got = p.push(&stream[..split]).unwrap();
            got.extend(p.push(&stream[split..]).unwrap());
            assert_eq!(got.len(), 3, "split at {split}");
            assert_eq!(got[0].data, "{\"a\":\n1}");
            assert_eq!(got[0].id.as_deref(), Some("1"));
            assert_eq!(got[0].event.as_deref(), Some("message"));
            assert_eq!(got[1].data, "two");
            assert_eq!(got[1].retry, Some(500));
            assert_eq!(got[2].data, "three");
            assert_eq!(got[2].id.as_deref(), Some(""));
            assert!(!p.mid_event());
        }
    }

    #[test]
    fn cut_oversized_and_invalid_streams_are_reported() {
        let mut p = Parser::new(1 << 20);
        assert!(p.push(b"data: half").unwrap().is_empty());
        assert!(p.mid_event(), "a stream ending here was cut mid-event");
        let mut p = Parser::new(16);
        assert_eq!(
            p.push(b"data: 0123456789012345678901234\n"),
            Err(SseError::TooLarge(16))
        );
        // A whole oversized event in one read is refused too, not passed because it ended.
        assert_eq!(
            Parser::new(16).push(b"data: 0123456789012345678901234\n\n"),
            Err(SseError::TooLarge(16))
        );
        assert_eq!(
            Parser::new(64).push(b"data: \xff\n\n"),
            Err(SseError::NotUtf8)
        );
    }

    #[test]
    fn written_events_parse_back() {
        let e = Event {
            event: Some("message".into()),
            id: Some("7".into()),
            retry: Some(100),
            data: "line1\nline2".into(),
        };
        let mut out = Vec::new();
        write_event(&mut out, &e);
        assert_eq!(Parser::new(1024).push(&out).unwrap(), [e]);
    }
}
