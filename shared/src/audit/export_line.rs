//! One line of an NDJSON audit export (`format=json`, the `audit verify-file` input): the
//! event's JSON plus the chain columns. Parsed here, beside the event, so the offline
//! verifier and the fuzz target read lines with the same code.

use super::{AuditEvent, ChainedEvent};

/// Why one export line was not read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Not JSON at all.
    #[error("not a JSON line: {0}")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but a field does not read as the event's (a bad `ts`, a string where a number
    /// belongs, a repeated key): the message names what was wrong.
    #[error("{}", without_position(.0))]
    Field(#[source] serde_json::Error),
    /// An event line of a CSV-era or database-less export.
    #[error("line without the chain columns (export with format=json)")]
    NoChainColumns,
}

/// One NDJSON export line: the event JSON plus the chain columns.
#[derive(serde::Deserialize)]
struct ExportLine {
    #[serde(flatten)]
    event: AuditEvent,
    id: Option<i64>,
    seq: Option<i64>,
    prev_hash: Option<String>,
    hash: Option<String>,
}

/// serde_json's message without its ` at line 1 column N` suffix: an export line is one
/// line, and the caller numbers lines itself.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// Rebuilds a stored row (id, seq, row) from one NDJSON export line.
pub fn row_from_line(line: &str) -> Result<(i64, Option<i64>, ChainedEvent), LineError> {
    let parsed: ExportLine = serde_json::from_str(line).map_err(|e| {
        if e.is_data() {
            LineError::Field(e)
        } else {
            LineError::NotJson(e)
        }
    })?;
    let id = parsed.id.ok_or(LineError::NoChainColumns)?;
    let row = ChainedEvent {
        event: parsed.event,
        prev_hash: parsed.prev_hash.unwrap_or_default(),
        hash: parsed.hash.unwrap_or_default(),
    };
    Ok((id, parsed.seq, row))
}
